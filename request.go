package steward

import (
	"fmt"
	"strings"
	"time"
)

// RequestType is the right a subject exercises with a rights request (policy §6 and
// §10; PIPL Art. 44–50).
type RequestType string

// Request types.
const (
	// RequestAccess asks for a copy of the subject's PI (policy §6; PIPL Art. 45).
	RequestAccess RequestType = "access"
	// RequestPortability asks for the PI in a form that can be moved to another
	// controller (PIPL Art. 45).
	RequestPortability RequestType = "portability"
	// RequestCorrection asks to correct or complete PI (policy §6; PIPL Art. 46).
	RequestCorrection RequestType = "correction"
	// RequestDeletion asks to delete PI on one of the DeletionGround grounds (policy
	// §6; PIPL Art. 47).
	RequestDeletion RequestType = "deletion"
	// RequestCancellation asks to close the account; service stops and the PI is
	// deleted or anonymized (policy §6).
	RequestCancellation RequestType = "cancellation"
	// RequestWithdrawal withdraws a consent; earlier processing stays lawful (policy
	// §6; PIPL Art. 15).
	RequestWithdrawal RequestType = "withdrawal"
	// RequestExplanation asks to have the processing rules explained (PIPL Art. 48).
	RequestExplanation RequestType = "explanation"
	// RequestDecisionExplanation asks for an explanation of an automated decision
	// that significantly affects the subject (policy §6; PIPL Art. 24).
	RequestDecisionExplanation RequestType = "decision_explanation"
	// RequestAppeal contests an automated decision (policy §6; PIPL Art. 24).
	RequestAppeal RequestType = "appeal"
	// RequestComplaint is a complaint through the channel of policy §10.
	RequestComplaint RequestType = "complaint"
)

// RequestTypes returns every request type in a fixed order.
func RequestTypes() []RequestType {
	return []RequestType{
		RequestAccess, RequestPortability, RequestCorrection, RequestDeletion, RequestCancellation,
		RequestWithdrawal, RequestExplanation, RequestDecisionExplanation, RequestAppeal, RequestComplaint,
	}
}

// Valid reports whether t is one of the request types.
func (t RequestType) Valid() bool {
	for _, v := range RequestTypes() {
		if t == v {
			return true
		}
	}
	return false
}

// ClockStartsAtVerification reports whether the reply deadline of t runs from the
// moment the subject's identity is verified rather than from receipt. Only
// complaints do: the policy promises a reply within fifteen days after verifying
// the user's identity (policy §10), while other requests get a reply within 15 days
// of being made (policy §6).
func (t RequestType) ClockStartsAtVerification() bool { return t == RequestComplaint }

// RepeatLimited reports whether repeats of t may be charged for or refused as
// excessive (policy §6). Withdrawing consent and cancelling the account are never
// limited: the law requires both to be easy (PIPL Art. 15 and Art. 47).
func (t RequestType) RepeatLimited() bool {
	return t.Valid() && t != RequestWithdrawal && t != RequestCancellation
}

// SameKind reports whether a request of type b duplicates an open request of type a,
// so that it is merged into it rather than answered twice. Only identical types are
// duplicates: an access request is never a duplicate of a deletion request.
func SameKind(a, b RequestType) bool { return a.Valid() && a == b }

// RequestState is where a rights request stands in its life cycle. Fulfilled,
// refused, withdrawn and merged are terminal.
type RequestState string

// Request states.
const (
	// RequestReceived: filed, identity not yet verified; the deadline is running.
	RequestReceived RequestState = "received"
	// RequestIdentityVerified: the subject proved who they are (policy §6).
	RequestIdentityVerified RequestState = "identity_verified"
	// RequestInProgress: staff or a job is working on it.
	RequestInProgress RequestState = "in_progress"
	// RequestExtended: the deadline was extended once, as the declaration allows.
	RequestExtended RequestState = "extended"
	// RequestFulfilled: answered as asked.
	RequestFulfilled RequestState = "fulfilled"
	// RequestRefused: declined on a RefusalGround, with an explanation (policy §6).
	RequestRefused RequestState = "refused"
	// RequestWithdrawn: the subject took the request back.
	RequestWithdrawn RequestState = "withdrawn"
	// RequestMerged: a duplicate folded into the open request PrimaryID; it is never
	// fulfilled on its own, the primary's answer is its answer.
	RequestMerged RequestState = "merged"
)

