package steward

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Audit actions of the rights-request life cycle. Details name request ids, types,
// states and ground codes, never the subject's words.
const (
	AuditRequestFile     = "request.file"         // a request was filed
	AuditRequestEvent    = "request.event"        // one RequestEvent: a transition or a recorded fact
	AuditRequestDetails  = "request.read_details" // staff opened a request's sealed details or answer
	AuditRequestFulfil   = "request.fulfil"       // fulfilment work started, failed or finished
	AuditRequestReminder = "request.reminder"     // a deadline reminder was queued for the controller
)

// Fulfilment states of a RequestRecord: whether the type-specific work ran.
const (
	FulfilNone    = ""        // not started
	FulfilRunning = "running" // claimed by a Fulfil call that has not finished
	FulfilDone    = "done"    // the Fulfiller succeeded; the request completes when no step is pending
)

// Reminder thresholds: one reminder per request per threshold (RemindDue).
const (
	ReminderDueSoon = "due_soon"
	ReminderOverdue = "overdue"
)

// DueSoonWithin is how close a deadline must be for a request to count as due soon
// in the queue, the metrics and the reminders.
const DueSoonWithin = 3 * 24 * time.Hour

// fulfilClaimTTL is how long a fulfilment claim holds. A claim older than this was
// left by a process that stopped mid-work; the next Fulfil takes it over, which is
// why a Fulfiller must be safe to run again.
const fulfilClaimTTL = 30 * time.Minute

// RequestRecord is a rights request as the store keeps it: the domain Request plus
// what the request is about, who works on it and the parts sealed under the
// subject's data key (the subject's own words, the identity-check reference, the
// refusal explanation and the answer). In storage Request.Refusal.Explanation is
// empty: the text lives sealed in RefusalExplanation. StoredEvents is how many of
// Request.Events the store holds; UpdateRequest appends the rest.
type RequestRecord struct {
	Request
	Purpose               string          // withdrawal: the purpose whose consent is withdrawn
	DecisionID            string          // decision_explanation and appeal: the decision concerned
	AssignedTo            string          // staff member handling it
	Input                 []byte          // sealed requestInput
	VerificationReference []byte          // sealed: how staff checked identity (document reference…)
	RefusalExplanation    []byte          // sealed explanation of a refusal
	FulfilState           string          // FulfilNone, FulfilRunning or FulfilDone
	FulfilStartedAt       time.Time       // when the current claim was taken
	Result                json.RawMessage // the Fulfiller's result; no PI
	Answer                []byte          // sealed answer meant for the subject (an export, a reply)
	FeeCount              int             // earlier requests counted when the fee was assessed
	Version               int64           // bumped by every UpdateRequest, for optimistic locking
	StoredEvents          int
}

// DuplicateKey names what an open request is about, so that a second open request
// about the same thing is merged into it (policy §6; SameKind): subject, type and,
// for withdrawals the purpose, for decision explanations and appeals the decision.
// It is "" once the request is closed (terminal states, merged included). The store
// keeps at most one open request per key.
func (r *RequestRecord) DuplicateKey() string {
	if r.State.Terminal() {
		return ""
	}
	k := r.SubjectID + "/" + string(r.Type)
	switch r.Type {
	case RequestWithdrawal:
		k += "/purpose:" + r.Purpose
	case RequestDecisionExplanation, RequestAppeal:
		k += "/decision:" + r.DecisionID
	}
	return k
}

// RequestFilter selects requests for ListRequests. Zero fields do not filter.
type RequestFilter struct {
	SubjectID  string
	Type       RequestType
	States     []RequestState // any of these
	DueBefore  time.Time      // a deadline set and strictly before this instant
	AssignedTo string
	PrimaryID  string // duplicates merged into this request
	Limit      int    // 0: no limit
}

// RequestCounts summarises the open requests at an instant: Open counts every
// request not in a terminal state; DueSoon those whose deadline falls within
// DueSoonWithin and has not passed; Overdue those whose deadline has passed.
type RequestCounts struct {
	Open    int `json:"open"`
	DueSoon int `json:"due_soon"`
	Overdue int `json:"overdue"`
}

// RequestTx is the part of Tx that keeps rights requests and automated decisions.
// Methods return ENOTFOUND for missing rows.
type RequestTx interface {
	// CreateRequest stores r with its events and fee. ECONFLICT when another open
	// request has r's DuplicateKey.
	CreateRequest(ctx context.Context, r *RequestRecord) error
	GetRequest(ctx context.Context, id string) (*RequestRecord, error)
	// UpdateRequest writes r's fields, appends Events[StoredEvents:] and bumps
	// Version. ECONFLICT when the stored version is not r.Version (someone else
	// changed the request) or another open request has r's DuplicateKey.
	UpdateRequest(ctx context.Context, r *RequestRecord) error
	// OpenRequestByKey returns the open request with DuplicateKey key.
	OpenRequestByKey(ctx context.Context, key string) (*RequestRecord, error)
	// ListRequests returns the requests f selects, with their events, soonest
	// deadline first (requests without a deadline last), then oldest first.
	ListRequests(ctx context.Context, f RequestFilter) ([]RequestRecord, error)
	// RequestReceipts returns the receipt times of the subject's requests of type t
	// received at or after since, except merged duplicates and withdrawn requests.
	RequestReceipts(ctx context.Context, subjectID string, t RequestType, since time.Time) ([]time.Time, error)
	// CountRequests counts open requests as RequestCounts, with deadlines compared
	// to now and soon (now + DueSoonWithin).
	CountRequests(ctx context.Context, now, soon time.Time) (RequestCounts, error)
	// AddReminder records that the reminder for threshold was sent for the request
	// and reports whether it is new (false: sent before).
	AddReminder(ctx context.Context, requestID, threshold string, at time.Time) (bool, error)

	CreateDecision(ctx context.Context, d *Decision) error
	GetDecision(ctx context.Context, id string) (*Decision, error)
	// ListDecisions returns the subject's decisions, oldest first.
	ListDecisions(ctx context.Context, subjectID string) ([]Decision, error)
	// ReviewDecision records the outcome of the human review of decision id.
	ReviewDecision(ctx context.Context, id, requestID, outcome string, at time.Time) error
	// AddDecisionOptOut records an opt-out; ECONFLICT when it exists already.
	AddDecisionOptOut(ctx context.Context, o *DecisionOptOut) error
	DecisionOptOuts(ctx context.Context, subjectID string) ([]DecisionOptOut, error)
}

// RequestInput is what a subject submits to file a rights request (policy §6,
// §10). Type decides which other fields apply: DeletionGround for deletion,
// Purpose for withdrawal, DecisionID for decision_explanation (optional: all
// decisions when empty) and appeal (required), Changes for correction (field name
// → new value, JSON null deletes the field, as for UpdateMe), Details for any type
// (required for a complaint). Details and Changes may hold PI: they are sealed
// under the subject's data key.
type RequestInput struct {
	Type           RequestType    `json:"type"`
	DeletionGround DeletionGround `json:"deletion_ground,omitempty"`
	Purpose        string         `json:"purpose,omitempty"`
	DecisionID     string         `json:"decision_id,omitempty"`
	Details        string         `json:"details,omitempty"`
	Changes        FieldValues    `json:"changes,omitempty"`
}

// String describes the input without the subject's words.
func (in RequestInput) String() string {
	return fmt.Sprintf("request input (%s, %d-byte details, changes %v)", in.Type, len(in.Details), in.Changes.Names())
}

// LogValue logs the type and field names only.
func (in RequestInput) LogValue() slog.Value {
	return slog.GroupValue(slog.String("type", string(in.Type)), slog.Any("changes", in.Changes.Names()))
}

// MaxRequestDetails is the longest Details accepted, in characters.
const MaxRequestDetails = 4000

// IdentityCheck is how staff checked a subject's identity when taking a request on
// their behalf: Method is a short code such as "in_person_id_document" or
// "video_call"; Reference is free text (a ticket number, which document was seen)
// and is sealed, since it may hold PI.
type IdentityCheck struct {
	Method    string `json:"method"`
	Reference string `json:"reference,omitempty"`
}

// String hides the reference.
func (c IdentityCheck) String() string { return "identity check (" + c.Method + ")" }

// StaffRequestInput is a request staff take on a subject's behalf: the subject, the
// request and, when identity was checked, how.
type StaffRequestInput struct {
	RequestInput
	SubjectID     string         `json:"subject_id"`
	IdentityCheck *IdentityCheck `json:"identity_check,omitempty"`
}

// FulfilInput is what staff add when fulfilling: the reply to a complaint or the
// note of an appeal's human review (sealed, shown to the subject), and an appeal's
// review outcome (one of DecisionReviewOutcomes).
type FulfilInput struct {
	Reply   string `json:"reply,omitempty"`
	Outcome string `json:"outcome,omitempty"`
}

// requestInput is the sealed part of a request.
type requestInput struct {
	Details string      `json:"details,omitempty"`
	Changes FieldValues `json:"changes,omitempty"`
}

