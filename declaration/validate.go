package declaration

import (
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// Defaults filled in when a key is left out.
const (
	DefaultLegalTimeZone = "Asia/Shanghai" // legal_time_zone
	DefaultPhoneRegion   = "CN"            // phone_region
	DefaultResponseDays  = 15              // requests.response_days (policy §6, PIPL Art. 50 practice)
	DefaultRepeatAction  = "fee"           // requests.repeat.action
)

var (
	snakeCase   = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)
	slug        = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+)*$`)
	regionCode  = regexp.MustCompile(`^[A-Z]{2}$`)
	currency    = regexp.MustCompile(`^[A-Z]{3}$`)
	hostLabel   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	validKinds  = []string{steward.KindString, steward.KindPhone, steward.KindDate, steward.KindEnum, steward.KindBytes, steward.KindList, steward.KindLocation, steward.KindDerived}
	kindOnlyKey = []struct {
		key   string
		kinds []string
	}{
		{"max_length", []string{steward.KindString, steward.KindList}},
		{"max_items", []string{steward.KindList}},
		{"values", []string{steward.KindEnum}},
		{"max_bytes", []string{steward.KindBytes}},
		{"content_types", []string{steward.KindBytes}},
		{"precision", []string{steward.KindLocation}},
	}
)

// validator checks a decoded declaration against the rules of doc/declaration.md,
// fills in defaults and collects every problem with the line of the offending key.
type validator struct {
	d        *steward.Declaration
	lines    map[string]int // key path → line, for every key present in the file
	problems []Problem
}

// has reports whether the key at path was present in the file, even if empty.
func (v *validator) has(path string) bool {
	_, ok := v.lines[path]
	return ok
}

// line returns the line of path, or of its nearest present ancestor.
func (v *validator) line(path string) int {
	for {
		if l, ok := v.lines[path]; ok {
			return l
		}
		if path == "" {
			return 1
		}
		if i := strings.LastIndexAny(path, ".["); i >= 0 {
			path = path[:i]
		} else {
			path = ""
		}
	}
}

// either returns path if its key is present, else fallback: a rule about a missing
// key is reported where the key that needs it is.
func (v *validator) either(path, fallback string) string {
	if v.has(path) {
		return path
	}
	return fallback
}

func (v *validator) addf(path, format string, args ...any) {
	v.problems = append(v.problems, Problem{Line: v.line(path), Path: path, Message: fmt.Sprintf(format, args...)})
}

func blank(s string) bool { return strings.TrimSpace(s) == "" }

func (v *validator) validate() {
	v.top()
	v.requests()
	v.regions()
	fields := v.fields()
	purposes := v.purposes(fields)
	v.fieldPurposes(purposes)
	v.clientApps(purposes)
	v.links(purposes)
	v.decisions(fields, purposes)
}

func (v *validator) top() {
	d := v.d
	if blank(d.Version) {
		v.addf("version", "version is required")
	}
	if blank(d.Controller.Name) {
		v.addf("controller.name", "controller.name is required")
	}
	if blank(d.Controller.ComplaintChannel) {
		v.addf("controller.complaint_channel", "controller.complaint_channel is required")
	}
	if w := d.Controller.Website; w != "" {
		if u, err := url.Parse(w); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.addf("controller.website", "controller.website %q must be an absolute http(s) URL", w)
		}
	}

	if !v.has("legal_time_zone") {
		d.LegalTimeZone = DefaultLegalTimeZone
	}
	switch tz := d.LegalTimeZone; tz {
	case "":
		v.addf("legal_time_zone", "legal_time_zone must not be empty; leave it out for the default %s", DefaultLegalTimeZone)
	case "Local":
		v.addf("legal_time_zone", "legal_time_zone must be an IANA zone name such as Asia/Shanghai, not Local")
	default:
		loc, err := time.LoadLocation(tz)
		if err != nil {
			v.addf("legal_time_zone", "legal_time_zone: unknown time zone %q", tz)
			break
		}
		d.SetLocation(loc)
	}

	if d.MinimumAge < 0 || d.MinimumAge > 150 {
		v.addf("minimum_age", "minimum_age must be between 0 and 150 (0: no minimum age)")
	}

	if !v.has("phone_region") {
		d.PhoneRegion = DefaultPhoneRegion
	}
	if !regionCode.MatchString(d.PhoneRegion) {
		v.addf("phone_region", "phone_region %q must be a two-letter uppercase region code such as CN", d.PhoneRegion)
	}
}

func (v *validator) requests() {
	r := &v.d.Requests
	if !v.has("requests.response_days") {
		r.ResponseDays = DefaultResponseDays
	}
	if r.ResponseDays < 1 || r.ResponseDays > 365 {
		v.addf("requests.response_days", "requests.response_days must be between 1 and 365")
	}
	if v.has("requests.calendar") && blank(r.Calendar) {
		v.addf("requests.calendar", "requests.calendar must not be empty when set")
	}
	if r.ExtensionDays < 0 || r.ExtensionDays > 365 {
		v.addf("requests.extension_days", "requests.extension_days must be between 0 and 365 (0: no extension)")
	}

	rp := &r.Repeat
	if !v.has("requests.repeat.action") {
		rp.Action = DefaultRepeatAction
	}
	if rp.Action != "fee" && rp.Action != "refuse" {
		v.addf("requests.repeat.action", "requests.repeat.action %q must be fee or refuse", rp.Action)
	}
	if rp.Currency != "" && !currency.MatchString(rp.Currency) {
		v.addf("requests.repeat.currency", "requests.repeat.currency %q must be a three-letter ISO 4217 code such as CNY", rp.Currency)
	}
	if rp.FeeMinor < 0 {
		v.addf("requests.repeat.fee_minor", "requests.repeat.fee_minor must not be negative")
	}
	if rp.FreeAllowance < 0 {
		v.addf("requests.repeat.free_allowance", "requests.repeat.free_allowance must not be negative")
	}
	// Without a repeat block no request counts as excessive (window_days stays 0).
	if v.has("requests.repeat") {
		if rp.WindowDays < 1 || rp.WindowDays > 365 {
			v.addf("requests.repeat.window_days", "requests.repeat.window_days must be between 1 and 365")
		}
		if rp.Action == "fee" {
			if rp.Currency == "" {
				v.addf("requests.repeat.currency", "requests.repeat.currency is required when action is fee")
			}
			if rp.FeeMinor == 0 {
				v.addf("requests.repeat.fee_minor", "requests.repeat.fee_minor must be greater than 0 when action is fee")
			}
		}
	}

	builtin := steward.DefaultRefusalGrounds()
	seen := make(map[string]int)
	for i, g := range r.ExtraRefusalGrounds {
		p := fmt.Sprintf("requests.extra_refusal_grounds[%d]", i)
		label := itemLabel("refusal ground", g.Code, i)
		_, isBuiltin := builtin.Lookup(steward.RefusalGround(g.Code))
		switch {
		case g.Code == "":
			v.addf(p, "%s: code is required", label)
		case !snakeCase.MatchString(g.Code) || len(g.Code) > 64:
			v.addf(p+".code", "%s: code must be snake_case, at most 64 characters", label)
		case isBuiltin:
			v.addf(p+".code", "%s: code is a built-in refusal ground already", label)
		default:
			if first, dup := seen[g.Code]; dup {
				v.addf(p+".code", "duplicate refusal ground code %q (first at line %d)", g.Code, first)
			} else {
				seen[g.Code] = v.line(p + ".code")
			}
		}
		if blank(g.Title) {
			v.addf(p+".title", "%s: title is required", label)
		}
		if blank(g.Source) {
			v.addf(p+".source", "%s: source is required (the law or policy clause it rests on)", label)
		}
	}
}

func (v *validator) regions() {
	d := v.d
	if len(d.Regions) == 0 {
		v.addf("regions", "regions must list at least one storage region")
		return
	}
	seen := make(map[string]int)
	for i, r := range d.Regions {
		p := fmt.Sprintf("regions[%d]", i)
		label := itemLabel("region", r.ID, i)
		switch {
		case r.ID == "":
			v.addf(p, "%s: id is required", label)
		case !slug.MatchString(r.ID):
			v.addf(p+".id", "%s: id must be lowercase letters and digits, optionally joined by hyphens", label)
		default:
			if first, dup := seen[r.ID]; dup {
				v.addf(p+".id", "duplicate region id %q (first at line %d)", r.ID, first)
			} else {
				seen[r.ID] = v.line(p + ".id")
			}
		}
	}
	if len(d.Regions) == 1 {
		d.Regions[0].Default = true
		return
	}
	first := -1
	for i, r := range d.Regions {
		if !r.Default {
			continue
		}
		if first < 0 {
			first = i
			continue
		}
		v.addf(fmt.Sprintf("regions[%d].default", i), "%s: only one region may be default, and region %q (line %d) already is",
			itemLabel("region", r.ID, i), d.Regions[first].ID, v.line(fmt.Sprintf("regions[%d].default", first)))
	}
	if first < 0 {
		v.addf("regions", "regions: no default region; mark exactly one with default: true")
	}
}

// fields checks each field on its own and returns the index of each field name.
func (v *validator) fields() map[string]int {
	d := v.d
	index := make(map[string]int)
	for i, f := range d.Fields {
		p := fmt.Sprintf("fields[%d]", i)
		label := itemLabel("field", f.Name, i)
		switch {
		case f.Name == "":
			v.addf(p, "%s: name is required", label)
		case !snakeCase.MatchString(f.Name):
			v.addf(p+".name", "%s: name must be snake_case", label)
		default:
			if first, dup := index[f.Name]; dup {
				v.addf(p+".name", "duplicate field name %q (first at line %d)", f.Name, v.line(fmt.Sprintf("fields[%d].name", first)))
			} else {
				index[f.Name] = i
			}
		}
		if blank(f.Category) {
			v.addf(p+".category", "%s: category is required", label)
		}
		v.kind(p, label, f)
		v.retention(p, label, f.Retention)
	}
	return index
}

func (v *validator) kind(p, label string, f steward.Field) {
	switch {
	case f.Kind == "":
		v.addf(p+".kind", "%s: kind is required", label)
		return
	case !slices.Contains(validKinds, f.Kind):
		v.addf(p+".kind", "%s: unknown kind %q (want %s)", label, f.Kind, orList(validKinds))
		return
	}
	for _, k := range kindOnlyKey {
		if v.has(p+"."+k.key) && !slices.Contains(k.kinds, f.Kind) {
			v.addf(p+"."+k.key, "%s: %s does not apply to kind %s", label, k.key, f.Kind)
		}
	}
	if f.MaxLength < 0 {
		v.addf(p+".max_length", "%s: max_length must not be negative", label)
	}
	if f.MaxItems < 0 {
		v.addf(p+".max_items", "%s: max_items must not be negative", label)
	}
	switch f.Kind {
	case steward.KindEnum:
		if len(f.Values) == 0 {
			v.addf(v.either(p+".values", p+".kind"), "%s: kind enum needs values", label)
		}
		for j, val := range f.Values {
			vp := fmt.Sprintf("%s.values[%d]", p, j)
			if blank(val) {
				v.addf(vp, "%s: values[%d] must not be empty", label, j)
			} else if slices.Index(f.Values, val) < j {
				v.addf(vp, "%s: value %q listed twice", label, val)
			}
		}
	case steward.KindBytes:
		if f.MaxBytes <= 0 {
			v.addf(v.either(p+".max_bytes", p+".kind"), "%s: kind bytes needs max_bytes greater than 0", label)
		}
		if len(f.ContentTypes) == 0 {
			v.addf(v.either(p+".content_types", p+".kind"), "%s: kind bytes needs content_types", label)
		}
		for j, ct := range f.ContentTypes {
			mt, params, err := mime.ParseMediaType(ct)
			if err != nil || len(params) > 0 || mt != ct || !strings.Contains(mt, "/") {
				v.addf(fmt.Sprintf("%s.content_types[%d]", p, j), "%s: content type %q must be a lowercase media type such as image/png", label, ct)
			}
		}
	case steward.KindLocation:
		if f.Precision < 0 || f.Precision > 6 {
			v.addf(p+".precision", "%s: precision must be between 0 and 6 decimal places", label)
		}
	}
}

func (v *validator) retention(p, label string, r steward.Retention) {
	switch r.Rule {
	case "":
		v.addf(p+".retention.rule", "%s: retention.rule is required (%s or %s)", label, steward.RetainUntilCancellation, steward.RetainFor)
	case steward.RetainUntilCancellation:
		if v.has(p + ".retention.days") {
			v.addf(p+".retention.days", "%s: retention.days applies only to rule %s", label, steward.RetainFor)
		}
	case steward.RetainFor:
		if r.Days <= 0 {
			v.addf(p+".retention.days", "%s: retention.days must be greater than 0 for rule %s", label, steward.RetainFor)
		}
	default:
		v.addf(p+".retention.rule", "%s: unknown retention.rule %q (want %s or %s)", label, r.Rule, steward.RetainUntilCancellation, steward.RetainFor)
	}
}

// purposes checks each purpose, including that its fields are declared and list it
// back, and returns the index of each purpose name.
func (v *validator) purposes(fields map[string]int) map[string]int {
	d := v.d
	index := make(map[string]int)
	for i, pu := range d.Purposes {
		p := fmt.Sprintf("purposes[%d]", i)
		label := itemLabel("purpose", pu.Name, i)
		switch {
		case pu.Name == "":
			v.addf(p, "%s: name is required", label)
		case !snakeCase.MatchString(pu.Name):
			v.addf(p+".name", "%s: name must be snake_case", label)
		default:
			if first, dup := index[pu.Name]; dup {
				v.addf(p+".name", "duplicate purpose name %q (first at line %d)", pu.Name, v.line(fmt.Sprintf("purposes[%d].name", first)))
			} else {
				index[pu.Name] = i
			}
		}

		basisOK := true
		switch b := pu.LegalBasis; {
		case b == steward.BasisConsent, b == steward.BasisContract, b == steward.BasisLegalObligation:
		case strings.HasPrefix(b, steward.BasisExceptionPrefix):
			if !snakeCase.MatchString(strings.TrimPrefix(b, steward.BasisExceptionPrefix)) {
				basisOK = false
				v.addf(p+".legal_basis", "%s: legal_basis %q needs a snake_case exception name after %q", label, b, steward.BasisExceptionPrefix)
			}
		case b == "":
			basisOK = false
			v.addf(p+".legal_basis", "%s: legal_basis is required", label)
		default:
			basisOK = false
			v.addf(p+".legal_basis", "%s: unknown legal_basis %q (want consent, contract, legal_obligation or exception:<name>)", label, b)
		}
		if basisOK && pu.Required && pu.LegalBasis != steward.BasisConsent {
			v.addf(p+".required", "%s: required applies only to legal_basis consent", label)
		}

		if len(pu.Fields) == 0 {
			v.addf(p+".fields", "%s has no fields", label)
		}
		for j, fn := range pu.Fields {
			fp := fmt.Sprintf("%s.fields[%d]", p, j)
			fi, ok := fields[fn]
			switch {
			case slices.Index(pu.Fields, fn) < j:
				v.addf(fp, "%s: field %q listed twice", label, fn)
			case !ok:
				v.addf(fp, "%s: undeclared field %q", label, fn)
			case pu.Name != "" && !slices.Contains(d.Fields[fi].Purposes, pu.Name):
				v.addf(fp, "purpose %q lists field %q, but field %q does not list purpose %q", pu.Name, fn, fn, pu.Name)
			}
		}
	}
	return index
}

// fieldPurposes checks that every field has a purpose, each declared and listing the
// field back (PIPL Art. 6: no processing beyond a declared purpose).
func (v *validator) fieldPurposes(purposes map[string]int) {
	d := v.d
	for i, f := range d.Fields {
		p := fmt.Sprintf("fields[%d]", i)
		label := itemLabel("field", f.Name, i)
		if len(f.Purposes) == 0 {
			v.addf(p+".purposes", "%s has no purpose; collecting it would be an undeclared use", label)
		}
		for j, pn := range f.Purposes {
			pp := fmt.Sprintf("%s.purposes[%d]", p, j)
			pi, ok := purposes[pn]
			switch {
			case slices.Index(f.Purposes, pn) < j:
				v.addf(pp, "%s: purpose %q listed twice", label, pn)
			case !ok:
				v.addf(pp, "%s: undeclared purpose %q", label, pn)
			case f.Name != "" && !slices.Contains(d.Purposes[pi].Fields, f.Name):
				v.addf(pp, "field %q lists purpose %q, but purpose %q does not list field %q", f.Name, pn, pn, f.Name)
			}
		}
	}
}

func (v *validator) clientApps(purposes map[string]int) {
	seen := make(map[string]int)
	for i, a := range v.d.ClientApps {
		p := fmt.Sprintf("client_apps[%d]", i)
		label := itemLabel("client app", a.ID, i)
		switch {
		case a.ID == "":
			v.addf(p, "%s: id is required", label)
		case !slug.MatchString(a.ID):
			v.addf(p+".id", "%s: id must be lowercase letters and digits, optionally joined by hyphens", label)
		default:
			if first, dup := seen[a.ID]; dup {
				v.addf(p+".id", "duplicate client app id %q (first at line %d)", a.ID, first)
			} else {
				seen[a.ID] = v.line(p + ".id")
			}
		}
		for j, pn := range a.Purposes {
			pp := fmt.Sprintf("%s.purposes[%d]", p, j)
			if slices.Index(a.Purposes, pn) < j {
				v.addf(pp, "%s: purpose %q listed twice", label, pn)
			} else if _, ok := purposes[pn]; !ok {
				v.addf(pp, "%s: undeclared purpose %q", label, pn)
			}
		}
	}
}

func (v *validator) links(purposes map[string]int) {
	l := v.d.Links
	for i, h := range l.AllowedHosts {
		p := fmt.Sprintf("links.allowed_hosts[%d]", i)
		if why := hostProblem(h); why != "" {
			v.addf(p, "links.allowed_hosts: %q %s", h, why)
		} else if slices.Index(l.AllowedHosts, h) < i {
			v.addf(p, "links.allowed_hosts: %q listed twice", h)
		}
	}
	for _, c := range []struct{ key, name, why string }{
		{"tracking_purpose", l.TrackingPurpose, "a click is recorded only with consent"},
		{"marketing_purpose", l.MarketingPurpose, "unsubscribing withdraws its consent"},
	} {
		if c.name == "" {
			continue
		}
		i, ok := purposes[c.name]
		switch {
		case !ok:
			v.addf("links."+c.key, "links.%s: undeclared purpose %q", c.key, c.name)
		case v.d.Purposes[i].LegalBasis != steward.BasisConsent:
			v.addf("links."+c.key, "links.%s: purpose %q must have legal_basis consent: %s", c.key, c.name, c.why)
		}
	}
}

// hostProblem says why h is not a bare, lowercase DNS hostname, or returns "". Ports
// are refused: tracked links are https URLs on the default port.
func hostProblem(h string) string {
	switch {
	case h == "":
		return "must not be empty"
	case strings.Contains(h, "://"):
		return "is not a bare hostname; remove the scheme"
	case strings.ContainsAny(h, "/?#"):
		return "is not a bare hostname; remove the path"
	case strings.Contains(h, "@"):
		return "is not a bare hostname; remove the user name"
	case strings.Contains(h, ":"):
		return "is not a bare hostname; remove the port (tracked links use the default HTTPS port)"
	case strings.HasPrefix(h, "*."):
		return "is a wildcard; list each host"
	case strings.ToLower(h) != h:
		return "must be lowercase"
	case len(h) > 253:
		return "is too long for a hostname"
	}
	for label := range strings.SplitSeq(h, ".") {
		if !hostLabel.MatchString(label) {
			return "is not a valid hostname"
		}
	}
	return ""
}

func (v *validator) decisions(fields, purposes map[string]int) {
	categories := make(map[string]bool)
	for _, f := range v.d.Fields {
		categories[f.Category] = true
	}
	seen := make(map[string]int)
	for i, s := range v.d.Decisions {
		p := fmt.Sprintf("decision_systems[%d]", i)
		label := itemLabel("decision system", s.Name, i)
		if s.Name == "" {
			v.addf(p, "%s: name is required", label)
		} else if first, dup := seen[s.Name]; dup {
			v.addf(p+".name", "duplicate decision system name %q (first at line %d)", s.Name, first)
		} else {
			seen[s.Name] = v.line(p + ".name")
		}
		if s.Purpose == "" {
			v.addf(p+".purpose", "%s: purpose is required", label)
		} else if _, ok := purposes[s.Purpose]; !ok {
			v.addf(p+".purpose", "%s: undeclared purpose %q", label, s.Purpose)
		}
		if blank(s.LogicSummary) {
			v.addf(p+".logic_summary", "%s: logic_summary is required (it is the explanation a subject may ask for)", label)
		}
		for j, in := range s.Inputs {
			if _, ok := fields[in]; !ok && !categories[in] {
				v.addf(fmt.Sprintf("%s.inputs[%d]", p, j), "%s: input %q is neither a declared field nor a field category", label, in)
			}
		}
	}
}

// orList joins words as "a, b or c".
func orList(words []string) string {
	if len(words) < 2 {
		return strings.Join(words, "")
	}
	return strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
}
