package steward

import (
	"fmt"
	"time"
)

// Consent actions.
const (
	ConsentGrant    = "grant"
	ConsentWithdraw = "withdraw"
)

// Consent methods: how the subject expressed the choice (ISO/IEC TS 27560 "method").
const (
	MethodRegistration = "registration_form" // ticked at registration
	MethodSelfService  = "self_service"      // the subject through the API or privacy center
	MethodUnsubscribe  = "unsubscribe_link"  // RFC 8058 one-click or the unsubscribe page
	MethodStaff        = "staff_recorded"    // staff recorded it on the subject's behalf
)

// ConsentEvent is one consent decision, kept for ever as proof (PIPL Art. 14, 15;
// policy §6). Its fields follow the ISO/IEC TS 27560 consent record: who (SubjectID),
// what (Purpose, Separate), under which notice (NoticeVersion), how (Method), when
// (At) and recorded by whom (Actor). A withdrawal is a new event and is prospective:
// processing before At stays lawful (PIPL Art. 15).
type ConsentEvent struct {
	ID            string    `json:"id"`
	SubjectID     string    `json:"subject_id"`
	Purpose       string    `json:"purpose"`
	Action        string    `json:"action"`           // ConsentGrant or ConsentWithdraw
	Separate      bool      `json:"separate_consent"` // separate consent for sensitive PI (PIPL Art. 29)
	NoticeVersion string    `json:"notice_version"`
	Method        string    `json:"method"`
	Actor         string    `json:"actor"` // "kind:id"
	At            time.Time `json:"at"`
}

// ConsentState is the consent in force for one subject and purpose.
type ConsentState struct {
	Purpose       string    `json:"purpose"`
	Granted       bool      `json:"granted"`
	Separate      bool      `json:"separate_consent"`
	NoticeVersion string    `json:"notice_version"`
	EventID       string    `json:"event_id"`
	At            time.Time `json:"at"`
}

// ConsentReceipt is the record handed to the subject after a consent decision
// (ISO/IEC TS 27560; Kantara consent receipt): the controller, the notice version,
// the purpose with its legal basis and fields, the decision and its time.
type ConsentReceipt struct {
	ReceiptID       string       `json:"receipt_id"`
	Version         string       `json:"version"` // receipt schema version, "steward.consent-receipt/v1"
	Controller      Controller   `json:"controller"`
	SubjectID       string       `json:"subject_id"`
	NoticeVersion   string       `json:"notice_version"`
	Event           ConsentEvent `json:"event"`
	Purpose         Purpose      `json:"purpose"`
	SensitiveFields []string     `json:"sensitive_fields"`
	IssuedAt        time.Time    `json:"issued_at"`
	// FieldsDeleted lists, on a withdrawal, the fields erased because no purpose
	// with a legal basis covers them any more (PIPL Art. 47).
	FieldsDeleted []string `json:"fields_deleted,omitempty"`
}

// ConsentChoice is one purpose a subject grants or withdraws.
type ConsentChoice struct {
	Purpose  string `json:"purpose"`
	Separate bool   `json:"separate_consent"`
}

// CheckConsentChoice validates a grant of purpose under declaration d: the purpose
// must be declared and consent-based, and a purpose covering sensitive PI needs
// separate consent (PIPL Art. 29, GB/T 35273-2020 §5.4). Errors are EINVALID.
func (d *Declaration) CheckConsentChoice(c ConsentChoice) (*Purpose, error) {
	p, ok := d.Purpose(c.Purpose)
	if !ok {
		return nil, Errorf(EINVALID, "purpose %q is not declared", c.Purpose)
	}
	if p.LegalBasis != BasisConsent {
		return nil, Errorf(EINVALID, "purpose %s is processed under legal basis %s, not consent", p.Name, p.LegalBasis)
	}
	if d.Sensitive(p) && !c.Separate {
		return nil, Errorf(EINVALID, "purpose %s covers sensitive personal information (%s): separate_consent must be true", p.Name, joinNames(d.SensitiveFields(p)))
	}
	return p, nil
}

// SensitiveFields returns the names of purpose p's sensitive fields.
func (d *Declaration) SensitiveFields(p *Purpose) []string {
	var out []string
	for _, name := range p.Fields {
		if f, ok := d.Field(name); ok && f.Sensitive {
			out = append(out, name)
		}
	}
	return out
}

// BasisHolds reports whether purpose p's legal basis holds for a subject whose
// consent in force for p is st (nil when none was ever recorded). It returns nil or
// EFORBIDDEN naming what is missing (PIPL Art. 13, 29; policy §2, §6).
func (d *Declaration) BasisHolds(p *Purpose, st *ConsentState) error {
	if p.LegalBasis != BasisConsent {
		if d.Sensitive(p) && (st == nil || !st.Granted || !st.Separate) {
			return Errorf(EFORBIDDEN, "purpose %s: separate consent for sensitive personal information is missing", p.Name)
		}
		return nil
	}
	switch {
	case st == nil:
		return Errorf(EFORBIDDEN, "purpose %s: the subject has not given consent", p.Name)
	case !st.Granted:
		return Errorf(EFORBIDDEN, "purpose %s: the subject withdrew consent at %s", p.Name, st.At.UTC().Format(time.RFC3339))
	case d.Sensitive(p) && !st.Separate:
		return Errorf(EFORBIDDEN, "purpose %s: separate consent for sensitive personal information is missing", p.Name)
	}
	return nil
}

func joinNames(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += ", "
		}
		s += n
	}
	return s
}

// Apply returns the state after event e.
func (e ConsentEvent) Apply() ConsentState {
	return ConsentState{Purpose: e.Purpose, Granted: e.Action == ConsentGrant, Separate: e.Action == ConsentGrant && e.Separate,
		NoticeVersion: e.NoticeVersion, EventID: e.ID, At: e.At}
}

// String describes the event without PI.
func (e ConsentEvent) String() string {
	return fmt.Sprintf("consent %s %s %s", e.Action, e.Purpose, e.ID)
}