// RequestView is a request as shown to the subject or to staff: the request with
// its history, what it is about, its deadline status, its fulfilment and, for the
// subject and staff allowed to see PI, the opened details and answer. Details,
// Changes, VerificationReference, the refusal explanation and Answer are left out
// for staff without PermRequestViewDetails (DetailsRedacted is then true).
type RequestView struct {
	Request
	Purpose               string           `json:"purpose,omitempty"`
	DecisionID            string           `json:"decision_id,omitempty"`
	AssignedTo            string           `json:"assigned_to,omitempty"`
	Details               string           `json:"details,omitempty"`
	Changes               FieldValues      `json:"changes,omitempty"`
	VerificationReference string           `json:"verification_reference,omitempty"`
	RefusalGroundTitle    string           `json:"refusal_ground_title,omitempty"` // Deprecated: the same as Refusal.GroundTitle.
	DueSoon               bool             `json:"due_soon"`
	Overdue               bool             `json:"overdue"`
	Fulfilment            string           `json:"fulfilment,omitempty"` // running, waiting_for_steps, done
	PendingSteps          []FulfilmentStep `json:"pending_steps,omitempty"`
	Result                json.RawMessage  `json:"result,omitempty"`
	Answer                json.RawMessage  `json:"answer,omitempty"`
	Duplicates            []string         `json:"duplicates,omitempty"`
	DetailsRedacted       bool             `json:"details_redacted,omitempty"`
}

// String describes the view by id, type and state only.
func (v RequestView) String() string { return v.Request.String() }

// LogValue logs id, type and state only.
func (v RequestView) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", v.ID), slog.String("type", string(v.Type)), slog.String("state", string(v.State)))
}

// RequestQueue is the staff queue: the requests selected and the counts of all open
// requests.
type RequestQueue struct {
	Requests []RequestView `json:"requests"`
	Counts   RequestCounts `json:"counts"`
}

// RequestService runs the rights-request life cycle (policy §6 and §10, P17–P24,
// P30) on top of a Service: filing, identity checks, duplicates and repeats,
// deadlines, the staff queue, refusals, extensions, fulfilment through Fulfillers,
// reminders, and automated decisions (decision.go). Every change is one
// transaction holding the request, its events, their audit entries and any outbox
// message. It is safe for concurrent use once configured.
type RequestService struct {
	svc        *Service
	rule       DeadlineRule
	ext        DeadlineRule
	cal        *Calendar
	grounds    RefusalGrounds
	fulfillers map[RequestType]Fulfiller
	// AutoFulfil lists the types fulfilled by the system as soon as identity is
	// verified: the subject's own withdrawal and the explanations, which need no
	// staff judgement. Default: withdrawal, explanation, decision_explanation.
	AutoFulfil map[RequestType]bool
}

var _ RequestCompleter = (*RequestService)(nil)

// NewRequestService returns the request life cycle for svc, with the deadline rule,
// calendar and refusal grounds of svc's declaration, the default Fulfiller for every
// type, and svc's exports listing the subject's requests. It returns EINVALID when
// the declaration counts working days and names no known calendar, or configures
// an invalid refusal ground.
func NewRequestService(svc *Service) (*RequestService, error) {
	d := svc.Declaration()
	rp := d.Requests
	loc := d.Location()
	rs := &RequestService{svc: svc, fulfillers: map[RequestType]Fulfiller{},
		rule:       DeadlineRule{Days: rp.ResponseDays, WorkingDays: rp.WorkingDays, Location: loc},
		ext:        DeadlineRule{Days: rp.ExtensionDays, WorkingDays: rp.WorkingDays, Location: loc},
		AutoFulfil: map[RequestType]bool{RequestWithdrawal: true, RequestExplanation: true, RequestDecisionExplanation: true}}
	if rs.rule.Days == 0 {
		rs.rule.Days = 15
	}
	if rp.Calendar != "" {
		cal, err := BuiltinCalendar(rp.Calendar)
		if err != nil && rp.WorkingDays {
			return nil, err
		}
		rs.cal = cal
	} else if rp.WorkingDays {
		return nil, Errorf(EINVALID, "The declaration counts working days but names no calendar (requests.calendar).")
	}
	var extra []RefusalGroundInfo
	for _, g := range rp.ExtraRefusalGrounds {
		extra = append(extra, RefusalGroundInfo{Code: RefusalGround(g.Code), Title: g.Title, Source: g.Source})
	}
	grounds, err := NewRefusalGrounds(extra...)
	if err != nil {
		return nil, err
	}
	rs.grounds = grounds
	for _, t := range RequestTypes() {
		rs.fulfillers[t] = defaultFulfiller{rs: rs}
	}
	svc.SetRequestLister(rs.listForExport)
	return rs, nil
}

// SetFulfiller makes f carry out requests of type t, replacing the default. Call it
// while wiring, before serving.
func (rs *RequestService) SetFulfiller(t RequestType, f Fulfiller) { rs.fulfillers[t] = f }

// DefaultFulfiller returns Steward's own Fulfiller for t, for a feature that wraps
// it (runs it, then adds steps of its own). It creates no steps.
func (rs *RequestService) DefaultFulfiller(t RequestType) Fulfiller { return defaultFulfiller{rs: rs} }

// RefusalGrounds returns the grounds requests may be refused on in this deployment.
func (rs *RequestService) RefusalGrounds() RefusalGrounds { return rs.grounds }

// DeadlineRule returns the rule every request's deadline is computed with.
func (rs *RequestService) DeadlineRule() DeadlineRule { return rs.rule }

// Service returns the underlying Service.
func (rs *RequestService) Service() *Service { return rs.svc }

// complaintChannel returns where a refused subject may complain (policy §10).
func (rs *RequestService) complaintChannel() string {
	c := rs.svc.decl.Controller
	if strings.TrimSpace(c.ComplaintChannel) != "" {
		return c.ComplaintChannel
	}
	var ways []string
	for _, w := range []string{c.Email, c.Phone, c.Address, c.Website} {
		if w != "" {
			ways = append(ways, w)
		}
	}
	return "Contact " + c.Name + " (" + strings.Join(ways, ", ") + ")."
}

// ---- Filing ----

// File files a rights request for the signed-in subject (policy §6, §10). The
// request is received at once, its deadline fixed from the declaration (for a
// complaint: from identity verification, policy §10). A second open request about
// the same thing (DuplicateKey) is merged into the first: one fulfilment, the first
// deadline kept. Otherwise a repeat-limited type beyond the declaration's allowance
// is excessive: it carries the declared fee, or is refused at once on
// unreasonably_repetitive. The subject then proves identity with
// SendVerificationCode and VerifyWithCode.
//
// Errors: EUNAUTHORIZED unless signed in as a subject; EINVALID for an unknown
// type, a missing or misplaced deletion ground, purpose, decision or changes, or
// details that are too long; ENOTFOUND for another subject's decision; ECONFLICT
// for a withdrawal of consent not in force; EGONE for a cancelled account.
func (rs *RequestService) File(ctx context.Context, in RequestInput) (*RequestView, error) {
	id, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := rs.file(ctx, id, in, nil)
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, true)
}

// FileOnBehalf files a request for in.SubjectID taken by staff (by phone, letter or
// at a desk). With in.IdentityCheck the request is verified at once, recording the
// method, the staff member and the sealed reference; without it the request waits
// for VerifyOnBehalf or for the subject's one-time code. Staff need
// PermRequestFile. Errors as for File, plus EFORBIDDEN for a missing role,
// ENOTFOUND "subject not found" for an unknown subject, EGONE for a cancelled
// (erased) one, both before the input is judged, and EINVALID for an identity
// check without a method or claiming "otp".
func (rs *RequestService) FileOnBehalf(ctx context.Context, in StaffRequestInput) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestFile); err != nil {
		return nil, err
	}
	if in.SubjectID == "" {
		return nil, Errorf(EINVALID, "subject_id is required")
	}
	rec, err := rs.file(ctx, in.SubjectID, in.RequestInput, in.IdentityCheck)
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

var identityMethod = regexp.MustCompile(`^[a-z][a-z0-9_]{1,63}$`)

func checkIdentityCheck(c IdentityCheck) error {
	if !identityMethod.MatchString(c.Method) {
		return Errorf(EINVALID, "identity_check.method must be a short snake_case code such as in_person_id_document")
	}
	if c.Method == "otp" {
		return Errorf(EINVALID, "identity_check.method otp is recorded only when the subject enters a one-time code")
	}
	if utf8.RuneCountInString(c.Reference) > 500 {
		return Errorf(EINVALID, "identity_check.reference is longer than 500 characters")
	}
	return nil
}

