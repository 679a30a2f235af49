// Package declaration parses, validates and ships the policy declaration.
//
// A declaration is one YAML file describing a deployment's privacy policy in machine
// form (see doc/declaration.md). Parse reads it strictly: unknown keys are errors,
// every problem found is reported at once with its line, and the result, when there
// is no error, is a valid *steward.Declaration with its defaults filled in. Default
// returns the declaration of the seed policy, embedded in the binary.
package declaration

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	_ "embed"
	_ "time/tzdata" // legal_time_zone must resolve the same on hosts without a zoneinfo database

	"gopkg.in/yaml.v3"

	"github.com/stewardhq/steward"
)

// Problem is one thing wrong with a declaration.
type Problem struct {
	Line    int    // 1-based line in the file; 0 when the problem concerns the whole file
	Path    string // key path of the offending value, e.g. "fields[2].retention.days"; "" for the whole file
	Message string // what is wrong, naming keys and items, never quoting personal information
}

// ValidationError lists every problem found in the declaration called Name. Parse
// returns it wrapped in a *steward.Error with code EINVALID; get it back with
// errors.As.
type ValidationError struct {
	Name     string    // the file name given to Parse, used as the prefix of each line
	Problems []Problem // ordered by line
}

// Error returns one line per problem, "name:line: message" (or "name: message" for a
// problem without a line), like a compiler.
func (e *ValidationError) Error() string {
	var b strings.Builder
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(p.Text(e.Name))
	}
	return b.String()
}

// Text returns the problem as "name:line: message", or "name: message" when Line is 0,
// for the file called name.
func (p Problem) Text(name string) string {
	if p.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", name, p.Line, p.Message)
	}
	return fmt.Sprintf("%s: %s", name, p.Message)
}

// Parse reads a declaration from YAML. name is used in messages only, normally the
// file name. On success the declaration is valid, defaults are filled in
// (legal_time_zone, phone_region, requests.response_days, requests.repeat.action, the
// default flag of a sole region) and its legal time zone is resolved. Otherwise the
// error is a *steward.Error with code EINVALID wrapping a *ValidationError that lists
// every problem, each with its line.
func Parse(data []byte, name string) (*steward.Declaration, error) {
	d, problems := parse(data)
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].Line < problems[j].Line })
		verr := &ValidationError{Name: name, Problems: problems}
		msg := fmt.Sprintf("invalid declaration (%d problems)", len(problems))
		if len(problems) == 1 {
			msg = "invalid declaration (1 problem)"
		}
		return nil, steward.WrapError(steward.EINVALID, msg, verr)
	}
	return d, nil
}

func parse(data []byte) (*steward.Declaration, []Problem) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	switch err := dec.Decode(&root); {
	case errors.Is(err, io.EOF):
		return nil, []Problem{{Message: "the declaration is empty"}}
	case err != nil:
		return nil, []Problem{syntaxProblem(err)}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, []Problem{{Line: extra.Line, Message: "a declaration is a single YAML document; found a second one"}}
	} else if !errors.Is(err, io.EOF) {
		return nil, []Problem{syntaxProblem(err)}
	}

	doc := &root
	if doc.Kind == yaml.DocumentNode && len(doc.Content) == 1 {
		doc = doc.Content[0]
	}
	if doc.Kind != yaml.MappingNode {
		return nil, []Problem{{Line: doc.Line, Message: "the declaration must be a mapping of keys to values"}}
	}
	d := new(steward.Declaration)
	dc := &decoder{lines: map[string]int{"": doc.Line}}
	dc.decodeStruct(doc, reflect.ValueOf(d).Elem(), "", scope{})
	v := &validator{d: d, lines: dc.lines}
	v.validate()
	problems := dc.problems
	for _, p := range v.problems {
		// A value that could not be read is reported once, not again as zero.
		if !slices.ContainsFunc(dc.problems, func(q Problem) bool { return q.Path != "" && q.Path == p.Path }) {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return nil, problems
	}
	return d, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// yamlParserProblems are the messages of yaml.v3's parser (parserc.go), as opposed to
// its scanner.
var yamlParserProblems = []string{"did not find expected ", "found duplicate %", "found incompatible YAML document", "found undefined tag handle"}

// syntaxProblem turns a yaml.v3 syntax error ("yaml: line 3: did not find expected
// key") into a Problem with that line. yaml.v3 v3.0.1 reports parser errors with the
// 0-based line of the mark (scanner errors are 1-based) and drops "line N" when the
// mark is on the first line; both are corrected here.
func syntaxProblem(err error) Problem {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	switch {
	case slices.ContainsFunc(yamlParserProblems, func(p string) bool { return strings.HasPrefix(msg, p) }):
		line++
	case line == 0 && !strings.HasPrefix(msg, "unknown anchor"):
		line = 1
	}
	return Problem{Line: line, Message: "YAML syntax: " + msg}
}

// Load reads and parses the declaration file at path; messages name the file as
// path. A missing file is ENOTFOUND; an invalid one is EINVALID as from Parse.
func Load(path string) (*steward.Declaration, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, steward.WrapError(steward.ENOTFOUND, "The declaration file does not exist.", fmt.Errorf("declaration: %w", err))
	}
	if err != nil {
		return nil, fmt.Errorf("declaration: %w", err)
	}
	return Parse(data, path)
}

//go:embed default.yaml
var defaultYAML []byte

// defaultDecl is parsed from defaultYAML the first time Default is called and never
// modified afterwards; Default hands out copies.
var defaultDecl = sync.OnceValue(func() *steward.Declaration {
	d, err := Parse(defaultYAML, "default.yaml")
	if err != nil {
		panic("declaration: the embedded default.yaml is invalid:\n" + err.Error())
	}
	return d
})

// Default returns the declaration of the seed privacy policy, embedded in the binary
// as default.yaml. Each call returns a fresh copy that the caller may modify. It
// panics only if the embedded file is invalid, which the package's tests rule out.
func Default() *steward.Declaration { return clone(defaultDecl()) }

// DefaultYAML returns the text of the embedded default declaration, comments
// included, as a starting point for a deployment's own file.
func DefaultYAML() []byte { return bytes.Clone(defaultYAML) }

// clone returns a deep copy of d.
func clone(d *steward.Declaration) *steward.Declaration {
	c := *d // copies the resolved location too
	c.Requests.ExtraRefusalGrounds = slices.Clone(d.Requests.ExtraRefusalGrounds)
	c.Regions = slices.Clone(d.Regions)
	c.Fields = slices.Clone(d.Fields)
	for i, f := range c.Fields {
		c.Fields[i].Values = slices.Clone(f.Values)
		c.Fields[i].ContentTypes = slices.Clone(f.ContentTypes)
		c.Fields[i].Purposes = slices.Clone(f.Purposes)
	}
	c.Purposes = slices.Clone(d.Purposes)
	for i, p := range c.Purposes {
		c.Purposes[i].Fields = slices.Clone(p.Fields)
	}
	c.ClientApps = slices.Clone(d.ClientApps)
	for i, a := range c.ClientApps {
		c.ClientApps[i].Purposes = slices.Clone(a.Purposes)
	}
	c.Links.AllowedHosts = slices.Clone(d.Links.AllowedHosts)
	c.Decisions = slices.Clone(d.Decisions)
	for i, s := range c.Decisions {
		c.Decisions[i].Inputs = slices.Clone(s.Inputs)
	}
	return &c
}
