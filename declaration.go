package steward

import (
	"slices"
	"time"
)

// Declaration is the machine-readable privacy policy: who the controller is, which
// fields of personal information are collected, for which purposes and under which
// legal basis, how long they are kept, where they are stored, which client apps may
// use them and how rights requests are answered. One declaration serves every client
// app of a deployment (policy §11). The declaration package parses and validates it;
// a *Declaration handed to the rest of Steward is always valid.
type Declaration struct {
	Version       string           `yaml:"version" json:"version"`                   // notice version, e.g. "2026-11-01"; recorded on every consent event
	Controller    Controller       `yaml:"controller" json:"controller"`             // the personal information processor
	LegalTimeZone string           `yaml:"legal_time_zone" json:"legal_time_zone"`   // IANA zone for ages and deadlines; default Asia/Shanghai
	MinimumAge    int              `yaml:"minimum_age" json:"minimum_age"`           // years; registration below it is refused (policy §7)
	PhoneRegion   string           `yaml:"phone_region" json:"phone_region"`         // ISO 3166 alpha-2 default region for phone numbers, e.g. "CN"
	Requests      RequestPolicy    `yaml:"requests" json:"requests"`                 // rights-request clock and limits (policy §6)
	Regions       []Region         `yaml:"regions" json:"regions"`                   // where PI may be stored (policy §8)
	Fields        []Field          `yaml:"fields" json:"fields"`                     // every item of PI collected; anything else is refused
	Purposes      []Purpose        `yaml:"purposes" json:"purposes"`                 // why PI is processed
	ClientApps    []ClientApp      `yaml:"client_apps" json:"client_apps"`           // API clients sharing this declaration
	Links         LinkPolicy       `yaml:"links" json:"links"`                       // tracked links and unsubscribe (policy §3)
	Decisions     []DecisionSystem `yaml:"decision_systems" json:"decision_systems"` // automated decision-making systems (policy §6, PIPL Art. 24)

	location *time.Location
}

// Controller names the personal information processor and how to reach its
// personal-information protection function (policy §10, PIPL Art. 17, 52).
type Controller struct {
	Name              string `yaml:"name" json:"name"`
	Website           string `yaml:"website" json:"website,omitempty"`
	Email             string `yaml:"email" json:"email,omitempty"`
	Phone             string `yaml:"phone" json:"phone,omitempty"`
	Address           string `yaml:"address" json:"address,omitempty"`
	ProtectionOfficer string `yaml:"protection_officer" json:"protection_officer,omitempty"` // person or department in charge of PI protection
	ComplaintChannel  string `yaml:"complaint_channel" json:"complaint_channel"`             // where a subject complains (policy §10)
}

// RequestPolicy sets how rights requests are answered (policy §6, PIPL Art. 50).
type RequestPolicy struct {
	ResponseDays        int                 `yaml:"response_days" json:"response_days"`                           // deadline length; default 15
	WorkingDays         bool                `yaml:"working_days" json:"working_days"`                             // count working days instead of calendar days
	Calendar            string              `yaml:"calendar" json:"calendar,omitempty"`                           // built-in working-day calendar name, e.g. "cn-2026"
	ExtensionDays       int                 `yaml:"extension_days" json:"extension_days"`                         // 0: no extension allowed
	Repeat              RepeatLimits        `yaml:"repeat" json:"repeat"`                                         // allowance before a request is excessive
	ExtraRefusalGrounds []RefusalGroundSpec `yaml:"extra_refusal_grounds" json:"extra_refusal_grounds,omitempty"` // e.g. GB/T 35273-2020 §8.7 cases
}

// RepeatLimits is the declaration's allowance of free requests of one type per
// window; past it a request is excessive and costs a fee or is refused (policy §6).
type RepeatLimits struct {
	WindowDays    int    `yaml:"window_days" json:"window_days"`
	FreeAllowance int    `yaml:"free_allowance" json:"free_allowance"`
	Action        string `yaml:"action" json:"action"`       // "fee" or "refuse"
	FeeMinor      int64  `yaml:"fee_minor" json:"fee_minor"` // fee in minor units (fen for CNY)
	Currency      string `yaml:"currency" json:"currency"`
}

// RefusalGroundSpec is an extra refusal ground a deployment configures.
type RefusalGroundSpec struct {
	Code   string `yaml:"code" json:"code"`
	Title  string `yaml:"title" json:"title"`
	Source string `yaml:"source" json:"source"`
}

// Region is a place PI may be stored; a subject's PI stays in its region (policy §8).
type Region struct {
	ID      string `yaml:"id" json:"id"`
	Name    string `yaml:"name" json:"name"`
	Default bool   `yaml:"default" json:"default"`
}

// Field kinds.
const (
	KindString   = "string"   // UTF-8 text up to MaxLength runes
	KindPhone    = "phone"    // phone number, normalized to E.164
	KindDate     = "date"     // calendar date YYYY-MM-DD
	KindEnum     = "enum"     // one of Values
	KindBytes    = "bytes"    // binary upload (photo), MaxBytes and ContentTypes apply
	KindList     = "list"     // list of strings
	KindLocation = "location" // latitude/longitude, reduced to Precision decimal places
	KindDerived  = "derived"  // held by Steward in its own form (address-book hashes, click events)
)

// Retention rules.
const (
	RetainUntilCancellation = "until_cancellation" // kept while the account exists (policy §2.1)
	RetainFor               = "duration"           // kept for Days days after collection
)