// checkInput validates in for its type and returns the normalized sealed part.
func (rs *RequestService) checkInput(ctx context.Context, subjectID string, in *RequestInput) (*requestInput, error) {
	if !in.Type.Valid() {
		return nil, Errorf(EINVALID, "type must be one of %s", joinTypes())
	}
	if in.Type != RequestDeletion && in.DeletionGround != "" {
		return nil, Errorf(EINVALID, "only a deletion request has a deletion_ground")
	}
	if in.Type == RequestDeletion && !in.DeletionGround.Valid() {
		return nil, Errorf(EINVALID, "a deletion request needs deletion_ground, one of %s", joinGrounds())
	}
	if in.Type != RequestWithdrawal && in.Purpose != "" {
		return nil, Errorf(EINVALID, "only a withdrawal request names a purpose")
	}
	if in.Type != RequestDecisionExplanation && in.Type != RequestAppeal && in.DecisionID != "" {
		return nil, Errorf(EINVALID, "only a decision_explanation or appeal request names a decision_id")
	}
	if in.Type != RequestCorrection && len(in.Changes) > 0 {
		return nil, Errorf(EINVALID, "only a correction request carries changes")
	}
	if utf8.RuneCountInString(in.Details) > MaxRequestDetails {
		return nil, Errorf(EINVALID, "details are longer than %d characters", MaxRequestDetails)
	}
	if !utf8.ValidString(in.Details) {
		return nil, Errorf(EINVALID, "details must be UTF-8 text")
	}
	sealed := &requestInput{Details: strings.TrimSpace(in.Details)}
	switch in.Type {
	case RequestWithdrawal:
		p, ok := rs.svc.decl.Purpose(in.Purpose)
		if !ok {
			return nil, Errorf(EINVALID, "a withdrawal request needs purpose, a declared purpose")
		}
		if p.LegalBasis != BasisConsent {
			return nil, Errorf(EINVALID, "purpose %s is processed under legal basis %s, not consent; there is no consent to withdraw", p.Name, p.LegalBasis)
		}
	case RequestAppeal:
		if in.DecisionID == "" {
			return nil, Errorf(EINVALID, "an appeal needs decision_id, the decision appealed against")
		}
	case RequestComplaint:
		if sealed.Details == "" {
			return nil, Errorf(EINVALID, "a complaint needs details: what the complaint is about")
		}
	case RequestCorrection:
		if len(in.Changes) == 0 {
			return nil, Errorf(EINVALID, "a correction request needs changes: each field and its correct value (null deletes it)")
		}
		changes, err := rs.checkChanges(ctx, subjectID, in.Changes)
		if err != nil {
			return nil, err
		}
		sealed.Changes = changes
	}
	if in.DecisionID != "" {
		err := rs.svc.store.Read(ctx, func(tx Tx) error {
			d, err := tx.GetDecision(ctx, in.DecisionID)
			if err != nil {
				return err
			}
			if d.SubjectID != subjectID {
				return Errorf(ENOTFOUND, "decision not found")
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return sealed, nil
}

// checkChanges validates a correction like UpdateMe: declared fields covered by a
// purpose with a basis, valid values, the minimum age; the phone number, which
// identifies the account, cannot be corrected this way.
func (rs *RequestService) checkChanges(ctx context.Context, subjectID string, in FieldValues) (FieldValues, error) {
	if _, ok := in["phone"]; ok {
		return nil, Errorf(EINVALID, "field phone cannot be corrected by a request; it identifies the account")
	}
	var states []ConsentState
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) { states, err = tx.ConsentStates(ctx, subjectID); return err }); err != nil {
		return nil, err
	}
	consented := func(p string) bool {
		for _, st := range states {
			if st.Purpose == p && st.Granted {
				return true
			}
		}
		return false
	}
	set, out := FieldValues{}, FieldValues{}
	for name, v := range in {
		if string(v) == "null" {
			if _, ok := rs.svc.decl.Field(name); !ok {
				return nil, Errorf(EINVALID, "field %s is not declared", name)
			}
			out[name] = json.RawMessage("null")
			continue
		}
		set[name] = v
	}
	values, err := rs.svc.checkFields(set, consented)
	if err != nil {
		return nil, err
	}
	if raw, ok := values["birthday"]; ok && rs.svc.decl.MinimumAge > 0 {
		var b string
		json.Unmarshal(raw, &b)
		bd, err := ParseBirthday(b)
		if err != nil {
			return nil, err
		}
		if err := CheckAge(bd, rs.svc.now(), rs.svc.decl.Location(), rs.svc.decl.MinimumAge); err != nil {
			return nil, err
		}
	}
	for k, v := range values {
		out[k] = v
	}
	return out, nil
}

func joinTypes() string {
	var s []string
	for _, t := range RequestTypes() {
		s = append(s, string(t))
	}
	return strings.Join(s, ", ")
}

func joinGrounds() string {
	var s []string
	for _, g := range DeletionGrounds() {
		s = append(s, string(g))
	}
	return strings.Join(s, ", ")
}

// sealLabel binds a sealed part to its request: the associated data is the subject
// id and this label.
func sealLabel(requestID, part string) string { return "request/" + requestID + "/" + part }

func (rs *RequestService) file(ctx context.Context, subjectID string, in RequestInput, check *IdentityCheck) (*RequestRecord, error) {
	// The subject comes first, so that an unknown or erased one is named as such
	// rather than by the state of its data key; the write below checks again.
	if err := rs.svc.store.Read(ctx, func(tx Tx) error {
		subj, err := tx.GetSubject(ctx, subjectID)
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(ENOTFOUND, "subject not found")
		} else if err != nil {
			return err
		}
		if subj.Status != SubjectActive {
			return Errorf(EGONE, "the subject's account was cancelled and its data erased")
		}
		return nil
	}); err != nil {
		return nil, err
	}
	if check != nil {
		if err := checkIdentityCheck(*check); err != nil {
			return nil, err
		}
	}
	sealedIn, err := rs.checkInput(ctx, subjectID, &in)
	if err != nil {
		return nil, err
	}
	key, err := rs.svc.keys.SubjectKey(ctx, subjectID)
	if ErrorCode(err) == EGONE { // erased since the look-up above
		return nil, Errorf(EGONE, "the subject's account was cancelled and its data erased")
	} else if err != nil {
		return nil, err
	}
	id := NewID()
	plain, err := json.Marshal(sealedIn)
	if err != nil {
		return nil, err
	}
	input, err := key.Seal(sealLabel(id, "input"), plain)
	if err != nil {
		return nil, err
	}
	var reference []byte
	if check != nil && check.Reference != "" {
		if reference, err = key.Seal(sealLabel(id, "verification_reference"), []byte(check.Reference)); err != nil {
			return nil, err
		}
	}
	pol := rs.repeatPolicy()
	repeatText := fmt.Sprintf("This request repeats earlier %s requests beyond the allowance of %d per %d days (policy §6).", in.Type, pol.FreeAllowance, pol.WindowDays)
	repeatExplanation, err := key.Seal(sealLabel(id, "refusal_explanation"), []byte(repeatText))
	if err != nil {
		return nil, err
	}
	a := ActorFrom(ctx)
	var rec *RequestRecord
	var lostRace bool
	// A concurrent filing of the same kind can win the open slot between our look-up
	// and our insert (ECONFLICT on the duplicate key): then look again and merge.
	for attempt := 0; ; attempt++ {
		lostRace = false
		err = rs.svc.store.Write(ctx, func(tx Tx) error {
			now := rs.svc.Now()
			subj, err := tx.GetSubject(ctx, subjectID)
			if err != nil {
				return err
			}
			if subj.Status != SubjectActive {
				return Errorf(EGONE, "the subject's account was cancelled and its data erased")
			}
			if in.Type == RequestWithdrawal {
				st, err := tx.ConsentState(ctx, subjectID, in.Purpose)
				if ErrorCode(err) == ENOTFOUND || (err == nil && !st.Granted) {
					return Errorf(ECONFLICT, "consent for %s is not in force; there is nothing to withdraw", in.Purpose)
				} else if err != nil {
					return err
				}
			}
			r, err := NewRequest(id, subjectID, in.Type, in.DeletionGround, now)
			if err != nil {
				return err
			}
			r.Events[0].Actor = a.String()
			rec = &RequestRecord{Request: *r, Purpose: in.Purpose, DecisionID: in.DecisionID, Input: input}
			if err := rec.Schedule(rs.rule, rs.cal); err != nil {
				return err
			}
			if check != nil {
				if _, err := rec.Verify(check.Method, a.String(), now); err != nil {
					return err
				}
				rec.VerificationReference = reference
				if err := rec.Schedule(rs.rule, rs.cal); err != nil {
					return err
				}
			}
			primary, err := tx.OpenRequestByKey(ctx, rec.DuplicateKey())
			switch {
			case err == nil:
				if err := rs.merge(ctx, tx, rec, primary, now); err != nil {
					return err
				}
			case ErrorCode(err) != ENOTFOUND:
				return err
			case in.Type.RepeatLimited():
				prior, err := tx.RequestReceipts(ctx, subjectID, in.Type, now.Add(-time.Duration(pol.WindowDays)*24*time.Hour))
				if err != nil {
					return err
				}
				v := AssessRepeat(prior, now, pol)
				if v.Fee != nil {
					rec.Fee, rec.FeeCount = v.Fee, v.Count
				}
				if v.Ground != "" {
					ref := Refusal{Ground: v.Ground, Explanation: repeatText, ComplaintChannel: rs.complaintChannel()}
					if _, err := rec.Refuse(ref, rs.grounds, SystemActor("requests.repeat").String(), now); err != nil {
						return err
					}
					rec.RefusalExplanation = repeatExplanation
				}
			}
			if err := tx.CreateRequest(ctx, rec); err != nil {
				lostRace = ErrorCode(err) == ECONFLICT && rec.PrimaryID == ""
				return err
			}
			detail := fmt.Sprintf("request=%s type=%s state=%s", rec.ID, rec.Type, rec.State)
			if rec.Fee != nil {
				detail += fmt.Sprintf(" fee=%d%s", rec.Fee.AmountMinor, rec.Fee.Currency)
			}
			entries := []*AuditEntry{rs.svc.audit(ctx, AuditRequestFile, subjectID, "", nil, detail)}
			entries = append(entries, rs.eventAudits(ctx, rec, rec.Events[1:])...)
			return tx.AppendAudit(ctx, entries...)
		})
		if lostRace && attempt < 3 {
			continue
		}
		break
	}
	if err != nil {
		return nil, err
	}
	rec.StoredEvents = len(rec.Events)
	return rec, nil
}

// merge folds the new request rec into the open request primary: rec is merged, its
// deadline shown as the primary's (the primary's clock is never reset), and a
// verification recorded on rec passes to an unverified primary.
func (rs *RequestService) merge(ctx context.Context, tx Tx, rec, primary *RequestRecord, now time.Time) error {
	verified := rec.verified()
	if _, err := rec.MergeInto(&primary.Request, SystemActor("requests.duplicates").String(), now); err != nil {
		return err
	}
	rec.DueOn, rec.DueAt = primary.DueOn, primary.DueAt
	if verified && !primary.verified() {
		return rs.verifyPrimary(ctx, tx, primary, rec, now)
	}
	return nil
}

// verifyPrimary records on primary the identity verification done on its duplicate
// dup, and stores primary. The subject is the same person, so a check passed on
// either request proves identity for both.
func (rs *RequestService) verifyPrimary(ctx context.Context, tx Tx, primary, dup *RequestRecord, now time.Time) error {
	if _, err := primary.Verify(dup.VerificationMethod, dup.VerifiedBy, now); err != nil {
		return err
	}
	primary.Events[len(primary.Events)-1].Reason = dup.VerificationMethod + " (verified through duplicate " + dup.ID + ")"
	if err := primary.Schedule(rs.rule, rs.cal); err != nil && ErrorCode(err) != ECONFLICT {
		return err
	}
	if err := tx.UpdateRequest(ctx, primary); err != nil {
		return err
	}
	return tx.AppendAudit(ctx, rs.eventAudits(ctx, primary, primary.Events[primary.StoredEvents:])...)
}

func (rs *RequestService) repeatPolicy() RepeatPolicy {
	r := rs.svc.decl.Requests.Repeat
	return RepeatPolicy{WindowDays: r.WindowDays, FreeAllowance: r.FreeAllowance, Action: RepeatAction(r.Action), FeeMinor: r.FeeMinor, Currency: r.Currency}
}

// SystemActor returns the system actor called name.
func SystemActor(name string) Actor { return Actor{Kind: ActorSystem, ID: name} }

// eventAudits returns one audit entry per event, naming the request, its type, the
// move and, for refusals, the ground code; never the reason's free text.
func (rs *RequestService) eventAudits(ctx context.Context, r *RequestRecord, events []RequestEvent) []*AuditEntry {
	var out []*AuditEntry
	for _, e := range events {
		detail := fmt.Sprintf("request=%s type=%s from=%s to=%s", r.ID, r.Type, e.From, e.To)
		if e.To == RequestRefused && r.Refusal != nil {
			detail += " ground=" + string(r.Refusal.Ground)
		}
		if e.To == RequestMerged {
			detail += " primary=" + r.PrimaryID
		}
		out = append(out, rs.svc.audit(ctx, AuditRequestEvent, r.SubjectID, "", nil, detail))
	}
	return out
}

// ---- Changing a request ----

// change loads request id in a write transaction, lets fn change it, and stores it
// with an audit entry per new event plus fn's extra entries. fn may run more than
// once (the store retries), so it must only change rec and tx.
func (rs *RequestService) change(ctx context.Context, id string, fn func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error)) (*RequestRecord, error) {
	var rec *RequestRecord
	err := rs.svc.store.Write(ctx, func(tx Tx) error {
		var err error
		if rec, err = tx.GetRequest(ctx, id); err != nil {
			return err
		}
		extra, err := fn(tx, rec, rs.svc.Now())
		if err != nil {
			return err
		}
		if err := tx.UpdateRequest(ctx, rec); err != nil {
			return err
		}
		entries := append(rs.eventAudits(ctx, rec, rec.Events[rec.StoredEvents:]), extra...)
		return tx.AppendAudit(ctx, entries...)
	})
	if err != nil {
		return nil, err
	}
	rec.StoredEvents = len(rec.Events)
	rec.Version++
	return rec, nil
}

