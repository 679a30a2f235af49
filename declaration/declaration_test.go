package declaration

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/stewardhq/steward"
)

// base is a small valid declaration; the cases below break it one way each. Its line
// numbers matter: the expected messages name them.
const base = `version: "1"
controller:
  name: Example
  complaint_channel: Write to privacy@example.com
regions:
  - id: cn
    name: Mainland China
fields:
  - name: phone
    category: identity
    kind: phone
    purposes: [account]
    retention: {rule: until_cancellation}
  - name: nickname
    category: profile
    kind: string
    purposes: [account]
    retention: {rule: until_cancellation}
purposes:
  - name: account
    legal_basis: consent
    required: true
    fields: [phone, nickname]
links:
  allowed_hosts: [example.com]
`

func TestBaseIsValidAndGetsDefaults(t *testing.T) {
	d, err := Parse([]byte(base), "base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := []any{d.LegalTimeZone, d.Location().String(), d.PhoneRegion, d.MinimumAge, d.Requests.ResponseDays,
		d.Requests.Repeat.Action, d.Requests.Repeat.WindowDays, d.Regions[0].Default, d.DefaultRegion()}
	want := []any{"Asia/Shanghai", "Asia/Shanghai", "CN", 0, 15, "fee", 0, true, "cn"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("defaults (-want +got):\n%s", diff)
	}
}

