package declaration

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"
)

// listNouns names one item of each list in the declaration, for messages such as
// `unknown key "retension" in field "phone"`.
var listNouns = map[string]string{
	"regions":               "region",
	"fields":                "field",
	"purposes":              "purpose",
	"client_apps":           "client app",
	"decision_systems":      "decision system",
	"extra_refusal_grounds": "refusal ground",
}

// idKeys are the keys that identify an item of a list, tried in order.
var idKeys = []string{"name", "id", "code"}

// scope says where a key is, for messages: item is the list item it belongs to
// (`field "phone"`), prefix the keys between that item (or the top level) and it
// ("retention.", "requests.repeat.").
type scope struct {
	item   string
	prefix string
}

// key returns how a key in the scope is named in a message.
func (s scope) key(k string) string {
	if s.item == "" {
		return s.prefix + k
	}
	return s.item + ": " + s.prefix + k
}

// where returns the phrase locating the scope: "at top level", "in controller",
// `in field "phone"`, `in retention of field "phone"`.
func (s scope) where() string {
	p := strings.TrimSuffix(s.prefix, ".")
	switch {
	case s.item == "" && p == "":
		return "at top level"
	case s.item == "":
		return "in " + p
	case p == "":
		return "in " + s.item
	default:
		return "in " + p + " of " + s.item
	}
}

// decoder turns a yaml.Node tree into Go values, walking it against the yaml tags of
// the target type. Unlike yaml.Node.Decode it keeps going after a problem, so that
// every unknown key and malformed value is reported, and it records the line of every
// key it sees, by path ("fields[2].retention.days"), for the validator.
type decoder struct {
	lines    map[string]int
	problems []Problem
}

func (dc *decoder) addf(line int, path, format string, args ...any) {
	dc.problems = append(dc.problems, Problem{Line: line, Path: path, Message: fmt.Sprintf(format, args...)})
}

// decode stores node n into v. path is n's path, key the name of n in messages.
func (dc *decoder) decode(n *yaml.Node, v reflect.Value, path string, s scope, key string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return // present but empty: the zero value, which the validator judges
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			what := s.key(key)
			if strings.HasSuffix(key, "]") && s.item != "" {
				what = s.item // a list item: `field #1 must be a mapping`
			}
			dc.addf(n.Line, path, "%s must be a mapping", what)
			return
		}
		inner := s
		if key != "" && !strings.HasSuffix(key, "]") {
			inner.prefix = s.prefix + key + "."
		}
		dc.decodeStruct(n, v, path, inner)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			dc.addf(n.Line, path, "%s must be a list", s.key(key))
			return
		}
		noun := listNouns[key]
		v.Set(reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content)))
		for i, item := range n.Content {
			ipath := fmt.Sprintf("%s[%d]", path, i)
			dc.lines[ipath] = item.Line
			is, ikey := s, fmt.Sprintf("%s[%d]", key, i)
			if v.Type().Elem().Kind() == reflect.Struct {
				is = scope{item: itemLabel(noun, itemID(item), i)}
			}
			dc.decode(item, v.Index(i), ipath, is, ikey)
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			dc.addf(n.Line, path, "%s must be a string", s.key(key))
			return
		}
		v.SetString(n.Value)
	case reflect.Int, reflect.Int64:
		var x int64
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" || n.Decode(&x) != nil {
			dc.addf(n.Line, path, "%s must be an integer", s.key(key))
			return
		}
		if v.OverflowInt(x) {
			dc.addf(n.Line, path, "%s is too large", s.key(key))
			return
		}
		v.SetInt(x)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" || n.Decode(&b) != nil {
			dc.addf(n.Line, path, "%s must be true or false", s.key(key))
			return
		}
		v.SetBool(b)
	default:
		// Only reached if a root type gains a field of a kind not handled above.
		dc.addf(n.Line, path, "%s has a type the declaration package cannot read", s.key(key))
	}
}

func (dc *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string, s scope) {
	fields := yamlFields(v.Type())
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			dc.addf(k.Line, path, "keys must be plain strings %s", s.where())
			continue
		}
		name := k.Value
		kpath := name
		if path != "" {
			kpath = path + "." + name
		}
		if first, dup := seen[name]; dup {
			dc.addf(k.Line, kpath, "duplicate key %q %s (first at line %d)", name, s.where(), first)
			continue
		}
		seen[name] = k.Line
		idx, ok := fields[name]
		if !ok {
			dc.addf(k.Line, kpath, "unknown key %q %s", name, s.where())
			continue
		}
		dc.lines[kpath] = k.Line
		dc.decode(val, v.Field(idx), kpath, s, name)
	}
}

// yamlFields maps the yaml key of each exported field of struct type t to its index.
func yamlFields(t reflect.Type) map[string]int {
	m := make(map[string]int)
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = i
	}
	return m
}

// itemID returns the identifying scalar of a list item mapping, or "".
func itemID(n *yaml.Node) string {
	if n.Kind != yaml.MappingNode {
		return ""
	}
	for _, want := range idKeys {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == want && v.Kind == yaml.ScalarNode && v.Value != "" {
				return v.Value
			}
		}
	}
	return ""
}

// itemLabel names a list item in messages: `field "phone"`, or `field #3` when it
// has no name.
func itemLabel(noun, id string, i int) string {
	if id == "" {
		return fmt.Sprintf("%s #%d", noun, i+1)
	}
	return fmt.Sprintf("%s %q", noun, id)
}