// ownRequest returns the signed-in subject's request id, or ENOTFOUND (another
// subject's request does not exist for the caller).
func (rs *RequestService) ownRequest(ctx context.Context, id string) (*RequestRecord, string, error) {
	sid, err := mustSubject(ctx)
	if err != nil {
		return nil, "", err
	}
	var rec *RequestRecord
	err = rs.svc.store.Read(ctx, func(tx Tx) (err error) { rec, err = tx.GetRequest(ctx, id); return err })
	if err != nil {
		return nil, "", err
	}
	if rec.SubjectID != sid {
		return nil, "", Errorf(ENOTFOUND, "request not found")
	}
	return rec, sid, nil
}

// SendVerificationCode sends a fresh one-time code (purpose CodeVerify) to the
// registered phone of the signed-in subject, to verify identity for request id
// (policy §6). It works on merged duplicates too. Errors: ENOTFOUND for a request
// that is not the subject's, ECONFLICT when identity is already verified or the
// request is closed, ETOOMANY as for SendCode.
func (rs *RequestService) SendVerificationCode(ctx context.Context, id string) (*CodeSent, error) {
	rec, sid, err := rs.ownRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := needsVerification(rec); err != nil {
		return nil, err
	}
	return rs.svc.sendSubjectCode(ctx, sid, CodeVerify)
}

func needsVerification(rec *RequestRecord) error {
	if rec.verified() {
		return Errorf(ECONFLICT, "Request %s is already identity-verified.", rec.ID)
	}
	if rec.State.Terminal() && rec.State != RequestMerged {
		return Errorf(ECONFLICT, "Request %s is %s and needs no verification.", rec.ID, rec.State)
	}
	return nil
}

// VerifyWithCode verifies the signed-in subject's identity for request id with the
// code from SendVerificationCode, moving it to identity_verified (a complaint's
// clock starts now, policy §10). On a merged duplicate the verification is
// recorded on the duplicate and passed to its primary if that is unverified, since
// both are the same person's request. Requests of an AutoFulfil type are then
// fulfilled by the system. Errors: EFORBIDDEN for a wrong, spent or expired code,
// ETOOMANY after too many wrong codes, ENOTFOUND and ECONFLICT as for
// SendVerificationCode.
func (rs *RequestService) VerifyWithCode(ctx context.Context, id, code string) (*RequestView, error) {
	rec, sid, err := rs.ownRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := needsVerification(rec); err != nil {
		return nil, err
	}
	if strings.TrimSpace(code) == "" {
		return nil, Errorf(EINVALID, "code is required")
	}
	if err := rs.svc.verifySubjectCode(ctx, sid, CodeVerify, code, nil); err != nil {
		return nil, err
	}
	rec, err = rs.verify(ctx, id, "otp", nil)
	if err != nil {
		return nil, err
	}
	rec = rs.autoFulfil(ctx, rec)
	return rs.view(ctx, rec, true)
}

// VerifyOnBehalf records that staff checked the identity of request id's subject
// (in person, by video…), with the same effect as VerifyWithCode. Staff need
// PermRequestVerify. Errors: EINVALID for a bad check, ECONFLICT as for
// SendVerificationCode.
func (rs *RequestService) VerifyOnBehalf(ctx context.Context, id string, check IdentityCheck) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestVerify); err != nil {
		return nil, err
	}
	if err := checkIdentityCheck(check); err != nil {
		return nil, err
	}
	rec, err := rs.verify(ctx, id, check.Method, &check)
	if err != nil {
		return nil, err
	}
	rec = rs.autoFulfil(ctx, rec)
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

func (rs *RequestService) verify(ctx context.Context, id, method string, check *IdentityCheck) (*RequestRecord, error) {
	var reference []byte
	if check != nil && check.Reference != "" {
		var subjectID string
		if err := rs.svc.store.Read(ctx, func(tx Tx) error {
			r, err := tx.GetRequest(ctx, id)
			if err == nil {
				subjectID = r.SubjectID
			}
			return err
		}); err != nil {
			return nil, err
		}
		key, err := rs.svc.keys.SubjectKey(ctx, subjectID)
		if err != nil {
			return nil, err
		}
		if reference, err = key.Seal(sealLabel(id, "verification_reference"), []byte(check.Reference)); err != nil {
			return nil, err
		}
	}
	by := ActorFrom(ctx).String()
	return rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		if err := needsVerification(rec); err != nil {
			return nil, err
		}
		if _, err := rec.Verify(method, by, now); err != nil {
			return nil, err
		}
		rec.VerificationReference = reference
		if rec.State == RequestMerged {
			primary, err := tx.GetRequest(ctx, rec.PrimaryID)
			if err != nil {
				return nil, err
			}
			if !primary.verified() && !primary.State.Terminal() {
				if err := rs.verifyPrimary(ctx, tx, primary, rec, now); err != nil {
					return nil, err
				}
			}
			return nil, nil
		}
		return nil, rec.Schedule(rs.rule, rs.cal)
	})
}

// autoFulfil fulfils rec (or, for a merged duplicate, its primary) as the system
// when its type is in AutoFulfil and its identity is verified. A failure is logged
// and leaves the request to staff; the caller gets the request as it now stands.
func (rs *RequestService) autoFulfil(ctx context.Context, rec *RequestRecord) *RequestRecord {
	target := rec.ID
	if rec.State == RequestMerged {
		target = rec.PrimaryID
	}
	if !rs.AutoFulfil[rec.Type] {
		return rec
	}
	sctx := WithActor(ctx, SystemActor("requests.auto"))
	if _, err := rs.fulfil(sctx, target, FulfilInput{}); err != nil {
		if ErrorCode(err) != ECONFLICT {
			rs.svc.log.Warn("auto-fulfilment failed", "request", target, "err", err)
		}
		return rec
	}
	var fresh *RequestRecord
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) { fresh, err = tx.GetRequest(ctx, rec.ID); return err }); err != nil {
		return rec
	}
	return fresh
}

// WithdrawMine withdraws the signed-in subject's open request id. Errors:
// ENOTFOUND for a request that is not the subject's; ECONFLICT when it is closed or
// its fulfilment has started (the work cannot be taken back).
func (rs *RequestService) WithdrawMine(ctx context.Context, id string) (*RequestView, error) {
	if _, _, err := rs.ownRequest(ctx, id); err != nil {
		return nil, err
	}
	rec, err := rs.withdraw(ctx, id, "withdrawn by the subject")
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, true)
}

