package http

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestRequestsDocStatusCodes keeps doc/requests.md honest: every route of rights
// requests, decisions and refusal grounds in the OpenAPI document has a row in its
// API tables, and each row gives the route's success status as the document does
// (verification-code is 200, filing 201, …).
func TestRequestsDocStatusCodes(t *testing.T) {
	md, err := os.ReadFile("../doc/requests.md")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{} // "POST /v1/requests" → "201"
	for path, ops := range doc.Paths {
		if !strings.Contains(path, "requests") && !strings.Contains(path, "decisions") && !strings.Contains(path, "refusal-grounds") {
			continue
		}
		for method, op := range ops {
			for code := range op.Responses {
				if code[0] == '2' {
					want[strings.ToUpper(method)+" "+path] = code
				}
			}
		}
	}
	row := regexp.MustCompile("^\\| `(GET|POST|PUT|PATCH|DELETE) ([^`?]+)[^`]*` \\|.*\\| (\\d{3})\\b[^|]*\\|$")
	got := map[string]string{}
	api := string(md[strings.Index(string(md), "\n## API\n"):])
	for _, line := range strings.Split(api, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		m := row.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("doc/requests.md: row without a status: %s", line)
			continue
		}
		got[m[1]+" "+m[2]] = m[3]
	}
	var routes []string
	for r := range want {
		routes = append(routes, r)
	}
	slices.Sort(routes)
	for _, r := range routes {
		if got[r] != want[r] {
			t.Errorf("doc/requests.md: %s answers %q, openapi.json %s", r, got[r], want[r])
		}
	}
	for r := range got {
		if _, ok := want[r]; !ok && !strings.HasPrefix(r, "GET /v1/certificates/") {
			t.Errorf("doc/requests.md: %s is not in openapi.json", r)
		}
	}
}
