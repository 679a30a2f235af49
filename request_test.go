package steward

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// allowedTransitions is the request state machine written out by hand, from the
// design (never fulfilled before verification, refusal/withdrawal at any open
// stage, merge only before work starts, one extension, terminal states terminal).
// It must not be derived from CanTransition.
var allowedTransitions = map[[2]RequestState]bool{
	{"received", "identity_verified"}: true,
	{"received", "refused"}:           true,
	{"received", "withdrawn"}:         true,
	{"received", "merged"}:            true,

	{"identity_verified", "in_progress"}: true,
	{"identity_verified", "extended"}:    true,
	{"identity_verified", "fulfilled"}:   true,
	{"identity_verified", "refused"}:     true,
	{"identity_verified", "withdrawn"}:   true,
	{"identity_verified", "merged"}:      true,

	{"in_progress", "extended"}:  true,
	{"in_progress", "fulfilled"}: true,
	{"in_progress", "refused"}:   true,
	{"in_progress", "withdrawn"}: true,

	{"extended", "fulfilled"}: true,
	{"extended", "refused"}:   true,
	{"extended", "withdrawn"}: true,
}

// allStates is written out so the test also catches a state missing from RequestStates.
var allStates = []RequestState{
	"received", "identity_verified", "in_progress", "extended",
	"fulfilled", "refused", "withdrawn", "merged",
}

func TestRequestStatesList(t *testing.T) {
	if diff := cmp.Diff(allStates, RequestStates()); diff != "" {
		t.Errorf("RequestStates() (-want +got):\n%s", diff)
	}
	wantTerminal := map[RequestState]bool{"fulfilled": true, "refused": true, "withdrawn": true, "merged": true}
	for _, s := range allStates {
		if got := s.Terminal(); got != wantTerminal[s] {
			t.Errorf("%s.Terminal() = %v, want %v", s, got, wantTerminal[s])
		}
	}
}

func TestCanTransitionMatrix(t *testing.T) {
	n := 0
	for _, from := range allStates {
		for _, to := range allStates {
			want := allowedTransitions[[2]RequestState{from, to}]
			if want {
				n++
			}
			t.Run(fmt.Sprintf("%s->%s", from, to), func(t *testing.T) {
				if got := CanTransition(from, to); got != want {
					t.Errorf("CanTransition(%s, %s) = %v, want %v", from, to, got, want)
				}
			})
		}
	}
	if n != len(allowedTransitions) {
		t.Fatalf("expected list names a state outside allStates")
	}
	for _, bad := range []RequestState{"", "open", "closed"} {
		if CanTransition(bad, RequestRefused) || CanTransition(RequestReceived, bad) {
			t.Errorf("CanTransition accepts unknown state %q", bad)
		}
	}
}