// Withdraw withdraws request id on the subject's behalf (the subject asked staff).
// Staff need PermRequestWithdraw. Errors as for WithdrawMine.
func (rs *RequestService) Withdraw(ctx context.Context, id string) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestWithdraw); err != nil {
		return nil, err
	}
	rec, err := rs.withdraw(ctx, id, "withdrawn on the subject's behalf")
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

func (rs *RequestService) withdraw(ctx context.Context, id, reason string) (*RequestRecord, error) {
	by := ActorFrom(ctx).String()
	return rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		if err := notFulfilling(rec); err != nil {
			return nil, err
		}
		_, err := rec.TransitionAs(by, RequestWithdrawn, reason, now)
		return nil, err
	})
}

func notFulfilling(rec *RequestRecord) error {
	switch rec.FulfilState {
	case FulfilRunning:
		return Errorf(ECONFLICT, "Request %s is being fulfilled right now.", rec.ID)
	case FulfilDone:
		return Errorf(ECONFLICT, "Request %s was carried out already; it completes when its pending steps are done.", rec.ID)
	}
	return nil
}

var staffHandle = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)

// Assign assigns request id to the staff member called to (their token's name), or
// to the caller when to is empty. It records an event without a state change.
// Staff need PermRequestAssign. Errors: EINVALID for a bad name, ECONFLICT for a
// closed request.
func (rs *RequestService) Assign(ctx context.Context, id, to string) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestAssign); err != nil {
		return nil, err
	}
	a := ActorFrom(ctx)
	if to == "" {
		to = a.ID
	}
	if !staffHandle.MatchString(to) {
		return nil, Errorf(EINVALID, "assign to a staff member's handle: letters, digits and . _ @ -")
	}
	rec, err := rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		if rec.State.Terminal() {
			return nil, Errorf(ECONFLICT, "Request %s is %s and can no longer change.", rec.ID, rec.State)
		}
		rec.AssignedTo = to
		rec.Events = append(rec.Events, RequestEvent{At: now, From: rec.State, To: rec.State, Reason: "assigned to " + to, Actor: a.String()})
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

// Start moves a verified request to in_progress. Staff need PermRequestStart.
// Errors: ECONFLICT when the state machine forbids it (not verified, closed).
func (rs *RequestService) Start(ctx context.Context, id string) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestStart); err != nil {
		return nil, err
	}
	by := ActorFrom(ctx).String()
	rec, err := rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		if rec.State == RequestReceived {
			return nil, Errorf(ECONFLICT, "Request %s waits for the subject's identity to be verified.", rec.ID)
		}
		_, err := rec.TransitionAs(by, RequestInProgress, "work started", now)
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

// Extend extends request id's deadline once by the declaration's extension_days,
// telling the subject reason (which is kept as proof: write it without personal
// information). Staff need PermRequestExtend. Errors: ECONFLICT when the
// declaration allows no extension, the deadline was extended already or the state
// forbids it; EINVALID without a reason.
func (rs *RequestService) Extend(ctx context.Context, id, reason string) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestExtend); err != nil {
		return nil, err
	}
	if rs.ext.Days == 0 {
		return nil, Errorf(ECONFLICT, "The declaration allows no extension of request deadlines (requests.extension_days is 0).")
	}
	by := ActorFrom(ctx).String()
	rec, err := rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		_, err := rec.Extend(rs.ext, rs.cal, strings.TrimSpace(reason), by, now)
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

// Refuse refuses request id on ground, one of the deployment's refusal grounds,
// with explanation written for the subject (sealed: it may quote them); the
// declaration's complaint channel is attached (policy §6, §10; PIPL Art. 50). The
// subject sees ground, explanation and channel. Staff need PermRequestRefuse.
// Errors: EINVALID for a missing or unknown ground or explanation; ECONFLICT when
// the request is closed or its fulfilment has started.
func (rs *RequestService) Refuse(ctx context.Context, id string, ground RefusalGround, explanation string) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestRefuse); err != nil {
		return nil, err
	}
	ref := Refusal{Ground: ground, Explanation: strings.TrimSpace(explanation), ComplaintChannel: rs.complaintChannel()}
	if err := rs.grounds.Validate(ref); err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(ref.Explanation) > MaxRequestDetails {
		return nil, Errorf(EINVALID, "the explanation is longer than %d characters", MaxRequestDetails)
	}
	var subjectID string
	if err := rs.svc.store.Read(ctx, func(tx Tx) error {
		r, err := tx.GetRequest(ctx, id)
		if err == nil {
			subjectID = r.SubjectID
		}
		return err
	}); err != nil {
		return nil, err
	}
	key, err := rs.svc.keys.SubjectKey(ctx, subjectID)
	if err != nil {
		return nil, err
	}
	sealed, err := key.Seal(sealLabel(id, "refusal_explanation"), []byte(ref.Explanation))
	if err != nil {
		return nil, err
	}
	by := ActorFrom(ctx).String()
	rec, err := rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		if err := notFulfilling(rec); err != nil {
			return nil, err
		}
		if _, err := rec.Refuse(ref, rs.grounds, by, now); err != nil {
			return nil, err
		}
		rec.RefusalExplanation = sealed
		return nil, nil
	})
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

// ---- Fulfilment ----

// Fulfil carries out request id with the Fulfiller for its type, as requeststeps.go
// describes: the request moves to in_progress and is claimed, the Fulfiller runs,
// and the request becomes fulfilled once no step is pending (else it waits for
// CompleteIfDone). in carries the reply to a complaint and the outcome and note of
// an appeal's review. Staff need PermRequestFulfil.
//
// Errors: ECONFLICT before identity verification (policy §6), for a merged
// duplicate (fulfil its primary), a closed request, a fulfilment under way or done
// already; EINVALID for a missing reply or outcome; the Fulfiller's errors, after
// which the request stays open and Fulfil may be called again.
func (rs *RequestService) Fulfil(ctx context.Context, id string, in FulfilInput) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestFulfil); err != nil {
		return nil, err
	}
	rec, err := rs.fulfil(ctx, id, in)
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, mayViewDetails(ctx))
}

func (rs *RequestService) fulfil(ctx context.Context, id string, in FulfilInput) (*RequestRecord, error) {
	a := ActorFrom(ctx)
	by := a.String()
	rec, err := rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		switch {
		case rec.State == RequestMerged:
			return nil, Errorf(ECONFLICT, "Request %s is a duplicate of %s; fulfil that one.", rec.ID, rec.PrimaryID)
		case rec.State.Terminal():
			return nil, Errorf(ECONFLICT, "Request %s is %s and can no longer change.", rec.ID, rec.State)
		case !rec.verified():
			return nil, Errorf(ECONFLICT, "Request %s cannot be fulfilled before the subject's identity is verified.", rec.ID)
		case rec.FulfilState == FulfilDone:
			return nil, Errorf(ECONFLICT, "Request %s was carried out already; it completes when its pending steps are done.", rec.ID)
		case rec.FulfilState == FulfilRunning && now.Sub(rec.FulfilStartedAt) < fulfilClaimTTL:
			return nil, Errorf(ECONFLICT, "Request %s is being fulfilled right now.", rec.ID)
		}
		if err := checkFulfilInput(rec.Type, in); err != nil {
			return nil, err
		}
		if rec.State == RequestIdentityVerified {
			if _, err := rec.TransitionAs(by, RequestInProgress, "fulfilment started", now); err != nil {
				return nil, err
			}
		}
		rec.FulfilState, rec.FulfilStartedAt = FulfilRunning, now
		return []*AuditEntry{rs.svc.audit(ctx, AuditRequestFulfil, rec.SubjectID, "", nil, "request="+rec.ID+" type="+string(rec.Type)+" step=start")}, nil
	})
	if err != nil {
		return nil, err
	}
	f := rs.fulfillers[rec.Type]
	var result json.RawMessage
	if df, ok := f.(defaultFulfiller); ok {
		result, err = df.fulfil(ctx, rec, in)
	} else {
		work := rec.Request
		work.Events = slices.Clone(rec.Events)
		result, err = f.Fulfil(ctx, &work)
	}
	if err != nil {
		_, uerr := rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
			rec.FulfilState, rec.FulfilStartedAt = FulfilNone, time.Time{}
			rec.Events = append(rec.Events, RequestEvent{At: now, From: rec.State, To: rec.State, Reason: "fulfilment failed (" + ErrorCode(err) + "); it may be tried again", Actor: by})
			return []*AuditEntry{rs.svc.audit(ctx, AuditRequestFulfil, rec.SubjectID, "", nil, "request="+rec.ID+" step=failed code="+ErrorCode(err))}, nil
		})
		if uerr != nil {
			rs.svc.log.Error("release fulfilment claim", "request", id, "err", uerr)
		}
		return nil, err
	}
	pending, perr := f.PendingSteps(ctx, id)
	if perr != nil {
		rs.svc.log.Warn("list pending fulfilment steps", "request", id, "err", perr)
	}
	return rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		rec.FulfilState, rec.Result = FulfilDone, result
		if perr != nil || len(pending) > 0 {
			rec.Events = append(rec.Events, RequestEvent{At: now, From: rec.State, To: rec.State, Reason: waitingReason(pending), Actor: by})
			return []*AuditEntry{rs.svc.audit(ctx, AuditRequestFulfil, rec.SubjectID, "", nil, fmt.Sprintf("request=%s step=done pending=%d", rec.ID, len(pending)))}, nil
		}
		if _, err := rec.TransitionAs(by, RequestFulfilled, "fulfilled", now); err != nil {
			return nil, err
		}
		return []*AuditEntry{rs.svc.audit(ctx, AuditRequestFulfil, rec.SubjectID, "", nil, "request="+rec.ID+" step=done pending=0")}, nil
	})
}