// RequestStates returns every request state in life-cycle order.
func RequestStates() []RequestState {
	return []RequestState{
		RequestReceived, RequestIdentityVerified, RequestInProgress, RequestExtended,
		RequestFulfilled, RequestRefused, RequestWithdrawn, RequestMerged,
	}
}

// Valid reports whether s is one of the request states.
func (s RequestState) Valid() bool {
	for _, v := range RequestStates() {
		if s == v {
			return true
		}
	}
	return false
}

// Terminal reports whether s admits no further transition.
func (s RequestState) Terminal() bool {
	switch s {
	case RequestFulfilled, RequestRefused, RequestWithdrawn, RequestMerged:
		return true
	}
	return false
}

// CanTransition reports whether the state machine allows from → to:
//
//	received          → identity_verified, refused, withdrawn, merged
//	identity_verified → in_progress, extended, fulfilled, refused, withdrawn, merged
//	in_progress       → extended, fulfilled, refused, withdrawn
//	extended          → fulfilled, refused, withdrawn
//	fulfilled, refused, withdrawn, merged → nothing (terminal)
//
// Nothing is fulfilled before the subject's identity is verified (policy §6); a
// request may be refused or withdrawn at any open stage; a duplicate may be merged
// only before work on it starts; the deadline is extended at most once, since
// extended cannot be left for another open state. Request.Transition adds the
// checks that need the request's data.
func CanTransition(from, to RequestState) bool {
	switch from {
	case RequestReceived:
		return to == RequestIdentityVerified || to == RequestRefused || to == RequestWithdrawn || to == RequestMerged
	case RequestIdentityVerified:
		return to == RequestInProgress || to == RequestExtended || to == RequestFulfilled ||
			to == RequestRefused || to == RequestWithdrawn || to == RequestMerged
	case RequestInProgress:
		return to == RequestExtended || to == RequestFulfilled || to == RequestRefused || to == RequestWithdrawn
	case RequestExtended:
		return to == RequestFulfilled || to == RequestRefused || to == RequestWithdrawn
	}
	return false
}

// DeletionGround is the policy's reason a subject may ask for deletion (policy §6;
// PIPL Art. 47).
type DeletionGround string

// Deletion grounds, in the policy's order.
const (
	// DeletionUnlawfulProcessing: the processing breaks laws or regulations.
	DeletionUnlawfulProcessing DeletionGround = "unlawful_processing"
	// DeletionNoConsent: PI was collected or used without the subject's explicit consent.
	DeletionNoConsent DeletionGround = "no_consent"
	// DeletionBreachOfAgreement: the processing seriously breaches the agreement with
	// the subject.
	DeletionBreachOfAgreement DeletionGround = "breach_of_agreement"
	// DeletionNoLongerUsed: the subject no longer uses the service or has cancelled
	// the account.
	DeletionNoLongerUsed DeletionGround = "no_longer_used"
	// DeletionServiceEnded: the controller permanently stopped providing the service.
	DeletionServiceEnded DeletionGround = "service_ended"
)

// DeletionGrounds returns the five deletion grounds in the policy's order.
func DeletionGrounds() []DeletionGround {
	return []DeletionGround{
		DeletionUnlawfulProcessing, DeletionNoConsent, DeletionBreachOfAgreement,
		DeletionNoLongerUsed, DeletionServiceEnded,
	}
}

// Valid reports whether g is one of the five deletion grounds.
func (g DeletionGround) Valid() bool {
	for _, v := range DeletionGrounds() {
		if g == v {
			return true
		}
	}
	return false
}

// Fee is an amount charged for a request that repeats beyond reasonable limits
// (policy §6; GB/T 35273-2020 §8.7), in minor units (fen for CNY) of an ISO 4217
// currency.
type Fee struct {
	AmountMinor int64  `json:"amount_minor"`
	Currency    string `json:"currency"`
}