func TestParseProblems(t *testing.T) {
	tests := []struct {
		name     string
		old, new string // replace old by new in base; old "" appends new
		want     []string
	}{
		{
			name: "unknown key in field",
			old:  "    kind: string\n", new: "    kind: string\n    retension: 30\n",
			want: []string{`17: unknown key "retension" in field "nickname"`},
		},
		{
			name: "unknown key in nested mapping",
			old:  "{rule: until_cancellation}\n  - name: nickname", new: "{rule: until_cancellation, dayz: 3}\n  - name: nickname",
			want: []string{`13: unknown key "dayz" in retention of field "phone"`},
		},
		{
			name: "unknown top-level key",
			new:  "contorller: {}\n",
			want: []string{`26: unknown key "contorller" at top level`},
		},
		{
			name: "duplicate key",
			old:  "  name: Example\n", new: "  name: Example\n  name: Other\n",
			want: []string{`4: duplicate key "name" in controller (first at line 3)`},
		},
		{
			name: "undeclared field in a purpose",
			old:  "fields: [phone, nickname]", new: "fields: [phone, nickname, email]",
			want: []string{`23: purpose "account": undeclared field "email"`},
		},
		{
			name: "field lists a purpose that does not list it",
			old:  "fields: [phone, nickname]", new: "fields: [phone]",
			want: []string{`17: field "nickname" lists purpose "account", but purpose "account" does not list field "nickname"`},
		},
		{
			name: "purpose lists a field that does not list it",
			old:  "fields: [phone, nickname]\n", new: "fields: [phone, nickname]\n  - name: support\n    legal_basis: consent\n    fields: [phone]\n",
			want: []string{`26: purpose "support" lists field "phone", but field "phone" does not list purpose "support"`},
		},
		{
			name: "field without purpose",
			old:  "    purposes: [account]\n    retention: {rule: until_cancellation}\n  - name: nickname", new: "    retention: {rule: until_cancellation}\n  - name: nickname",
			want: []string{
				`9: field "phone" has no purpose; collecting it would be an undeclared use`,
				`22: purpose "account" lists field "phone", but field "phone" does not list purpose "account"`,
			},
		},
		{
			name: "undeclared purpose in a field",
			old:  "    purposes: [account]\n    retention: {rule: until_cancellation}\n  - name: nickname", new: "    purposes: [account, billing]\n    retention: {rule: until_cancellation}\n  - name: nickname",
			want: []string{`12: field "phone": undeclared purpose "billing"`},
		},
		{
			name: "bad time zone",
			old:  "version: \"1\"\n", new: "version: \"1\"\nlegal_time_zone: Mars/Olympus\n",
			want: []string{`2: legal_time_zone: unknown time zone "Mars/Olympus"`},
		},
		{
			name: "bad kind",
			old:  "kind: string", new: "kind: strng",
			want: []string{`16: field "nickname": unknown kind "strng" (want string, phone, date, enum, bytes, list, location or derived)`},
		},
		{
			name: "key that does not apply to the kind",
			old:  "    kind: phone\n", new: "    kind: phone\n    max_bytes: 10\n",
			want: []string{`12: field "phone": max_bytes does not apply to kind phone`},
		},
		{
			name: "duplicate field name",
			old:  "- name: nickname", new: "- name: phone",
			want: []string{
				`14: duplicate field name "phone" (first at line 9)`,
				`23: purpose "account": undeclared field "nickname"`,
			},
		},
		{
			name: "two default regions",
			old:  "  - id: cn\n    name: Mainland China\n", new: "  - id: cn\n    name: Mainland China\n    default: true\n  - id: sg\n    default: true\n",
			want: []string{`10: region "sg": only one region may be default, and region "cn" (line 8) already is`},
		},
		{
			name: "no default among several regions",
			old:  "  - id: cn\n", new: "  - id: sg\n  - id: cn\n",
			want: []string{`5: regions: no default region; mark exactly one with default: true`},
		},
		{
			name: "uppercase region id",
			old:  "- id: cn", new: "- id: CN",
			want: []string{`6: region "CN": id must be lowercase letters and digits, optionally joined by hyphens`},
		},
		{
			name: "host with scheme",
			old:  "[example.com]", new: "[example.com, https://example.com]",
			want: []string{`25: links.allowed_hosts: "https://example.com" is not a bare hostname; remove the scheme`},
		},
		{
			name: "host with port",
			old:  "[example.com]", new: "[\"example.com:8443\"]",
			want: []string{`25: links.allowed_hosts: "example.com:8443" is not a bare hostname; remove the port (tracked links use the default HTTPS port)`},
		},
		{
			name: "host with path",
			old:  "[example.com]", new: "[example.com/r]",
			want: []string{`25: links.allowed_hosts: "example.com/r" is not a bare hostname; remove the path`},
		},
		{
			name: "tracking purpose undeclared",
			new:  "  tracking_purpose: analytics\n",
			want: []string{`26: links.tracking_purpose: undeclared purpose "analytics"`},
		},
		{
			name: "missing version and controller",
			old:  "version: \"1\"\ncontroller:\n  name: Example\n  complaint_channel: Write to privacy@example.com\n", new: "",
			want: []string{
				`1: version is required`,
				`1: controller.name is required`,
				`1: controller.complaint_channel is required`,
			},
		},
		{
			name: "wrong type",
			old:  "    kind: string\n", new: "    kind: string\n    max_length: lots\n",
			want: []string{`17: field "nickname": max_length must be an integer`},
		},
		{
			name: "required with a non-consent basis",
			old:  "legal_basis: consent", new: "legal_basis: contract",
			want: []string{`22: purpose "account": required applies only to legal_basis consent`},
		},
		{
			name: "unknown legal basis",
			old:  "legal_basis: consent", new: "legal_basis: interest",
			want: []string{`21: purpose "account": unknown legal_basis "interest" (want consent, contract, legal_obligation or exception:<name>)`},
		},
		{
			name: "duration without days",
			old:  "{rule: until_cancellation}\npurposes", new: "{rule: duration}\npurposes",
			want: []string{`18: field "nickname": retention.days must be greater than 0 for rule duration`},
		},
		{
			name: "enum without values",
			old:  "kind: string", new: "kind: enum",
			want: []string{`16: field "nickname": kind enum needs values`},
		},
		{
			name: "bytes without limits",
			old:  "kind: string", new: "kind: bytes",
			want: []string{
				`16: field "nickname": kind bytes needs max_bytes greater than 0`,
				`16: field "nickname": kind bytes needs content_types`,
			},
		},
		{
			name: "response days out of range",
			new:  "requests:\n  response_days: 0\n",
			want: []string{`27: requests.response_days must be between 1 and 365`},
		},
		{
			name: "fee without currency",
			new:  "requests:\n  repeat: {window_days: 30, free_allowance: 2, fee_minor: 2000}\n",
			want: []string{`27: requests.repeat.currency is required when action is fee`},
		},
		{
			name: "extra refusal grounds",
			new: "requests:\n  extra_refusal_grounds:\n    - {code: legal_obligation, title: Legal duty, source: GB/T 35273-2020 §8.7}\n" +
				"    - {code: commercial_secrets, title: Secrets, source: policy §6}\n    - {code: legal_obligation, title: Again}\n",
			want: []string{
				`29: refusal ground "commercial_secrets": code is a built-in refusal ground already`,
				`30: duplicate refusal ground code "legal_obligation" (first at line 28)`,
				`30: refusal ground "legal_obligation": source is required (the law or policy clause it rests on)`,
			},
		},
		{
			name: "client app with undeclared purpose",
			new:  "client_apps:\n  - id: app\n    purposes: [account, ads]\n",
			want: []string{`28: client app "app": undeclared purpose "ads"`},
		},
		{
			name: "decision system with undeclared purpose and input",
			new:  "decision_systems:\n  - name: scoring\n    purpose: risk\n    logic_summary: Scores sign-ins.\n    inputs: [device]\n",
			want: []string{
				`28: decision system "scoring": undeclared purpose "risk"`,
				`30: decision system "scoring": input "device" is neither a declared field nor a field category`,
			},
		},
		{
			name: "list item that is not a mapping",
			old:  "  - id: cn\n    name: Mainland China\n", new: "  - cn\n",
			want: []string{`6: region #1 must be a mapping`},
		},
		{
			name: "YAML syntax error",
			old:  "  allowed_hosts: [example.com]\n", new: "  allowed_hosts: [example.com\n",
			want: []string{`25: YAML syntax: did not find expected ',' or ']'`},
		},
		{
			name: "every problem is reported",
			old:  "version: \"1\"\n", new: "version: \"1\"\nlegal_time_zone: Nowhere\nminimum_age: 200\nphone_region: cn\n",
			want: []string{
				`2: legal_time_zone: unknown time zone "Nowhere"`,
				`3: minimum_age must be between 0 and 150 (0: no minimum age)`,
				`4: phone_region "cn" must be a two-letter uppercase region code such as CN`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := base + tt.new
			if tt.old != "" {
				if !strings.Contains(base, tt.old) {
					t.Fatalf("base does not contain %q", tt.old)
				}
				src = strings.Replace(base, tt.old, tt.new, 1)
			}
			d, err := Parse([]byte(src), "test.yaml")
			if d != nil {
				t.Errorf("Parse returned a declaration along with error %v", err)
			}
			if diff := cmp.Diff(tt.want, problemLines(t, err)); diff != "" {
				t.Errorf("problems (-want +got):\n%s\nsource:\n%s", diff, src)
			}
		})
	}
}