func waitingReason(pending []FulfilmentStep) string {
	if len(pending) == 0 {
		return "carried out; waiting for fulfilment steps"
	}
	kinds := map[string]int{}
	var names []string
	for _, s := range pending {
		if kinds[s.Kind] == 0 {
			names = append(names, s.Kind)
		}
		kinds[s.Kind]++
	}
	var parts []string
	for _, k := range names {
		parts = append(parts, fmt.Sprintf("%d %s", kinds[k], k))
	}
	return "carried out; waiting for " + strings.Join(parts, ", ")
}

// CompleteIfDone implements RequestCompleter: it fulfils request id once its
// Fulfiller has run and reports no pending step. The acting feature is
// ActorFrom(ctx) (the system when anonymous).
func (rs *RequestService) CompleteIfDone(ctx context.Context, id string) (*Request, error) {
	var rec *RequestRecord
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) { rec, err = tx.GetRequest(ctx, id); return err }); err != nil {
		return nil, err
	}
	if rec.State == RequestFulfilled {
		return &rec.Request, nil
	}
	if rec.State.Terminal() || rec.FulfilState != FulfilDone {
		return nil, Errorf(ECONFLICT, "Request %s has not been carried out; fulfil it first.", id)
	}
	pending, err := rs.fulfillers[rec.Type].PendingSteps(ctx, id)
	if err != nil {
		return nil, err
	}
	if len(pending) > 0 {
		return &rec.Request, nil
	}
	a := ActorFrom(ctx)
	if a.Kind == ActorAnon {
		a = SystemActor("requests.complete")
		ctx = WithActor(ctx, a)
	}
	rec, err = rs.change(ctx, id, func(tx Tx, rec *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		if rec.State == RequestFulfilled {
			return nil, nil
		}
		if rec.State.Terminal() || rec.FulfilState != FulfilDone {
			return nil, Errorf(ECONFLICT, "Request %s has not been carried out; fulfil it first.", id)
		}
		_, err := rec.TransitionAs(a.String(), RequestFulfilled, "fulfilled: every step done", now)
		return nil, err
	})
	if err != nil {
		return nil, err
	}
	return &rec.Request, nil
}

// ---- Reading ----

// MyRequests returns the signed-in subject's requests, newest deadline first as
// the queue orders them, with their events, refusals and answers.
func (rs *RequestService) MyRequests(ctx context.Context) ([]RequestView, error) {
	sid, err := mustSubject(ctx)
	if err != nil {
		return nil, err
	}
	var recs []RequestRecord
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) {
		recs, err = tx.ListRequests(ctx, RequestFilter{SubjectID: sid})
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]RequestView, 0, len(recs))
	key, _ := rs.svc.keys.SubjectKey(ctx, sid)
	for i := range recs {
		out = append(out, rs.viewWith(&recs[i], key, true))
	}
	return out, nil
}

// MyRequest returns one of the signed-in subject's requests with its events, the
// refusal ground, explanation and complaint channel when refused, pending steps
// and the answer. ENOTFOUND for a request that is not the subject's.
func (rs *RequestService) MyRequest(ctx context.Context, id string) (*RequestView, error) {
	rec, _, err := rs.ownRequest(ctx, id)
	if err != nil {
		return nil, err
	}
	return rs.view(ctx, rec, true)
}

// Get returns request id for staff. Staff need PermRequestList; the sealed parts
// are opened only with PermRequestViewDetails, and that read is audited.
func (rs *RequestService) Get(ctx context.Context, id string) (*RequestView, error) {
	if err := requirePerm(ctx, PermRequestList); err != nil {
		return nil, err
	}
	var rec *RequestRecord
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) { rec, err = tx.GetRequest(ctx, id); return err }); err != nil {
		return nil, err
	}
	pi := mayViewDetails(ctx)
	v, err := rs.view(ctx, rec, pi)
	if err != nil {
		return nil, err
	}
	// Staff and operators reading a subject's sealed parts leave a trace.
	if pi && (v.Details != "" || len(v.Answer) > 0 || len(v.Changes) > 0 || v.VerificationReference != "" || (v.Refusal != nil && v.Refusal.Explanation != "")) {
		if err := rs.svc.store.Write(ctx, func(tx Tx) error {
			return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditRequestDetails, rec.SubjectID, "", nil, "request="+rec.ID))
		}); err != nil {
			return nil, err
		}
	}
	return v, nil
}

// QueueFilter selects the staff queue. State is a request state, "open" (the
// default: every non-terminal state) or "all"; DueBefore keeps requests due
// strictly before that instant; Overdue keeps only overdue requests; Limit caps the
// list (default 100, at most 1000).
type QueueFilter struct {
	Type       RequestType
	State      string
	DueBefore  time.Time
	Overdue    bool
	AssignedTo string
	SubjectID  string
	Limit      int
}

// OpenStates returns the non-terminal request states.
func OpenStates() []RequestState {
	var out []RequestState
	for _, s := range RequestStates() {
		if !s.Terminal() {
			out = append(out, s)
		}
	}
	return out
}