// Field is one declared item of personal information.
type Field struct {
	Name         string    `yaml:"name" json:"name"`
	Description  string    `yaml:"description" json:"description,omitempty"`
	Category     string    `yaml:"category" json:"category"`   // e.g. identity, contact, device, location, profile
	Sensitive    bool      `yaml:"sensitive" json:"sensitive"` // PIPL Art. 28; needs separate consent (Art. 29)
	Kind         string    `yaml:"kind" json:"kind"`
	MaxLength    int       `yaml:"max_length" json:"max_length,omitempty"`       // runes, for KindString and KindList items
	MaxItems     int       `yaml:"max_items" json:"max_items,omitempty"`         // for KindList
	Values       []string  `yaml:"values" json:"values,omitempty"`               // for KindEnum
	MaxBytes     int       `yaml:"max_bytes" json:"max_bytes,omitempty"`         // for KindBytes
	ContentTypes []string  `yaml:"content_types" json:"content_types,omitempty"` // for KindBytes
	Precision    int       `yaml:"precision" json:"precision,omitempty"`         // decimal places kept, for KindLocation
	Purposes     []string  `yaml:"purposes" json:"purposes"`
	Retention    Retention `yaml:"retention" json:"retention"`
}

// Retention says how long a field is kept (policy §8).
type Retention struct {
	Rule string `yaml:"rule" json:"rule"`           // RetainUntilCancellation or RetainFor
	Days int    `yaml:"days" json:"days,omitempty"` // for RetainFor
}

// Legal bases (PIPL Art. 13).
const (
	BasisConsent         = "consent"          // Art. 13(1)
	BasisContract        = "contract"         // Art. 13(2): necessary to conclude or perform a contract
	BasisLegalObligation = "legal_obligation" // Art. 13(3)
	BasisExceptionPrefix = "exception:"       // Art. 13(4)-(7): a named statutory exception
)

// Purpose is why PI is processed and under which legal basis.
type Purpose struct {
	Name        string   `yaml:"name" json:"name"`
	Description string   `yaml:"description" json:"description"`
	LegalBasis  string   `yaml:"legal_basis" json:"legal_basis"`
	Required    bool     `yaml:"required" json:"required"` // consent needed at registration; otherwise optional
	Fields      []string `yaml:"fields" json:"fields"`
}

// ClientApp is an API client (an app backend) and the purposes it may process for.
type ClientApp struct {
	ID       string   `yaml:"id" json:"id"`
	Name     string   `yaml:"name" json:"name"`
	Purposes []string `yaml:"purposes" json:"purposes"`
}

// LinkPolicy governs tracked links (policy §3).
type LinkPolicy struct {
	AllowedHosts     []string `yaml:"allowed_hosts" json:"allowed_hosts"`
	TrackingPurpose  string   `yaml:"tracking_purpose" json:"tracking_purpose"`   // purpose whose consent allows recording a click
	MarketingPurpose string   `yaml:"marketing_purpose" json:"marketing_purpose"` // purpose withdrawn by unsubscribe
}

// DecisionSystem is an automated decision-making system (PIPL Art. 24, policy §6).
type DecisionSystem struct {
	Name            string   `yaml:"name" json:"name"`
	Purpose         string   `yaml:"purpose" json:"purpose"`
	LogicSummary    string   `yaml:"logic_summary" json:"logic_summary"`
	Inputs          []string `yaml:"inputs" json:"inputs"` // field categories or names used
	Significance    string   `yaml:"significance" json:"significance"`
	SolelyAutomated bool     `yaml:"solely_automated" json:"solely_automated"`
}

// SetLocation records the resolved legal time zone; the declaration package calls it
// after validation.
func (d *Declaration) SetLocation(loc *time.Location) { d.location = loc }

// Location returns the legal time zone; Asia/Shanghai's offset if never set.
func (d *Declaration) Location() *time.Location {
	if d.location != nil {
		return d.location
	}
	return time.FixedZone("CST", 8*3600)
}

// Field returns the declared field called name.
func (d *Declaration) Field(name string) (*Field, bool) {
	for i := range d.Fields {
		if d.Fields[i].Name == name {
			return &d.Fields[i], true
		}
	}
	return nil, false
}

// Purpose returns the declared purpose called name.
func (d *Declaration) Purpose(name string) (*Purpose, bool) {
	for i := range d.Purposes {
		if d.Purposes[i].Name == name {
			return &d.Purposes[i], true
		}
	}
	return nil, false
}

// ClientApp returns the declared client app with the given id.
func (d *Declaration) ClientApp(id string) (*ClientApp, bool) {
	for i := range d.ClientApps {
		if d.ClientApps[i].ID == id {
			return &d.ClientApps[i], true
		}
	}
	return nil, false
}

// DefaultRegion returns the id of the default storage region.
func (d *Declaration) DefaultRegion() string {
	for _, r := range d.Regions {
		if r.Default {
			return r.ID
		}
	}
	if len(d.Regions) > 0 {
		return d.Regions[0].ID
	}
	return "cn"
}

// Sensitive reports whether purpose p covers any sensitive field, so that its
// consent must be separate (PIPL Art. 29).
func (d *Declaration) Sensitive(p *Purpose) bool {
	for _, name := range p.Fields {
		if f, ok := d.Field(name); ok && f.Sensitive {
			return true
		}
	}
	return false
}

// RequiredPurposes returns the names of the purposes whose consent registration needs.
func (d *Declaration) RequiredPurposes() []string {
	var out []string
	for _, p := range d.Purposes {
		if p.Required && p.LegalBasis == BasisConsent {
			out = append(out, p.Name)
		}
	}
	return out
}

// AppMayUse reports whether client app id is declared for purpose.
func (d *Declaration) AppMayUse(appID, purpose string) bool {
	a, ok := d.ClientApp(appID)
	return ok && slices.Contains(a.Purposes, purpose)
}
