package http

import (
	"bytes"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// docURL names the OpenAPI document as a JSON Schema resource, so that schema
// locations and #/components/schemas/… refs resolve inside it.
const docURL = "https://steward.invalid/openapi.json"

// apiDoc checks HTTP responses against the embedded OpenAPI document.
type apiDoc struct {
	doc      map[string]any
	compiler *jsonschema.Compiler
	mu       sync.Mutex
	schemas  map[string]*jsonschema.Schema
	seen     map[string]bool // "METHOD template status" checked, for the coverage log
}

var (
	loadDocOnce sync.Once
	sharedDoc   *apiDoc
	loadDocErr  error
)

// openAPI returns the parsed document, compiled once per test binary.
func openAPI(t testing.TB) *apiDoc {
	t.Helper()
	loadDocOnce.Do(func() {
		d := &apiDoc{schemas: map[string]*jsonschema.Schema{}, seen: map[string]bool{}}
		if loadDocErr = json.Unmarshal(OpenAPI, &d.doc); loadDocErr != nil {
			return
		}
		res, err := jsonschema.UnmarshalJSON(bytes.NewReader(OpenAPI))
		if err != nil {
			loadDocErr = err
			return
		}
		d.compiler = jsonschema.NewCompiler()
		d.compiler.DefaultDraft(jsonschema.Draft2020)
		d.compiler.AssertFormat()
		if loadDocErr = d.compiler.AddResource(docURL, res); loadDocErr != nil {
			return
		}
		sharedDoc = d
	})
	if loadDocErr != nil {
		t.Fatalf("openapi.json: %v", loadDocErr)
	}
	return sharedDoc
}

// pointer escapes one JSON Pointer token (RFC 6901).
func pointer(tokens ...string) string {
	var b strings.Builder
	for _, t := range tokens {
		b.WriteByte('/')
		b.WriteString(strings.NewReplacer("~", "~0", "/", "~1").Replace(t))
	}
	return b.String()
}

// schema compiles the schema at JSON pointer ptr of the document.
func (d *apiDoc) schema(t testing.TB, ptr string) *jsonschema.Schema {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if s, ok := d.schemas[ptr]; ok {
		return s
	}
	s, err := d.compiler.Compile(docURL + "#" + ptr)
	if err != nil {
		t.Fatalf("compile %s: %v", ptr, err)
	}
	d.schemas[ptr] = s
	return s
}

// lookup returns the value at ptr, following a $ref in the object found.
func (d *apiDoc) lookup(ptr string) (any, string) {
	var cur any = d.doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, ptr
		}
		if cur, ok = m[tok]; !ok {
			return nil, ptr
		}
	}
	if m, ok := cur.(map[string]any); ok {
		if ref, ok := m["$ref"].(string); ok {
			return d.lookup(strings.TrimPrefix(ref, "#"))
		}
	}
	return cur, ptr
}

// template returns the documented path template path matches, or "". Like
// ServeMux, it prefers the most specific template: /v1/certificates/public-key
// over /v1/certificates/{request_id}.
func (d *apiDoc) template(path string) string {
	segs := strings.Split(path, "/")
	best, bestLiterals := "", -1
	for tmpl := range d.doc["paths"].(map[string]any) {
		ts := strings.Split(tmpl, "/")
		if len(ts) != len(segs) {
			continue
		}
		ok, literals := true, 0
		for i := range ts {
			if strings.HasPrefix(ts[i], "{") && strings.HasSuffix(ts[i], "}") {
				ok = ok && segs[i] != ""
			} else {
				ok = ok && ts[i] == segs[i]
				literals++
			}
		}
		if ok && literals > bestLiterals {
			best, bestLiterals = tmpl, literals
		}
	}
	return best
}