// List returns the staff queue: requests filtered by q, soonest deadline first,
// with the counts of open, due-soon and overdue requests (P23: deadlines visible).
// Details stay sealed in the queue. Staff need PermRequestList. EINVALID for an
// unknown type or state.
func (rs *RequestService) List(ctx context.Context, q QueueFilter) (*RequestQueue, error) {
	if err := requirePerm(ctx, PermRequestList); err != nil {
		return nil, err
	}
	now := rs.svc.Now()
	f := RequestFilter{Type: q.Type, DueBefore: q.DueBefore, AssignedTo: q.AssignedTo, SubjectID: q.SubjectID, Limit: q.Limit}
	if q.Type != "" && !q.Type.Valid() {
		return nil, Errorf(EINVALID, "type must be one of %s", joinTypes())
	}
	switch q.State {
	case "", "open":
		f.States = OpenStates()
	case "all":
	default:
		if !RequestState(q.State).Valid() {
			return nil, Errorf(EINVALID, "state must be open, all or a request state")
		}
		f.States = []RequestState{RequestState(q.State)}
	}
	if q.Overdue {
		if f.DueBefore.IsZero() || now.Before(f.DueBefore) {
			f.DueBefore = now
		}
		if q.State == "" || q.State == "all" {
			f.States = OpenStates()
		}
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	if f.Limit > 1000 {
		f.Limit = 1000
	}
	out := &RequestQueue{Requests: []RequestView{}}
	var recs []RequestRecord
	err := rs.svc.store.Read(ctx, func(tx Tx) (err error) {
		if recs, err = tx.ListRequests(ctx, f); err != nil {
			return err
		}
		out.Counts, err = tx.CountRequests(ctx, now, now.Add(DueSoonWithin))
		return err
	})
	if err != nil {
		return nil, err
	}
	for i := range recs {
		out.Requests = append(out.Requests, rs.viewWith(&recs[i], nil, false))
	}
	return out, nil
}

// RequestStats counts open, due-soon and overdue requests now, for metrics. The
// caller needs no role: the counts hold nothing about anyone.
func (rs *RequestService) RequestStats(ctx context.Context) (RequestCounts, error) {
	now := rs.svc.Now()
	var c RequestCounts
	err := rs.svc.store.Read(ctx, func(tx Tx) (err error) {
		c, err = tx.CountRequests(ctx, now, now.Add(DueSoonWithin))
		return err
	})
	return c, err
}

// view builds the view of rec, opening its sealed parts when pi is set.
func (rs *RequestService) view(ctx context.Context, rec *RequestRecord, pi bool) (*RequestView, error) {
	var key SubjectKey
	if pi {
		key, _ = rs.svc.keys.SubjectKey(ctx, rec.SubjectID) // gone after erasure: the parts stay sealed
	}
	v := rs.viewWith(rec, key, pi)
	err := rs.svc.store.Read(ctx, func(tx Tx) error {
		dups, err := tx.ListRequests(ctx, RequestFilter{PrimaryID: rec.ID})
		if err != nil {
			return err
		}
		for _, d := range dups {
			v.Duplicates = append(v.Duplicates, d.ID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if rec.FulfilState == FulfilDone && !rec.State.Terminal() {
		steps, err := rs.fulfillers[rec.Type].PendingSteps(ctx, rec.ID)
		if err != nil {
			return nil, err
		}
		v.PendingSteps = steps
	}
	return &v, nil
}

// viewWith builds the view of rec; key opens the sealed parts (nil: left sealed).
func (rs *RequestService) viewWith(rec *RequestRecord, key SubjectKey, pi bool) RequestView {
	now := rs.svc.Now()
	v := RequestView{Request: rec.Request, Purpose: rec.Purpose, DecisionID: rec.DecisionID, AssignedTo: rec.AssignedTo,
		Result: rec.Result, DetailsRedacted: !pi}
	v.Events = slices.Clone(rec.Events)
	if v.Events == nil {
		v.Events = []RequestEvent{}
	}
	v.Overdue = rec.IsOverdue(now)
	v.DueSoon = !rec.State.Terminal() && DueSoon(rec.DueAt, now, DueSoonWithin)
	switch rec.FulfilState {
	case FulfilRunning:
		v.Fulfilment = "running"
	case FulfilDone:
		v.Fulfilment = "done"
		if !rec.State.Terminal() {
			v.Fulfilment = "waiting_for_steps"
		}
	}
	if rec.Refusal != nil {
		ref := *rec.Refusal
		ref.Explanation = ""
		if info, ok := rs.grounds.Lookup(ref.Ground); ok {
			v.RefusalGroundTitle = info.Title
			ref.GroundTitle, ref.GroundSource = info.Title, info.Source
		}
		v.Refusal = &ref
	}
	if key == nil {
		if pi && rec.Refusal != nil && len(rec.RefusalExplanation) > 0 {
			v.Refusal.Explanation = "(not available: the subject's data was erased)"
		}
		return v
	}
	if b, err := key.Open(sealLabel(rec.ID, "input"), rec.Input); err == nil {
		var in requestInput
		if json.Unmarshal(b, &in) == nil {
			v.Details, v.Changes = in.Details, in.Changes
		}
	}
	if len(rec.VerificationReference) > 0 {
		if b, err := key.Open(sealLabel(rec.ID, "verification_reference"), rec.VerificationReference); err == nil {
			v.VerificationReference = string(b)
		}
	}
	if v.Refusal != nil && len(rec.RefusalExplanation) > 0 {
		if b, err := key.Open(sealLabel(rec.ID, "refusal_explanation"), rec.RefusalExplanation); err == nil {
			v.Refusal.Explanation = string(b)
		}
	}
	if len(rec.Answer) > 0 {
		if b, err := key.Open(sealLabel(rec.ID, "answer"), rec.Answer); err == nil {
			v.Answer = b
		}
	}
	return v
}

// listForExport is the Service's RequestLister: the subject's requests with their
// events and refusals (explanations opened), for the export (P17).
func (rs *RequestService) listForExport(ctx context.Context, tx Tx, subjectID string) ([]Request, error) {
	recs, err := tx.ListRequests(ctx, RequestFilter{SubjectID: subjectID})
	if err != nil {
		return nil, err
	}
	var key SubjectKey
	out := make([]Request, 0, len(recs))
	for i := range recs {
		r := recs[i].Request
		if r.Refusal != nil && len(recs[i].RefusalExplanation) > 0 {
			if key == nil {
				if key, err = rs.svc.keys.SubjectKey(ctx, subjectID); err != nil {
					return nil, err
				}
			}
			if b, err := key.Open(sealLabel(r.ID, "refusal_explanation"), recs[i].RefusalExplanation); err == nil {
				ref := *r.Refusal
				ref.Explanation = string(b)
				r.Refusal = &ref
			}
		}
		if r.Events == nil {
			r.Events = []RequestEvent{}
		}
		out = append(out, r)
	}
	return out, nil
}

// ---- Reminders ----

// RemindDue queues a reminder for every open request whose deadline is within
// DueSoonWithin of now or has passed: to the controller's e-mail address
// (declaration controller.email; channel "email", kind "reminder"), or, when the
// declaration names none, to the privacy officers on the staff channel (channel
// "staff", to "role:privacy_officer"). One reminder per request per threshold
// (due_soon, overdue), however often it runs and on however many nodes. Each
// reminder and its record are written in one transaction. It returns the number
// of reminders queued.
func (rs *RequestService) RemindDue(ctx context.Context, now time.Time) (int, error) {
	channel, to := "email", rs.svc.decl.Controller.Email
	if to == "" {
		channel, to = "staff", "role:"+RolePrivacyOfficer
	}
	now = now.UTC().Truncate(time.Microsecond)
	var recs []RequestRecord
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) {
		recs, err = tx.ListRequests(ctx, RequestFilter{States: OpenStates(), DueBefore: now.Add(DueSoonWithin).Add(time.Microsecond)})
		return err
	}); err != nil {
		return 0, err
	}
	if ActorFrom(ctx).Kind == ActorAnon {
		ctx = WithActor(ctx, SystemActor("requests.remind"))
	}
	loc := rs.rule.Location
	sent := 0
	for _, r := range recs {
		threshold := ReminderDueSoon
		if Overdue(r.DueAt, now) {
			threshold = ReminderOverdue
		}
		var body, subject string
		if threshold == ReminderOverdue {
			subject = fmt.Sprintf("Overdue: rights request %s", r.ID)
			body = fmt.Sprintf("Rights request %s (%s, %s) was due on %s (%s) and is still open. Answer it or record why not: the policy promises a reply within %d days.",
				r.ID, r.Type, r.State, r.DueOn, loc, rs.rule.Days)
		} else {
			subject = fmt.Sprintf("Due soon: rights request %s", r.ID)
			body = fmt.Sprintf("Rights request %s (%s, %s) is due on %s (%s).", r.ID, r.Type, r.State, r.DueOn, loc)
		}
		var added bool
		err := rs.svc.store.Write(ctx, func(tx Tx) (err error) {
			if added, err = tx.AddReminder(ctx, r.ID, threshold, now); err != nil || !added {
				return err
			}
			if err := rs.svc.enqueue(ctx, tx, channel, "reminder", "", MessagePayload{To: to, Subject: subject, Body: body}); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditRequestReminder, r.SubjectID, "", nil, "request="+r.ID+" threshold="+threshold))
		})
		if err != nil {
			return sent, err
		}
		if added {
			sent++
		}
	}
	if sent > 0 {
		rs.svc.notify()
	}
	return sent, nil
}

// ---- Staff permissions ----

// Request permissions: what staff may do with rights requests. RequestPermissions
// gives the roles holding each; doc/permissions.md shows the same table. Admins
// hold every role; the system (CLI, jobs) may do everything.
const (
	PermRequestList        = "requests.list"         // see the queue and requests, without PI
	PermRequestViewDetails = "requests.view_details" // open the subject's words, the identity-check reference, the refusal explanation and the answer
	PermRequestFile        = "requests.file"         // take a request on a subject's behalf
	PermRequestVerify      = "requests.verify"       // record an identity check done by staff
	PermRequestAssign      = "requests.assign"       // assign a request to a staff member
	PermRequestStart       = "requests.start"        // start work on a verified request
	PermRequestExtend      = "requests.extend"       // extend a deadline once, where the declaration allows
	PermRequestRefuse      = "requests.refuse"       // refuse on an enumerated ground
	PermRequestFulfil      = "requests.fulfil"       // carry a request out: erase, export, correct, reply, review
	PermRequestWithdraw    = "requests.withdraw"     // withdraw a request on the subject's behalf
)

// RequestPermissions returns, for every request permission, the staff roles that
// hold it (besides admin, which holds all). Support staff take requests, check
// identity and prepare the work; decisions that answer the subject (refuse,
// fulfil, extend) rest with the privacy officer, who is accountable for them
// (PIPL Art. 52); auditors only look, and never at PI.
func RequestPermissions() map[string][]string {
	sp := []string{RoleSupport, RolePrivacyOfficer}
	return map[string][]string{
		PermRequestList:        {RoleSupport, RolePrivacyOfficer, RoleAuditor},
		PermRequestViewDetails: sp,
		PermRequestFile:        sp,
		PermRequestVerify:      sp,
		PermRequestAssign:      sp,
		PermRequestStart:       sp,
		PermRequestWithdraw:    sp,
		PermRequestExtend:      {RolePrivacyOfficer},
		PermRequestRefuse:      {RolePrivacyOfficer},
		PermRequestFulfil:      {RolePrivacyOfficer},
	}
}

// MayRequest reports whether a may use request permission perm.
func MayRequest(a Actor, perm string) bool {
	if a.Kind == ActorSystem {
		return true
	}
	for _, r := range RequestPermissions()[perm] {
		if a.HasRole(r) {
			return true
		}
	}
	return false
}

func requirePerm(ctx context.Context, perm string) error {
	a := ActorFrom(ctx)
	if MayRequest(a, perm) {
		return nil
	}
	switch a.Kind {
	case ActorAnon:
		return Errorf(EUNAUTHORIZED, "sign in as staff to do this")
	case ActorStaff:
		return Errorf(EFORBIDDEN, "%s needs one of the roles %s", perm, strings.Join(append(RequestPermissions()[perm], RoleAdmin), ", "))
	}
	return Errorf(EFORBIDDEN, "only staff may do this")
}

func mayViewDetails(ctx context.Context) bool {
	return MayRequest(ActorFrom(ctx), PermRequestViewDetails)
}

// ---- Steward's own fulfillers ----

// DecisionReviewOutcomes are the outcomes of an appeal's human review: the
// decision stands, is reversed, or is replaced by a different one.
func DecisionReviewOutcomes() []string { return []string{"upheld", "overturned", "amended"} }

func checkFulfilInput(t RequestType, in FulfilInput) error {
	if utf8.RuneCountInString(in.Reply) > MaxRequestDetails {
		return Errorf(EINVALID, "the reply is longer than %d characters", MaxRequestDetails)
	}
	switch t {
	case RequestComplaint:
		if strings.TrimSpace(in.Reply) == "" {
			return Errorf(EINVALID, "fulfilling a complaint needs reply: the answer the subject gets")
		}
		if in.Outcome != "" {
			return Errorf(EINVALID, "only an appeal has an outcome")
		}
	case RequestAppeal:
		if !slices.Contains(DecisionReviewOutcomes(), in.Outcome) {
			return Errorf(EINVALID, "fulfilling an appeal needs outcome, one of %s: the reviewer's decision", strings.Join(DecisionReviewOutcomes(), ", "))
		}
		if strings.TrimSpace(in.Reply) == "" {
			return Errorf(EINVALID, "fulfilling an appeal needs reply: the reviewer's reasons for the subject")
		}
	default:
		if in.Reply != "" || in.Outcome != "" {
			return Errorf(EINVALID, "a %s request takes no reply or outcome when fulfilled", t)
		}
	}
	return nil
}

// defaultFulfiller is Steward's own Fulfiller for every type: access and
// portability export the subject's data, correction applies the changes,
// withdrawal withdraws the consent, deletion and cancellation erase the subject,
// explanation explains the declaration, decision_explanation the subject's
// automated decisions, appeal records the human review and complaint the reply.
// Answers that hold PI are sealed under the subject's key and stored with the
// request; the result holds none. It creates no steps.
type defaultFulfiller struct{ rs *RequestService }

// Fulfil implements Fulfiller for callers that wrap the default.
func (d defaultFulfiller) Fulfil(ctx context.Context, r *Request) (json.RawMessage, error) {
	var rec *RequestRecord
	if err := d.rs.svc.store.Read(ctx, func(tx Tx) (err error) { rec, err = tx.GetRequest(ctx, r.ID); return err }); err != nil {
		return nil, err
	}
	return d.fulfil(ctx, rec, FulfilInput{})
}

// PendingSteps returns nil: the default creates no steps.
func (defaultFulfiller) PendingSteps(context.Context, string) ([]FulfilmentStep, error) {
	return nil, nil
}

func (d defaultFulfiller) fulfil(ctx context.Context, rec *RequestRecord, in FulfilInput) (json.RawMessage, error) {
	rs := d.rs
	a := ActorFrom(ctx)
	switch rec.Type {
	case RequestAccess, RequestPortability:
		x, err := rs.svc.export(ctx, rec.SubjectID)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(x)
		if err != nil {
			return nil, err
		}
		if err := rs.storeAnswer(ctx, rec, b); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "export", "schema": ExportSchema, "format": "application/json",
			"generated_at": x.GeneratedAt, "fields": len(x.Fields), "answer": "the export is the request's answer, shown to the subject"})
	case RequestCorrection:
		changed, err := rs.applyCorrection(ctx, rec)
		if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "correction", "fields_changed": changed})
	case RequestWithdrawal:
		method := MethodSelfService
		if a.Kind == ActorStaff {
			method = MethodStaff
		}
		rc, err := rs.svc.withdraw(ctx, rec.SubjectID, rec.Purpose, method)
		if ErrorCode(err) == ECONFLICT {
			return json.Marshal(map[string]any{"kind": "withdrawal", "purpose": rec.Purpose, "already_withdrawn": true})
		} else if err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "withdrawal", "purpose": rec.Purpose, "consent_event_id": rc.Event.ID})
	case RequestDeletion, RequestCancellation:
		return rs.erase(ctx, rec)
	case RequestExplanation:
		return json.Marshal(rs.processingRules())
	case RequestDecisionExplanation:
		ex, err := rs.explainDecisions(ctx, rec.SubjectID, rec.DecisionID)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(map[string]any{"decisions": ex})
		if err != nil {
			return nil, err
		}
		if err := rs.storeAnswer(ctx, rec, b); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "decision_explanation", "decisions": len(ex)})
	case RequestAppeal:
		now := rs.svc.Now()
		err := rs.svc.store.Write(ctx, func(tx Tx) error {
			if err := tx.ReviewDecision(ctx, rec.DecisionID, rec.ID, in.Outcome, now); err != nil {
				return err
			}
			return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditDecisionReview, rec.SubjectID, "", nil,
				"decision="+rec.DecisionID+" request="+rec.ID+" outcome="+in.Outcome))
		})
		if err != nil {
			return nil, err
		}
		b, _ := json.Marshal(map[string]any{"decision_id": rec.DecisionID, "outcome": in.Outcome, "reviewer": a.String(), "reasons": in.Reply, "reviewed_at": now})
		if err := rs.storeAnswer(ctx, rec, b); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "appeal", "decision_id": rec.DecisionID, "review_outcome": in.Outcome, "reviewer": a.String()})
	case RequestComplaint:
		b, _ := json.Marshal(map[string]any{"reply": in.Reply, "replied_by": a.String()})
		if err := rs.storeAnswer(ctx, rec, b); err != nil {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "complaint", "replied_by": a.String()})
	}
	return nil, Errorf(EINVALID, "request type %s has no fulfiller", rec.Type)
}