// problemLines returns "line: message" for each problem in err, which must be an
// EINVALID *steward.Error wrapping a *ValidationError.
func problemLines(t *testing.T, err error) []string {
	t.Helper()
	if code := steward.ErrorCode(err); code != steward.EINVALID {
		t.Fatalf("error code = %q, want EINVALID (err: %v)", code, err)
	}
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("error %v does not wrap a *ValidationError", err)
	}
	var out []string
	for _, p := range verr.Problems {
		out = append(out, fmt.Sprintf("%d: %s", p.Line, p.Message))
	}
	return out
}

func TestValidationErrorFormat(t *testing.T) {
	src := strings.Replace(base, "kind: string", "kind: strng\n    colour: red", 1)
	_, err := Parse([]byte(src), "decl.yaml")
	var verr *ValidationError
	if !errors.As(err, &verr) {
		t.Fatalf("got %v, want a *ValidationError", err)
	}
	want := `decl.yaml:16: field "nickname": unknown kind "strng" (want string, phone, date, enum, bytes, list, location or derived)` + "\n" +
		`decl.yaml:17: unknown key "colour" in field "nickname"`
	if got := verr.Error(); got != want {
		t.Errorf("Error() =\n%s\nwant\n%s", got, want)
	}
	wantPaths := []string{"fields[1].kind", "fields[1].colour"}
	var paths []string
	for _, p := range verr.Problems {
		paths = append(paths, p.Path)
	}
	if diff := cmp.Diff(wantPaths, paths); diff != "" {
		t.Errorf("paths (-want +got):\n%s", diff)
	}
	if got, want := steward.ErrorMessage(err), "invalid declaration (2 problems)"; got != want {
		t.Errorf("ErrorMessage = %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "declaration.yaml")
	if err := os.WriteFile(path, []byte(strings.Replace(base, "kind: phone", "kind: telephone", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	var verr *ValidationError
	if !errors.As(err, &verr) || verr.Name != path || len(verr.Problems) != 1 || verr.Problems[0].Line != 11 {
		t.Errorf("Load(invalid) = %v, want one problem on line 11 named %s", err, path)
	}
	if _, err := Load(filepath.Join(dir, "missing.yaml")); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("Load(missing) code = %q, want ENOTFOUND", steward.ErrorCode(err))
	}
}

func TestDefault(t *testing.T) {
	d := Default()
	if d.Version != "2026-11-01" || d.Controller.Name != "ComMarker" || d.Controller.Website != "https://commaker.com" || d.Controller.ComplaintChannel == "" {
		t.Errorf("version/controller = %q %+v", d.Version, d.Controller)
	}
	if d.LegalTimeZone != "Asia/Shanghai" || d.Location().String() != "Asia/Shanghai" || d.MinimumAge != 18 || d.PhoneRegion != "CN" {
		t.Errorf("zone/age/region = %q %v %d %q", d.LegalTimeZone, d.Location(), d.MinimumAge, d.PhoneRegion)
	}
	wantRequests := steward.RequestPolicy{
		ResponseDays: 15, Calendar: "cn-2026",
		Repeat: steward.RepeatLimits{WindowDays: 30, FreeAllowance: 2, Action: "fee", FeeMinor: 2000, Currency: "CNY"},
	}
	if diff := cmp.Diff(wantRequests, d.Requests, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]steward.Region{{ID: "cn", Name: "Mainland China", Default: true}}, d.Regions); diff != "" {
		t.Errorf("regions (-want +got):\n%s", diff)
	}

	until := steward.Retention{Rule: steward.RetainUntilCancellation}
	wantFields := []steward.Field{
		{Name: "phone", Category: "identity", Sensitive: true, Kind: steward.KindPhone, Purposes: []string{"account", "risk_control", "member_notifications", "marketing"}, Retention: until},
		{Name: "wechat_id", Category: "identity", Kind: steward.KindString, MaxLength: 64, Purposes: []string{"account"}, Retention: until},
		{Name: "nickname", Category: "profile", Kind: steward.KindString, MaxLength: 32, Purposes: []string{"account"}, Retention: until},
		{Name: "birthday", Category: "profile", Kind: steward.KindDate, Purposes: []string{"account"}, Retention: until},
		{Name: "gender", Category: "profile", Kind: steward.KindEnum, Values: []string{"female", "male", "other", "undisclosed"}, Purposes: []string{"account"}, Retention: until},
		{Name: "photo", Category: "profile", Sensitive: true, Kind: steward.KindBytes, MaxBytes: 5 << 20, ContentTypes: []string{"image/jpeg", "image/png", "image/webp"}, Purposes: []string{"account"}, Retention: until},
		{Name: "imei", Category: "device", Sensitive: true, Kind: steward.KindString, MaxLength: 32, Purposes: []string{"risk_control"}, Retention: until},
		{Name: "imsi", Category: "device", Sensitive: true, Kind: steward.KindString, MaxLength: 32, Purposes: []string{"risk_control"}, Retention: until},
		{Name: "installed_apps", Category: "device", Kind: steward.KindList, MaxItems: 500, MaxLength: 255, Purposes: []string{"risk_control"}, Retention: until},
		{Name: "contacts", Category: "contacts", Sensitive: true, Kind: steward.KindDerived, Purposes: []string{"contact_shielding"}, Retention: until},
		{Name: "location", Category: "location", Sensitive: true, Kind: steward.KindLocation, Precision: 2, Purposes: []string{"location_services"}, Retention: steward.Retention{Rule: steward.RetainFor, Days: 90}},
		{Name: "link_clicks", Category: "usage", Kind: steward.KindDerived, Purposes: []string{"analytics"}, Retention: steward.Retention{Rule: steward.RetainFor, Days: 180}},
	}
	if diff := cmp.Diff(wantFields, d.Fields, cmpopts.IgnoreFields(steward.Field{}, "Description")); diff != "" {
		t.Errorf("fields (-want +got):\n%s", diff)
	}
	for _, f := range d.Fields {
		if f.Description == "" {
			t.Errorf("field %q has no description", f.Name)
		}
	}

	wantPurposes := []steward.Purpose{
		{Name: "account", LegalBasis: "consent", Required: true, Fields: []string{"phone", "wechat_id", "nickname", "birthday", "gender", "photo"}},
		{Name: "risk_control", LegalBasis: "consent", Required: true, Fields: []string{"phone", "imei", "imsi", "installed_apps"}},
		{Name: "contact_shielding", LegalBasis: "consent", Fields: []string{"contacts"}},
		{Name: "location_services", LegalBasis: "consent", Fields: []string{"location"}},
		{Name: "member_notifications", LegalBasis: "consent", Fields: []string{"phone"}},
		{Name: "analytics", LegalBasis: "consent", Fields: []string{"link_clicks"}},
		{Name: "marketing", LegalBasis: "consent", Fields: []string{"phone"}},
	}
	if diff := cmp.Diff(wantPurposes, d.Purposes, cmpopts.IgnoreFields(steward.Purpose{}, "Description")); diff != "" {
		t.Errorf("purposes (-want +got):\n%s", diff)
	}
	for _, p := range d.Purposes {
		if p.Description == "" {
			t.Errorf("purpose %q has no description", p.Name)
		}
	}
	if diff := cmp.Diff([]string{"account", "risk_control"}, d.RequiredPurposes()); diff != "" {
		t.Errorf("required purposes (-want +got):\n%s", diff)
	}

	wantApps := []steward.ClientApp{
		{ID: "app", Purposes: []string{"account", "risk_control", "contact_shielding", "location_services", "member_notifications", "analytics", "marketing"}},
		{ID: "risk-engine", Purposes: []string{"risk_control"}},
	}
	if diff := cmp.Diff(wantApps, d.ClientApps, cmpopts.IgnoreFields(steward.ClientApp{}, "Name")); diff != "" {
		t.Errorf("client apps (-want +got):\n%s", diff)
	}
	wantLinks := steward.LinkPolicy{AllowedHosts: []string{"commaker.com", "www.commaker.com"}, TrackingPurpose: "analytics", MarketingPurpose: "marketing"}
	if diff := cmp.Diff(wantLinks, d.Links); diff != "" {
		t.Errorf("links (-want +got):\n%s", diff)
	}
	if len(d.Decisions) != 1 {
		t.Fatalf("decision systems = %+v, want one", d.Decisions)
	}
	ds := d.Decisions[0]
	if ds.Purpose != "risk_control" || ds.LogicSummary == "" || !cmp.Equal(ds.Inputs, []string{"device"}) || ds.Significance != "may block sign-in" || !ds.SolelyAutomated {
		t.Errorf("decision system = %+v", ds)
	}
}

func TestDefaultReturnsCopies(t *testing.T) {
	a := Default()
	a.Fields[0].Purposes[0] = "changed"
	a.Purposes = nil
	b := Default()
	if b.Fields[0].Purposes[0] != "account" || len(b.Purposes) != 7 {
		t.Errorf("changing one Default() changed the next: %v, %d purposes", b.Fields[0].Purposes, len(b.Purposes))
	}
	y := DefaultYAML()
	y[0] = 'X'
	if DefaultYAML()[0] == 'X' {
		t.Error("DefaultYAML returns the embedded slice itself")
	}
}

func TestDefaultYAMLCitesPolicy(t *testing.T) {
	d, err := Parse(DefaultYAML(), "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Default(), d, cmpopts.IgnoreUnexported(steward.Declaration{})); diff != "" {
		t.Errorf("DefaultYAML and Default differ (-Default +DefaultYAML):\n%s", diff)
	}
	// The comments say which policy section each part comes from.
	text := strings.ToLower(string(DefaultYAML()))
	if n := strings.Count(text, "policy §"); n < 20 {
		t.Errorf("default.yaml cites the policy %d times; want every part to say where it comes from", n)
	}
}