// check fails t unless the response is documented for the operation the request
// matched (method + path template) with exactly this status, its body is valid
// against the documented schema, its media type and documented headers are
// present, and the headers every response carries are there.
func (d *apiDoc) check(t testing.TB, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	method, status := strings.ToLower(req.Method), strconv.Itoa(resp.StatusCode)
	what := req.Method + " " + req.URL.Path + " → " + status
	if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("%s: X-Content-Type-Options = %q", what, got)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s: no X-Request-Id", what)
	}
	tmpl := d.template(req.URL.Path)
	var respPtr string
	if op, _ := d.lookup(pointer("paths", tmpl, method)); tmpl != "" && op != nil {
		respPtr = pointer("paths", tmpl, method, "responses", status)
		if strings.HasPrefix(tmpl, "/v1/") && tmpl != "/v1/openapi.json" && tmpl != "/v1/declaration" {
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("%s: Cache-Control = %q, want no-store", what, got)
			}
		}
	} else {
		// No route serves this method and path: 405 when the path takes other
		// methods (with Allow), the shared 404 otherwise.
		switch {
		case tmpl != "" && resp.StatusCode == http.StatusMethodNotAllowed && resp.Header.Get("Allow") != "":
			respPtr, tmpl = "/components/responses/MethodNotAllowed", "(other method)"
		case tmpl == "" && resp.StatusCode == http.StatusNotFound:
			respPtr, tmpl = "/components/responses/NotFound", "(unrouted)"
		default:
			t.Errorf("%s: unrouted request answered %d (Allow %q)", what, resp.StatusCode, resp.Header.Get("Allow"))
			return
		}
	}
	r, ptr := d.lookup(respPtr)
	if r == nil {
		t.Errorf("%s: status %s is not documented for %s %s", what, status, req.Method, tmpl)
		return
	}
	d.mu.Lock()
	d.seen[req.Method+" "+tmpl+" "+status] = true
	d.mu.Unlock()
	rm := r.(map[string]any)
	if hs, ok := rm["headers"].(map[string]any); ok {
		for h := range hs {
			if resp.Header.Get(h) == "" {
				t.Errorf("%s: documented header %s is missing", what, h)
			}
		}
	}
	content, _ := rm["content"].(map[string]any)
	if len(content) == 0 {
		if len(body) > 0 {
			t.Errorf("%s: body sent where none is documented", what)
		}
		return
	}
	mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if _, ok := content[mt]; !ok {
		t.Errorf("%s: media type %q is not documented", what, mt)
		return
	}
	if mt != "application/json" {
		return
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Errorf("%s: body is not JSON: %v", what, err)
		return
	}
	if err := d.schema(t, ptr+pointer("content", mt, "schema")).Validate(inst); err != nil {
		t.Errorf("%s: body does not match the OpenAPI document: %v\nbody: %.2000s", what, err, body)
	}
}

// validating is an http.RoundTripper that checks every response against the
// OpenAPI document and hands it on unchanged.
type validating struct {
	t    testing.TB
	doc  *apiDoc
	base http.RoundTripper
}

func (v *validating) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := v.base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	v.doc.check(v.t, req, resp, body)
	return resp, nil
}

// TestOpenAPIRoutes checks that every route the server registers is documented and
// every documented operation is routed.
func TestOpenAPIRoutes(t *testing.T) {
	doc := openAPI(t)
	s := NewServer(newEnv(t, "sqlite").Service, Options{})
	var routed, documented []string
	for _, p := range s.patterns {
		routed = append(routed, p)
	}
	for path, item := range doc.doc["paths"].(map[string]any) {
		for method := range item.(map[string]any) {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				documented = append(documented, strings.ToUpper(method)+" "+path)
			}
		}
	}
	slices.Sort(routed)
	slices.Sort(documented)
	if diff := cmp.Diff(documented, routed); diff != "" {
		t.Errorf("routes (-documented +routed):\n%s", diff)
	}
}

// TestOpenAPIDocument checks the document itself: every schema compiles, every
// error code is listed with its status, every operation has an id and every
// $ref resolves.
func TestOpenAPIDocument(t *testing.T) {
	doc := openAPI(t)
	if doc.doc["openapi"] != "3.1.0" {
		t.Errorf("openapi = %v", doc.doc["openapi"])
	}
	for name := range doc.doc["components"].(map[string]any)["schemas"].(map[string]any) {
		doc.schema(t, pointer("components", "schemas", name))
	}
	enum, _ := doc.lookup("/components/schemas/Error/properties/error/properties/code/enum")
	var codes []string
	for _, c := range enum.([]any) {
		codes = append(codes, c.(string))
	}
	if diff := cmp.Diff(errorCodes(), codes); diff != "" {
		t.Errorf("Error.code enum (-steward.ErrorCodes +doc):\n%s", diff)
	}
	desc := doc.doc["info"].(map[string]any)["description"].(string)
	for _, c := range errorCodes() {
		if row := "| " + c + " | " + strconv.Itoa(StatusOf(c)) + " |"; !strings.Contains(desc, row) {
			t.Errorf("info.description lacks the row %q", row)
		}
	}
	var walk func(ptr string, v any)
	walk = func(ptr string, v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if got, _ := doc.lookup(strings.TrimPrefix(ref, "#")); got == nil {
					t.Errorf("%s: $ref %s does not resolve", ptr, ref)
				}
			}
			for k, e := range v {
				walk(ptr+pointer(k), e)
			}
		case []any:
			for i, e := range v {
				walk(ptr+pointer(strconv.Itoa(i)), e)
			}
		}
	}
	walk("", doc.doc)
	for path, item := range doc.doc["paths"].(map[string]any) {
		for method, op := range item.(map[string]any) {
			if op.(map[string]any)["operationId"] == nil {
				t.Errorf("%s %s has no operationId", method, path)
			}
		}
	}
}