// storeAnswer seals answer under the subject's key and stores it with rec.
func (rs *RequestService) storeAnswer(ctx context.Context, rec *RequestRecord, answer []byte) error {
	key, err := rs.svc.keys.SubjectKey(ctx, rec.SubjectID)
	if err != nil {
		return err
	}
	sealed, err := key.Seal(sealLabel(rec.ID, "answer"), answer)
	if err != nil {
		return err
	}
	_, err = rs.change(ctx, rec.ID, func(tx Tx, r *RequestRecord, now time.Time) ([]*AuditEntry, error) {
		r.Answer = sealed
		return nil, nil
	})
	return err
}

// erase erases the subject and returns the deletion receipt (no PI). Run again
// after the account was cancelled, it only makes sure the data key is destroyed.
func (rs *RequestService) erase(ctx context.Context, rec *RequestRecord) (json.RawMessage, error) {
	var subj *Subject
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) { subj, err = tx.GetSubject(ctx, rec.SubjectID); return err }); err != nil {
		return nil, err
	}
	if subj.Status != SubjectActive {
		keys, err := rs.svc.keys.DestroySubjectKey(ctx, rec.SubjectID)
		if err != nil && ErrorCode(err) != EGONE && ErrorCode(err) != ENOTFOUND {
			return nil, err
		}
		return json.Marshal(map[string]any{"kind": "erasure", "already_erased": true, "cancelled_at": subj.CancelledAt, "key_ids_destroyed": keys})
	}
	rc, err := rs.svc.Erase(ctx, rec.SubjectID, "request "+rec.ID)
	if err != nil {
		return nil, err
	}
	return json.Marshal(rc)
}

// applyCorrection applies the changes of rec and of the duplicates merged into it,
// oldest first (a later change of a field wins), with UpdateMe's checks made again
// now, and returns the names of the fields changed.
func (rs *RequestService) applyCorrection(ctx context.Context, rec *RequestRecord) ([]string, error) {
	var dups []RequestRecord
	if err := rs.svc.store.Read(ctx, func(tx Tx) (err error) {
		dups, err = tx.ListRequests(ctx, RequestFilter{PrimaryID: rec.ID})
		return err
	}); err != nil {
		return nil, err
	}
	all := append([]RequestRecord{*rec}, dups...)
	slices.SortStableFunc(all, func(a, b RequestRecord) int { return a.ReceivedAt.Compare(b.ReceivedAt) })
	key, err := rs.svc.keys.SubjectKey(ctx, rec.SubjectID)
	if err != nil {
		return nil, err
	}
	changes := FieldValues{}
	for _, r := range all {
		b, err := key.Open(sealLabel(r.ID, "input"), r.Input)
		if err != nil {
			return nil, err
		}
		var in requestInput
		if err := json.Unmarshal(b, &in); err != nil {
			return nil, fmt.Errorf("steward: read request %s input: %w", r.ID, err)
		}
		for k, v := range in.Changes {
			changes[k] = v
		}
	}
	values, err := rs.checkChanges(ctx, rec.SubjectID, changes)
	if err != nil {
		return nil, err
	}
	now := rs.svc.Now()
	var sealed []SealedField
	var del []string
	for _, name := range values.Names() {
		if string(values[name]) == "null" {
			del = append(del, name)
			continue
		}
		ct, err := key.Seal(name, values[name])
		if err != nil {
			return nil, err
		}
		sealed = append(sealed, SealedField{SubjectID: rec.SubjectID, Field: name, Value: ct, UpdatedAt: now})
	}
	changed := values.Names()
	err = rs.svc.store.Write(ctx, func(tx Tx) error {
		if err := tx.PutFields(ctx, sealed); err != nil {
			return err
		}
		if err := tx.DeleteFields(ctx, rec.SubjectID, del); err != nil {
			return err
		}
		// Recipients that received a corrected field are told (policy §6, P18).
		if err := rs.svc.runUpdateHooks(ctx, tx, rec.SubjectID, changed); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, rs.svc.audit(ctx, AuditUpdate, rec.SubjectID, "", changed, "correction request "+rec.ID))
	})
	if err != nil {
		return nil, err
	}
	return changed, nil
}

// ProcessingRules is the answer to an explanation request (PIPL Art. 48): the
// declaration's rules in force, which hold no PI.
type ProcessingRules struct {
	Kind            string           `json:"kind"` // "explanation"
	Controller      Controller       `json:"controller"`
	NoticeVersion   string           `json:"notice_version"`
	LegalTimeZone   string           `json:"legal_time_zone"`
	Purposes        []Purpose        `json:"purposes"`
	Fields          []RuleField      `json:"fields"`
	DecisionSystems []DecisionSystem `json:"decision_systems"`
	Requests        RequestPolicy    `json:"requests"`
}

// RuleField is a field as the processing rules describe it.
type RuleField struct {
	Name      string    `json:"name"`
	Category  string    `json:"category"`
	Sensitive bool      `json:"sensitive"`
	Purposes  []string  `json:"purposes"`
	Retention Retention `json:"retention"`
}

func (rs *RequestService) processingRules() ProcessingRules {
	d := rs.svc.decl
	out := ProcessingRules{Kind: "explanation", Controller: d.Controller, NoticeVersion: d.Version, LegalTimeZone: rs.rule.Location.String(),
		Purposes: slices.Clone(d.Purposes), DecisionSystems: slices.Clone(d.Decisions), Requests: d.Requests, Fields: []RuleField{}}
	for _, f := range d.Fields {
		out.Fields = append(out.Fields, RuleField{Name: f.Name, Category: f.Category, Sensitive: f.Sensitive, Purposes: f.Purposes, Retention: f.Retention})
	}
	if out.DecisionSystems == nil {
		out.DecisionSystems = []DecisionSystem{}
	}
	return out
}