var (
	t0     = time.Date(2026, 5, 1, 2, 0, 0, 0, time.UTC)
	shRule = func(t *testing.T) DeadlineRule {
		t.Helper()
		return DeadlineRule{Days: 15, Location: mustLoc(t, "Asia/Shanghai")}
	}
	testRefusal = Refusal{
		Ground:           RefusalCommercialSecrets,
		Explanation:      "The scoring model's weights are a trade secret; the factors are listed instead.",
		ComplaintChannel: "privacy@example.com",
	}
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

// newTestRequest returns a scheduled access request received at t0.
func newTestRequest(t *testing.T, id string) *Request {
	t.Helper()
	r, err := NewRequest(id, "sub_1", RequestAccess, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Schedule(shRule(t), nil); err != nil {
		t.Fatal(err)
	}
	return r
}

// moveTo moves r to state to through the method that state needs.
func moveTo(t *testing.T, r *Request, to RequestState, at time.Time) (RequestEvent, error) {
	t.Helper()
	switch to {
	case RequestIdentityVerified:
		return r.Verify("otp", "subject:sub_1", at)
	case RequestRefused:
		return r.Refuse(testRefusal, DefaultRefusalGrounds(), "staff:alice", at)
	case RequestExtended:
		return r.Extend(DeadlineRule{Days: 15, Location: mustLoc(t, "Asia/Shanghai")}, nil, "export spans archived systems", "staff:alice", at)
	case RequestMerged:
		primary := newTestRequest(t, "req_primary")
		return r.MergeInto(primary, "system:dedupe", at)
	default:
		return r.TransitionAs("staff:alice", to, "", at)
	}
}

// requestIn returns a request brought into state s by legal moves.
func requestIn(t *testing.T, s RequestState) *Request {
	t.Helper()
	r := newTestRequest(t, "req_1")
	path := map[RequestState][]RequestState{
		RequestReceived:         nil,
		RequestIdentityVerified: {RequestIdentityVerified},
		RequestInProgress:       {RequestIdentityVerified, RequestInProgress},
		RequestExtended:         {RequestIdentityVerified, RequestInProgress, RequestExtended},
		RequestFulfilled:        {RequestIdentityVerified, RequestFulfilled},
		RequestRefused:          {RequestRefused},
		RequestWithdrawn:        {RequestWithdrawn},
		RequestMerged:           {RequestMerged},
	}[s]
	for i, step := range path {
		if _, err := moveTo(t, r, step, t0.Add(time.Duration(i+1)*time.Hour)); err != nil {
			t.Fatalf("reaching %s: step %s: %v", s, step, err)
		}
	}
	if r.State != s {
		t.Fatalf("reached %s, want %s", r.State, s)
	}
	return r
}

// TestRequestTransitionMatrix drives every from × to pair through the Request
// methods: each allowed pair succeeds and records its event, each forbidden pair
// fails with ECONFLICT and leaves the request untouched.
func TestRequestTransitionMatrix(t *testing.T) {
	at := t0.Add(24 * time.Hour)
	for _, from := range allStates {
		for _, to := range allStates {
			want := allowedTransitions[[2]RequestState{from, to}]
			t.Run(fmt.Sprintf("%s->%s", from, to), func(t *testing.T) {
				r := requestIn(t, from)
				before := len(r.Events)
				ev, err := moveTo(t, r, to, at)
				if !want {
					// A merged duplicate may still record its verification, as a note
					// that leaves the state unchanged.
					if from == RequestMerged && to == RequestIdentityVerified {
						if err != nil || r.State != RequestMerged || ev.From != RequestMerged || ev.To != RequestMerged {
							t.Fatalf("verify on merged: state %s, event %+v, err %v; want a merged→merged note", r.State, ev, err)
						}
						return
					}
					if got := ErrorCode(err); got != ECONFLICT {
						t.Fatalf("error code %q (%v), want ECONFLICT", got, err)
					}
					if r.State != from || len(r.Events) != before {
						t.Fatalf("failed move changed the request: state %s, %d events", r.State, len(r.Events))
					}
					return
				}
				if err != nil {
					t.Fatalf("allowed move failed: %v", err)
				}
				if r.State != to {
					t.Fatalf("state %s, want %s", r.State, to)
				}
				if diff := cmp.Diff(ev, r.Events[len(r.Events)-1]); diff != "" {
					t.Errorf("returned event differs from the recorded one:\n%s", diff)
				}
				if ev.From != from || ev.To != to || !ev.At.Equal(at) {
					t.Errorf("event %+v, want %s→%s at %s", ev, from, to, at)
				}
				if err := r.Validate(); err != nil {
					t.Errorf("request invalid after move: %v", err)
				}
			})
		}
	}
}

func TestRequestTransitionRules(t *testing.T) {
	at := t0.Add(time.Hour)
	tests := []struct {
		name string
		do   func(t *testing.T, r *Request) error
		code string
	}{
		{"extended only through Extend", func(t *testing.T, r *Request) error {
			r.Verify("otp", "subject:sub_1", at)
			_, err := r.Transition(RequestExtended, "need time", at)
			return err
		}, EINVALID},
		{"identity_verified needs a recorded verification", func(t *testing.T, r *Request) error {
			_, err := r.Transition(RequestIdentityVerified, "trust me", at)
			return err
		}, EINVALID},
		{"refused needs a Refusal", func(t *testing.T, r *Request) error {
			_, err := r.Transition(RequestRefused, "no", at)
			return err
		}, EINVALID},
		{"merged needs a primary", func(t *testing.T, r *Request) error {
			_, err := r.Transition(RequestMerged, "dup", at)
			return err
		}, EINVALID},
		{"never fulfilled before verification", func(t *testing.T, r *Request) error {
			_, err := r.Transition(RequestFulfilled, "", at)
			return err
		}, ECONFLICT},
		{"unknown state", func(t *testing.T, r *Request) error {
			_, err := r.Transition("done", "", at)
			return err
		}, EINVALID},
		{"zero time", func(t *testing.T, r *Request) error {
			_, err := r.Transition(RequestWithdrawn, "", time.Time{})
			return err
		}, EINVALID},
		{"time before receipt", func(t *testing.T, r *Request) error {
			_, err := r.Transition(RequestWithdrawn, "", t0.Add(-time.Second))
			return err
		}, EINVALID},
		{"verify needs a method", func(t *testing.T, r *Request) error {
			_, err := r.Verify("", "staff:alice", at)
			return err
		}, EINVALID},
		{"verify needs who recorded it", func(t *testing.T, r *Request) error {
			_, err := r.Verify("in_person_id_document", "", at)
			return err
		}, EINVALID},
		{"verify twice", func(t *testing.T, r *Request) error {
			r.Verify("otp", "subject:sub_1", at)
			_, err := r.Verify("otp", "subject:sub_1", at)
			return err
		}, ECONFLICT},
		{"refusal without explanation", func(t *testing.T, r *Request) error {
			ref := testRefusal
			ref.Explanation = "  "
			_, err := r.Refuse(ref, DefaultRefusalGrounds(), "staff:alice", at)
			return err
		}, EINVALID},
		{"refusal on an unknown ground", func(t *testing.T, r *Request) error {
			ref := testRefusal
			ref.Ground = "we_would_rather_not"
			_, err := r.Refuse(ref, DefaultRefusalGrounds(), "staff:alice", at)
			return err
		}, EINVALID},
		{"extension needs a reason", func(t *testing.T, r *Request) error {
			r.Verify("otp", "subject:sub_1", at)
			_, err := r.Extend(shRule(t), nil, "", "staff:alice", at)
			return err
		}, EINVALID},
		{"extension not allowed by the declaration", func(t *testing.T, r *Request) error {
			r.Verify("otp", "subject:sub_1", at)
			_, err := r.Extend(DeadlineRule{Days: 0, Location: time.UTC}, nil, "busy", "staff:alice", at)
			return err
		}, ECONFLICT},
		{"extension only once", func(t *testing.T, r *Request) error {
			r.Verify("otp", "subject:sub_1", at)
			if _, err := r.Extend(shRule(t), nil, "busy", "staff:alice", at); err != nil {
				t.Fatal(err)
			}
			_, err := r.Extend(shRule(t), nil, "still busy", "staff:alice", at)
			return err
		}, ECONFLICT},
		{"merge into a request of another type", func(t *testing.T, r *Request) error {
			p, _ := NewRequest("req_p", "sub_1", RequestDeletion, DeletionNoLongerUsed, t0)
			_, err := r.MergeInto(p, "system:dedupe", at)
			return err
		}, ECONFLICT},
		{"merge into another subject's request", func(t *testing.T, r *Request) error {
			p, _ := NewRequest("req_p", "sub_2", RequestAccess, "", t0)
			_, err := r.MergeInto(p, "system:dedupe", at)
			return err
		}, EINVALID},
		{"merge into itself", func(t *testing.T, r *Request) error {
			_, err := r.MergeInto(r, "system:dedupe", at)
			return err
		}, EINVALID},
		{"merge into a closed request", func(t *testing.T, r *Request) error {
			p := newTestRequest(t, "req_p")
			p.Transition(RequestWithdrawn, "", at)
			_, err := r.MergeInto(p, "system:dedupe", at)
			return err
		}, ECONFLICT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newTestRequest(t, "req_1")
			err := tt.do(t, r)
			if got := ErrorCode(err); got != tt.code {
				t.Fatalf("error code %q (%v), want %q", got, err, tt.code)
			}
		})
	}
}

func TestRequestLifecycle(t *testing.T) {
	r := newTestRequest(t, "req_1")
	// 2026-05-01T02:00Z is 10:00 in Shanghai on 1 May; 15 calendar days → 16 May.
	if got, want := r.DueOn.String(), "2026-05-16"; got != want {
		t.Fatalf("DueOn = %s, want %s", got, want)
	}
	if got, want := r.DueAt, time.Date(2026, 5, 16, 15, 59, 59, 999999000, time.UTC); !got.Equal(want) {
		t.Fatalf("DueAt = %s, want %s", got, want)
	}
	at := func(h int) time.Time { return t0.Add(time.Duration(h) * time.Hour) }
	if _, err := r.Verify("in_person_id_document", "staff:bob", at(1)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Transition(RequestInProgress, "", at(2)); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Extend(shRule(t), nil, "export spans archived systems", "staff:alice", at(3)); err != nil {
		t.Fatal(err)
	}
	if got, want := r.DueOn.String(), "2026-05-31"; got != want {
		t.Errorf("extended DueOn = %s, want %s", got, want)
	}
	if err := r.Schedule(shRule(t), nil); ErrorCode(err) != ECONFLICT {
		t.Errorf("Schedule after extension: %v, want ECONFLICT", err)
	}
	if _, err := r.TransitionAs("staff:alice", RequestFulfilled, "export sent", at(4)); err != nil {
		t.Fatal(err)
	}
	want := []RequestEvent{
		{At: t0, To: RequestReceived, Reason: "received"},
		{At: at(1), From: RequestReceived, To: RequestIdentityVerified, Reason: "in_person_id_document", Actor: "staff:bob"},
		{At: at(2), From: RequestIdentityVerified, To: RequestInProgress},
		{At: at(3), From: RequestInProgress, To: RequestExtended, Reason: "export spans archived systems", Actor: "staff:alice"},
		{At: at(4), From: RequestExtended, To: RequestFulfilled, Reason: "export sent", Actor: "staff:alice"},
	}
	if diff := cmp.Diff(want, r.Events); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
	if r.IsOverdue(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("a fulfilled request is never overdue")
	}
}

func TestRequestMergedDuplicate(t *testing.T) {
	primary := newTestRequest(t, "req_p")
	dup := newTestRequest(t, "req_d")
	at := t0.Add(time.Hour)
	if _, err := dup.MergeInto(primary, "system:dedupe", at); err != nil {
		t.Fatal(err)
	}
	if dup.PrimaryID != "req_p" || dup.State != RequestMerged {
		t.Fatalf("dup = %s primary %q", dup, dup.PrimaryID)
	}
	if _, err := dup.Transition(RequestFulfilled, "", at); ErrorCode(err) != ECONFLICT {
		t.Errorf("fulfilling a merged duplicate: %v, want ECONFLICT", err)
	}
	ev, err := dup.Verify("otp", "subject:sub_1", at.Add(time.Minute))
	if err != nil {
		t.Fatalf("verifying a merged duplicate: %v", err)
	}
	want := RequestEvent{At: at.Add(time.Minute), From: RequestMerged, To: RequestMerged, Reason: "identity verified: otp", Actor: "subject:sub_1"}
	if diff := cmp.Diff(want, ev); diff != "" {
		t.Errorf("event (-want +got):\n%s", diff)
	}
	if dup.State != RequestMerged || dup.VerificationMethod != "otp" {
		t.Errorf("after verify: state %s method %q", dup.State, dup.VerificationMethod)
	}
	if err := dup.Validate(); err != nil {
		t.Error(err)
	}
}

func TestRequestComplaintClock(t *testing.T) {
	r, err := NewRequest("req_c", "sub_1", RequestComplaint, "", t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Schedule(shRule(t), nil); err != nil {
		t.Fatal(err)
	}
	if !r.DueOn.IsZero() {
		t.Fatalf("unverified complaint has deadline %s; the clock starts at verification (policy §10)", r.DueOn)
	}
	// Verified 2026-05-03 20:00 Shanghai → due 15 days later, 18 May.
	if _, err := r.Verify("otp", "subject:sub_1", time.Date(2026, 5, 3, 12, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if err := r.Schedule(shRule(t), nil); err != nil {
		t.Fatal(err)
	}
	if got, want := r.DueOn.String(), "2026-05-18"; got != want {
		t.Errorf("complaint DueOn = %s, want %s", got, want)
	}
}

func TestRequestValidate(t *testing.T) {
	ok := func() *Request {
		r, err := NewRequest("req_1", "sub_1", RequestDeletion, DeletionNoConsent, t0)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	tests := []struct {
		name   string
		mutate func(r *Request)
		code   string
	}{
		{"valid", func(r *Request) {}, ""},
		{"no id", func(r *Request) { r.ID = "" }, EINVALID},
		{"no subject", func(r *Request) { r.SubjectID = "" }, EINVALID},
		{"unknown type", func(r *Request) { r.Type = "erase_everything" }, EINVALID},
		{"unknown state", func(r *Request) { r.State = "pending" }, EINVALID},
		{"no receipt", func(r *Request) { r.ReceivedAt = time.Time{} }, EINVALID},
		{"deletion without ground", func(r *Request) { r.DeletionGround = "" }, EINVALID},
		{"deletion with unknown ground", func(r *Request) { r.DeletionGround = "because" }, EINVALID},
		{"ground on non-deletion", func(r *Request) { r.Type = RequestAccess }, EINVALID},
		{"fulfilled unverified", func(r *Request) { r.State = RequestFulfilled }, EINVALID},
		{"refused without refusal", func(r *Request) { r.State = RequestRefused }, EINVALID},
		{"refusal while open", func(r *Request) { r.Refusal = &testRefusal }, EINVALID},
		{"merged without primary", func(r *Request) { r.State = RequestMerged }, EINVALID},
		{"primary while open", func(r *Request) { r.PrimaryID = "req_2" }, EINVALID},
		{"bad fee", func(r *Request) { r.Fee = &Fee{AmountMinor: 500, Currency: "rmb"} }, EINVALID},
		{"good fee", func(r *Request) { r.Fee = &Fee{AmountMinor: 500, Currency: "CNY"} }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := ok()
			tt.mutate(r)
			if got := ErrorCode(r.Validate()); got != tt.code {
				t.Errorf("Validate() code %q, want %q", got, tt.code)
			}
		})
	}
	for _, g := range []DeletionGround{"unlawful_processing", "no_consent", "breach_of_agreement", "no_longer_used", "service_ended"} {
		if _, err := NewRequest("r", "s", RequestDeletion, g, t0); err != nil {
			t.Errorf("deletion ground %s rejected: %v", g, err)
		}
	}
	if got := len(DeletionGrounds()); got != 5 {
		t.Errorf("%d deletion grounds, want the policy's 5", got)
	}
}

func TestRequestTypesSameKind(t *testing.T) {
	want := []RequestType{"access", "portability", "correction", "deletion", "cancellation",
		"withdrawal", "explanation", "decision_explanation", "appeal", "complaint"}
	if diff := cmp.Diff(want, RequestTypes()); diff != "" {
		t.Errorf("RequestTypes() (-want +got):\n%s", diff)
	}
	for _, a := range want {
		for _, b := range want {
			if got := SameKind(a, b); got != (a == b) {
				t.Errorf("SameKind(%s, %s) = %v", a, b, got)
			}
		}
	}
	if SameKind(RequestAccess, RequestDeletion) {
		t.Error("access is a duplicate of deletion")
	}
	if SameKind("bogus", "bogus") {
		t.Error("unknown types are duplicates")
	}
	for _, typ := range want {
		limited := typ != RequestWithdrawal && typ != RequestCancellation
		if typ.RepeatLimited() != limited {
			t.Errorf("%s.RepeatLimited() = %v, want %v", typ, !limited, limited)
		}
	}
}

func TestRequestJSON(t *testing.T) {
	r := newTestRequest(t, "req_1")
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["due_on"] != "2026-05-16" || m["subject_id"] != "sub_1" || m["received_at"] != "2026-05-01T02:00:00Z" {
		t.Errorf("JSON = %s", b)
	}
	var back Request
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, &back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestRepeatAssessment(t *testing.T) {
	now := time.Date(2026, 6, 30, 12, 0, 0, 0, time.UTC)
	days := func(ds ...int) []time.Time {
		var out []time.Time
		for _, d := range ds {
			out = append(out, now.Add(-time.Duration(d)*24*time.Hour))
		}
		return out
	}
	fee := RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: RepeatFee, FeeMinor: 2000, Currency: "CNY"}
	refuse := RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: RepeatRefuse}
	tests := []struct {
		name  string
		prior []time.Time
		p     RepeatPolicy
		want  RepeatVerdict
	}{
		{"first is free", nil, fee, RepeatVerdict{}},
		{"second is free", days(10), fee, RepeatVerdict{Count: 1}},
		{"third in 30 days costs the fee", days(10, 20), fee,
			RepeatVerdict{Excessive: true, Count: 2, Fee: &Fee{AmountMinor: 2000, Currency: "CNY"}}},
		{"third in 30 days refused as unreasonably repetitive", days(10, 20), refuse,
			RepeatVerdict{Excessive: true, Count: 2, Ground: RefusalUnreasonablyRepetitive}},
		{"older than the window do not count", days(10, 31, 45), fee, RepeatVerdict{Count: 1}},
		{"exactly 30 days ago is outside", days(10, 30), fee, RepeatVerdict{Count: 1}},
		{"just inside 30 days counts", append(days(10), now.Add(-30*24*time.Hour+time.Second)), fee,
			RepeatVerdict{Excessive: true, Count: 2, Fee: &Fee{AmountMinor: 2000, Currency: "CNY"}}},
		{"future receipts ignored", append(days(10), now.Add(time.Hour)), fee, RepeatVerdict{Count: 1}},
		{"disabled policy", days(1, 2, 3, 4), RepeatPolicy{}, RepeatVerdict{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := AssessRepeat(tt.prior, now, tt.p)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AssessRepeat (-want +got):\n%s", diff)
			}
		})
	}
	// The refuse verdict's ground is a registered default ground.
	if _, ok := DefaultRefusalGrounds().Lookup(RefusalUnreasonablyRepetitive); !ok {
		t.Error("unreasonably_repetitive is not a default refusal ground")
	}
}

func TestRepeatPolicyValidate(t *testing.T) {
	tests := []struct {
		name string
		p    RepeatPolicy
		code string
	}{
		{"disabled", RepeatPolicy{}, ""},
		{"fee", RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: RepeatFee, FeeMinor: 100, Currency: "CNY"}, ""},
		{"refuse", RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: RepeatRefuse}, ""},
		{"fee without amount", RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: RepeatFee, Currency: "CNY"}, EINVALID},
		{"fee without currency", RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: RepeatFee, FeeMinor: 100}, EINVALID},
		{"unknown action", RepeatPolicy{WindowDays: 30, FreeAllowance: 2, Action: "ignore"}, EINVALID},
		{"negative window", RepeatPolicy{WindowDays: -1, Action: RepeatRefuse}, EINVALID},
		{"negative allowance", RepeatPolicy{WindowDays: 30, FreeAllowance: -1, Action: RepeatRefuse}, EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.p.Validate()); got != tt.code {
				t.Errorf("Validate() code %q, want %q", got, tt.code)
			}
		})
	}
}