// Validate returns EINVALID unless the amount is positive and the currency is three
// upper-case letters.
func (f Fee) Validate() error {
	if f.AmountMinor <= 0 {
		return Errorf(EINVALID, "A fee must be a positive amount in minor units.")
	}
	if !isCurrencyCode(f.Currency) {
		return Errorf(EINVALID, "A fee needs an ISO 4217 currency code such as CNY.")
	}
	return nil
}

func isCurrencyCode(s string) bool {
	if len(s) != 3 {
		return false
	}
	for _, c := range s {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// RequestEvent records one change of a request's state: when, from which state to
// which, why, and who acted (a subject, staff or system id; never personal data).
// An event with From == To records a fact without a state change, such as the
// identity verification of a merged duplicate.
type RequestEvent struct {
	At     time.Time    `json:"at"`
	From   RequestState `json:"from"`
	To     RequestState `json:"to"`
	Reason string       `json:"reason,omitempty"`
	Actor  string       `json:"actor,omitempty"`
}

// Request is a rights request (policy §6 and §10). Its deadline is DueOn, a civil
// date in the legal time zone, and DueAt, the last instant of that day; both are set
// by Schedule and moved only by Extend. VerificationMethod says how identity was
// checked: "otp" for a one-time code, or free text recorded by staff such as
// "in_person_id_document", with VerifiedBy naming who recorded it. Events is the
// request's history, oldest first.
type Request struct {
	ID                 string         `json:"id"`
	SubjectID          string         `json:"subject_id"`
	Type               RequestType    `json:"type"`
	State              RequestState   `json:"state"`
	ReceivedAt         time.Time      `json:"received_at"`
	DueOn              Date           `json:"due_on,omitzero"`
	DueAt              time.Time      `json:"due_at,omitzero"`
	VerifiedAt         time.Time      `json:"verified_at,omitzero"`
	VerificationMethod string         `json:"verification_method,omitempty"`
	VerifiedBy         string         `json:"verified_by,omitempty"`
	DeletionGround     DeletionGround `json:"deletion_ground,omitempty"`
	Refusal            *Refusal       `json:"refusal,omitempty"`
	Fee                *Fee           `json:"fee,omitempty"`
	PrimaryID          string         `json:"primary_id,omitempty"`
	Events             []RequestEvent `json:"events"`
}

// NewRequest returns a request in state received with one event recording its
// receipt. ground is required for a deletion request and must be empty for any
// other type. It returns EINVALID for a missing id, subject id or receipt time, an
// unknown type or a bad deletion ground. Call Schedule to set the deadline.
func NewRequest(id, subjectID string, typ RequestType, ground DeletionGround, receivedAt time.Time) (*Request, error) {
	r := &Request{
		ID: id, SubjectID: subjectID, Type: typ, State: RequestReceived,
		ReceivedAt: receivedAt.UTC(), DeletionGround: ground,
	}
	r.Events = []RequestEvent{{At: r.ReceivedAt, To: RequestReceived, Reason: "received"}}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// Validate checks that the request is consistent and returns EINVALID if not: an
// id, a subject id, a known type and state and a receipt time are required; a
// deletion request needs one of the five DeletionGround values and other types none;
// identity_verified and every state after it except refused, withdrawn and merged
// need a recorded verification; a refused request needs a Refusal with a ground and
// an explanation and no other state may carry one; a merged request needs a
// PrimaryID and no other state may carry one; a Fee must be valid.
func (r *Request) Validate() error {
	switch {
	case r.ID == "":
		return Errorf(EINVALID, "A request needs an id.")
	case r.SubjectID == "":
		return Errorf(EINVALID, "Request %s has no subject.", r.ID)
	case !r.Type.Valid():
		return Errorf(EINVALID, "Request %s has unknown type %q.", r.ID, r.Type)
	case !r.State.Valid():
		return Errorf(EINVALID, "Request %s has unknown state %q.", r.ID, r.State)
	case r.ReceivedAt.IsZero():
		return Errorf(EINVALID, "Request %s has no receipt time.", r.ID)
	}
	if r.Type == RequestDeletion && !r.DeletionGround.Valid() {
		return Errorf(EINVALID, "A deletion request must name one of the five deletion grounds, not %q.", r.DeletionGround)
	}
	if r.Type != RequestDeletion && r.DeletionGround != "" {
		return Errorf(EINVALID, "Only a deletion request has a deletion ground.")
	}
	switch r.State {
	case RequestIdentityVerified, RequestInProgress, RequestExtended, RequestFulfilled:
		if !r.verified() {
			return Errorf(EINVALID, "Request %s is %s without a recorded identity verification.", r.ID, r.State)
		}
	}
	if (r.State == RequestRefused) != (r.Refusal != nil) {
		return Errorf(EINVALID, "Request %s: a refusal is recorded exactly when the request is refused.", r.ID)
	}
	if r.Refusal != nil && (r.Refusal.Ground == "" || strings.TrimSpace(r.Refusal.Explanation) == "") {
		return Errorf(EINVALID, "Request %s: a refusal needs a ground and an explanation.", r.ID)
	}
	if (r.State == RequestMerged) != (r.PrimaryID != "") {
		return Errorf(EINVALID, "Request %s: a primary request is recorded exactly when the request is merged.", r.ID)
	}
	if r.PrimaryID == r.ID && r.PrimaryID != "" {
		return Errorf(EINVALID, "Request %s cannot be merged into itself.", r.ID)
	}
	if r.Fee != nil {
		if err := r.Fee.Validate(); err != nil {
			return err
		}
	}
	return nil
}

func (r *Request) verified() bool { return !r.VerifiedAt.IsZero() && r.VerificationMethod != "" }

// Extended reports whether the request's deadline has been extended.
func (r *Request) Extended() bool {
	for _, e := range r.Events {
		if e.To == RequestExtended {
			return true
		}
	}
	return r.State == RequestExtended
}

// IsOverdue reports whether the request is still open after its due instant.
func (r *Request) IsOverdue(now time.Time) bool {
	return !r.State.Terminal() && Overdue(r.DueAt, now)
}

// Schedule sets DueOn and DueAt from rule and cal (see DueDate). The clock runs from
// receipt, or for a complaint from identity verification (policy §10); an
// unverified complaint is left without a deadline and Schedule returns nil, to be
// called again after Verify. It returns ECONFLICT once the request is closed or its
// deadline was extended, and the errors of DueDate.
func (r *Request) Schedule(rule DeadlineRule, cal *Calendar) error {
	if r.State.Terminal() {
		return Errorf(ECONFLICT, "Request %s is %s; its deadline no longer changes.", r.ID, r.State)
	}
	if r.Extended() {
		return Errorf(ECONFLICT, "Request %s has an extended deadline; it is not recomputed.", r.ID)
	}
	start := r.ReceivedAt
	if r.Type.ClockStartsAtVerification() {
		if r.VerifiedAt.IsZero() {
			return nil
		}
		start = r.VerifiedAt
	}
	on, at, err := DueDate(start, rule, cal)
	if err != nil {
		return err
	}
	r.DueOn, r.DueAt = on, at.UTC()
	return nil
}

// Transition moves the request to state to at time at with no recorded actor; see
// TransitionAs.
func (r *Request) Transition(to RequestState, reason string, at time.Time) (RequestEvent, error) {
	return r.TransitionAs("", to, reason, at)
}

// TransitionAs moves the request to state to, appends the event to Events and
// returns it. actor is the id of who acts (subject, staff member, system job).
//
// It returns ECONFLICT when the request is in a terminal state or CanTransition
// forbids the move, and EINVALID when to is unknown, at is zero or before receipt,
// or the move lacks what it needs: identity_verified needs a recorded verification
// (use Verify), refused needs r.Refusal (use Refuse), merged needs r.PrimaryID (use
// MergeInto), extended must go through Extend so that the deadline moves with it,
// and refused, merged and extended need a reason. Fulfilled is refused with
// ECONFLICT while no identity verification is recorded (policy §6).
func (r *Request) TransitionAs(actor string, to RequestState, reason string, at time.Time) (RequestEvent, error) {
	if to == RequestExtended {
		return RequestEvent{}, Errorf(EINVALID, "Extend the deadline with Extend, which also moves the due date.")
	}
	return r.transition(actor, to, reason, at)
}

func (r *Request) transition(actor string, to RequestState, reason string, at time.Time) (RequestEvent, error) {
	if !to.Valid() {
		return RequestEvent{}, Errorf(EINVALID, "%q is not a request state.", to)
	}
	if err := r.checkMove(to, at); err != nil {
		return RequestEvent{}, err
	}
	switch to {
	case RequestIdentityVerified:
		if !r.verified() {
			return RequestEvent{}, Errorf(EINVALID, "Record how the subject's identity was verified (Verify) before marking it verified.")
		}
	case RequestFulfilled:
		if !r.verified() {
			return RequestEvent{}, Errorf(ECONFLICT, "Request %s cannot be fulfilled before the subject's identity is verified.", r.ID)
		}
	case RequestRefused:
		if r.Refusal == nil || r.Refusal.Ground == "" || strings.TrimSpace(r.Refusal.Explanation) == "" {
			return RequestEvent{}, Errorf(EINVALID, "A refusal needs a ground and an explanation (Refuse).")
		}
	case RequestMerged:
		if r.PrimaryID == "" || r.PrimaryID == r.ID {
			return RequestEvent{}, Errorf(EINVALID, "A merged request needs the id of the request it duplicates (MergeInto).")
		}
	}
	switch to {
	case RequestRefused, RequestMerged, RequestExtended:
		if strings.TrimSpace(reason) == "" {
			return RequestEvent{}, Errorf(EINVALID, "Moving a request to %s needs a reason.", to)
		}
	}
	ev := RequestEvent{At: at.UTC(), From: r.State, To: to, Reason: reason, Actor: actor}
	r.State = to
	r.Events = append(r.Events, ev)
	return ev, nil
}

// checkMove applies the state-table and time checks every transition shares.
func (r *Request) checkMove(to RequestState, at time.Time) error {
	if at.IsZero() {
		return Errorf(EINVALID, "A request event needs a time.")
	}
	if at.Before(r.ReceivedAt) {
		return Errorf(EINVALID, "A request event cannot precede the request's receipt.")
	}
	if r.State.Terminal() {
		return Errorf(ECONFLICT, "Request %s is %s and can no longer change.", r.ID, r.State)
	}
	if !CanTransition(r.State, to) {
		return Errorf(ECONFLICT, "Request %s cannot go from %s to %s.", r.ID, r.State, to)
	}
	return nil
}

// Verify records that the subject's identity was verified at at by method ("otp",
// or staff-recorded free text such as "in_person_id_document"), recorded by
// verifiedBy (the subject's id for a one-time code, else the staff member's id), and
// moves a received request to identity_verified (policy §6). On a merged duplicate
// it records the verification without a state change, as an event merged → merged,
// so a check passed on the duplicate is not lost. It returns EINVALID for a missing
// method or recorder and ECONFLICT when identity is already verified or the request
// is otherwise closed.
func (r *Request) Verify(method, verifiedBy string, at time.Time) (RequestEvent, error) {
	if strings.TrimSpace(method) == "" || strings.TrimSpace(verifiedBy) == "" {
		return RequestEvent{}, Errorf(EINVALID, "An identity verification needs a method and who recorded it.")
	}
	if !r.VerifiedAt.IsZero() {
		return RequestEvent{}, Errorf(ECONFLICT, "Request %s is already identity-verified.", r.ID)
	}
	if r.State == RequestMerged {
		if at.IsZero() || at.Before(r.ReceivedAt) {
			return RequestEvent{}, Errorf(EINVALID, "A verification needs a time after the request's receipt.")
		}
		r.VerifiedAt, r.VerificationMethod, r.VerifiedBy = at.UTC(), method, verifiedBy
		ev := RequestEvent{At: at.UTC(), From: RequestMerged, To: RequestMerged, Reason: "identity verified: " + method, Actor: verifiedBy}
		r.Events = append(r.Events, ev)
		return ev, nil
	}
	if err := r.checkMove(RequestIdentityVerified, at); err != nil {
		return RequestEvent{}, err
	}
	r.VerifiedAt, r.VerificationMethod, r.VerifiedBy = at.UTC(), method, verifiedBy
	ev, err := r.transition(verifiedBy, RequestIdentityVerified, method, at)
	if err != nil {
		r.VerifiedAt, r.VerificationMethod, r.VerifiedBy = time.Time{}, "", ""
	}
	return ev, err
}

// Refuse refuses the request on ref, which must pass grounds.Validate (a registered
// ground, an explanation and a complaint channel; policy §6, PIPL Art. 50). The
// event's reason is the ground's code. It returns EINVALID for an invalid refusal
// and the errors of TransitionAs.
func (r *Request) Refuse(ref Refusal, grounds RefusalGrounds, actor string, at time.Time) (RequestEvent, error) {
	if err := grounds.Validate(ref); err != nil {
		return RequestEvent{}, err
	}
	if err := r.checkMove(RequestRefused, at); err != nil {
		return RequestEvent{}, err
	}
	r.Refusal = &ref
	ev, err := r.transition(actor, RequestRefused, string(ref.Ground), at)
	if err != nil {
		r.Refusal = nil
	}
	return ev, err
}

// Extend extends the deadline once by ext, the declaration's extension rule (its
// Days is the declaration's extension days), counted from the current due date, and
// moves the request to extended. It returns ECONFLICT when the declaration allows no
// extension (ext.Days == 0), the deadline was already extended, the request has no
// deadline yet or its state forbids it; EINVALID for a missing reason and the errors
// of ExtendDue.
func (r *Request) Extend(ext DeadlineRule, cal *Calendar, reason, actor string, at time.Time) (RequestEvent, error) {
	if ext.Days == 0 {
		return RequestEvent{}, Errorf(ECONFLICT, "The declaration allows no extension of request deadlines.")
	}
	if r.Extended() {
		return RequestEvent{}, Errorf(ECONFLICT, "Request %s was already extended; a deadline is extended at most once.", r.ID)
	}
	if err := r.checkMove(RequestExtended, at); err != nil {
		return RequestEvent{}, err
	}
	if strings.TrimSpace(reason) == "" {
		return RequestEvent{}, Errorf(EINVALID, "An extension needs a reason the subject is told.")
	}
	if r.DueOn.IsZero() {
		return RequestEvent{}, Errorf(ECONFLICT, "Request %s has no deadline to extend.", r.ID)
	}
	on, dueAt, err := ExtendDue(r.DueOn, ext, cal)
	if err != nil {
		return RequestEvent{}, err
	}
	ev, err := r.transition(actor, RequestExtended, reason, at)
	if err != nil {
		return RequestEvent{}, err
	}
	r.DueOn, r.DueAt = on, dueAt.UTC()
	return ev, nil
}

// MergeInto merges the request, a duplicate, into primary: the same subject's open
// request of the same type (SameKind). The duplicate becomes merged with PrimaryID
// set and is answered by the primary's answer. It returns EINVALID when primary is
// nil, is the request itself or belongs to another subject, ECONFLICT when the
// types differ or primary is closed, and the errors of TransitionAs.
func (r *Request) MergeInto(primary *Request, actor string, at time.Time) (RequestEvent, error) {
	switch {
	case primary == nil || primary.ID == "":
		return RequestEvent{}, Errorf(EINVALID, "A duplicate must be merged into an existing request.")
	case primary.ID == r.ID:
		return RequestEvent{}, Errorf(EINVALID, "Request %s cannot be merged into itself.", r.ID)
	case primary.SubjectID != r.SubjectID:
		return RequestEvent{}, Errorf(EINVALID, "Requests of different subjects are never duplicates.")
	case !SameKind(primary.Type, r.Type):
		return RequestEvent{}, Errorf(ECONFLICT, "A %s request is not a duplicate of a %s request.", r.Type, primary.Type)
	case primary.State.Terminal():
		return RequestEvent{}, Errorf(ECONFLICT, "Request %s is %s; a duplicate can only join an open request.", primary.ID, primary.State)
	}
	if err := r.checkMove(RequestMerged, at); err != nil {
		return RequestEvent{}, err
	}
	r.PrimaryID = primary.ID
	ev, err := r.transition(actor, RequestMerged, "duplicate of "+primary.ID, at)
	if err != nil {
		r.PrimaryID = ""
	}
	return ev, err
}

// RepeatAction is what a RepeatPolicy does with an excessive repeat (policy §6).
type RepeatAction string

// Repeat actions.
const (
	// RepeatFee charges the policy's fee for the excessive repeat.
	RepeatFee RepeatAction = "fee"
	// RepeatRefuse refuses it on RefusalUnreasonablyRepetitive.
	RepeatRefuse RepeatAction = "refuse"
)

// RepeatPolicy says when requests of one type repeat beyond reasonable limits:
// more than FreeAllowance requests of the same type received within WindowDays days
// (24-hour days before now). Reasonable requests are free in principle; excessive
// ones are charged FeeMinor minor units of Currency or refused, per Action (policy
// §6; GB/T 35273-2020 §8.7). A policy with WindowDays 0 is disabled.
type RepeatPolicy struct {
	WindowDays    int          `json:"window_days"`
	FreeAllowance int          `json:"free_allowance"`
	Action        RepeatAction `json:"action"`
	FeeMinor      int64        `json:"fee_minor,omitempty"`
	Currency      string       `json:"currency,omitempty"`
}

// Validate returns EINVALID for a negative window or allowance, an unknown action,
// or a fee action without a valid fee.
func (p RepeatPolicy) Validate() error {
	if p.WindowDays == 0 {
		return nil
	}
	if p.WindowDays < 0 || p.FreeAllowance < 0 {
		return Errorf(EINVALID, "A repeat policy needs a positive window and a non-negative free allowance.")
	}
	switch p.Action {
	case RepeatFee:
		return Fee{AmountMinor: p.FeeMinor, Currency: p.Currency}.Validate()
	case RepeatRefuse:
		return nil
	}
	return Errorf(EINVALID, "A repeat policy's action must be %q or %q.", RepeatFee, RepeatRefuse)
}

// RepeatVerdict is AssessRepeat's answer: Count is the number of earlier requests
// of the same type inside the window; Excessive says whether this one goes beyond
// the free allowance; then Fee is set (action fee) or Ground is
// RefusalUnreasonablyRepetitive (action refuse).
type RepeatVerdict struct {
	Excessive bool          `json:"excessive"`
	Count     int           `json:"count"`
	Fee       *Fee          `json:"fee,omitempty"`
	Ground    RefusalGround `json:"ground,omitempty"`
}

// AssessRepeat judges a request received at now given prior, the receipt times of
// the same subject's earlier requests of the same type (not including this one).
// Receipts more than WindowDays×24h before now, or after now, are ignored. The
// request is excessive when the remaining count reaches p.FreeAllowance, so with an
// allowance of 2 per 30 days the third request in 30 days is the first excessive
// one. Callers skip types that are not RepeatLimited; a disabled policy (WindowDays
// 0) is never excessive.
func AssessRepeat(prior []time.Time, now time.Time, p RepeatPolicy) RepeatVerdict {
	if p.WindowDays <= 0 {
		return RepeatVerdict{}
	}
	since := now.Add(-time.Duration(p.WindowDays) * 24 * time.Hour)
	var v RepeatVerdict
	for _, t := range prior {
		if t.After(since) && !t.After(now) {
			v.Count++
		}
	}
	if v.Count < p.FreeAllowance {
		return v
	}
	v.Excessive = true
	switch p.Action {
	case RepeatFee:
		v.Fee = &Fee{AmountMinor: p.FeeMinor, Currency: p.Currency}
	case RepeatRefuse:
		v.Ground = RefusalUnreasonablyRepetitive
	}
	return v
}

// String describes the request by id, type and state only.
func (r *Request) String() string {
	return fmt.Sprintf("request %s (%s, %s)", r.ID, r.Type, r.State)
}
