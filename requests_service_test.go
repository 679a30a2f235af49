package steward_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/declaration"
	"github.com/stewardhq/steward/outbox"
	"github.com/stewardhq/steward/stewardtest"
)

// reqEnv is a Service with its request life cycle on a real store.
type reqEnv struct {
	*stewardtest.Env
	RS *steward.RequestService
}

func newReqEnv(t *testing.T, engine string, decl *steward.Declaration) *reqEnv {
	t.Helper()
	env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP, Declaration: decl})
	rs, err := steward.NewRequestService(env.Service)
	if err != nil {
		t.Fatal(err)
	}
	return &reqEnv{Env: env, RS: rs}
}

func reqStaff(name string, roles ...string) context.Context {
	return stewardtest.Ctx(steward.Actor{Kind: steward.ActorStaff, ID: name, Roles: roles})
}

var (
	reqOfficer = reqStaff("olivia", steward.RolePrivacyOfficer)
	reqSupport = reqStaff("sam", steward.RoleSupport)
	reqAuditor = reqStaff("ada", steward.RoleAuditor)
	reqAdmin   = reqStaff("root", steward.RoleAdmin)
)

// verify sends a verification code for request id and enters it.
func (e *reqEnv) verify(t *testing.T, sub context.Context, reqPhone, id string) *steward.RequestView {
	t.Helper()
	e.Clock.Advance(time.Second) // codes to one number are spaced
	if _, err := e.RS.SendVerificationCode(sub, id); err != nil {
		t.Fatalf("send verification code: %v", err)
	}
	v, err := e.RS.VerifyWithCode(sub, id, e.LastCode(t, reqPhone))
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	return v
}

// fileVerified files in for the subject and verifies it.
func (e *reqEnv) fileVerified(t *testing.T, sub context.Context, reqPhone string, in steward.RequestInput) *steward.RequestView {
	t.Helper()
	v, err := e.RS.File(sub, in)
	if err != nil {
		t.Fatalf("file %s: %v", in.Type, err)
	}
	return e.verify(t, sub, reqPhone, v.ID)
}

func (e *reqEnv) audit(t *testing.T, subjectID, action string) []steward.AuditEntry {
	t.Helper()
	var all, out []steward.AuditEntry
	ctx := context.Background()
	if err := e.Store.Read(ctx, func(tx steward.Tx) (err error) { all, err = tx.AuditBySubject(ctx, subjectID); return err }); err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		if a.Action == action {
			out = append(out, a)
		}
	}
	return out
}

// countingFulfiller counts the calls of the Fulfiller it wraps.
type countingFulfiller struct {
	inner steward.Fulfiller
	calls atomic.Int32
}

func (c *countingFulfiller) Fulfil(ctx context.Context, r *steward.Request) (json.RawMessage, error) {
	c.calls.Add(1)
	return c.inner.Fulfil(ctx, r)
}

func (c *countingFulfiller) PendingSteps(ctx context.Context, id string) ([]steward.FulfilmentStep, error) {
	return c.inner.PendingSteps(ctx, id)
}

const reqPhone = "+8613800138000"

// Two unverified deletion requests five minutes apart are one request: verifying
// either verifies the one that is fulfilled, the subject is erased exactly once,
// and the deadline is the first request's (policy §6; P19, P23).
func TestDuplicateDeletionsEraseOnce(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		for _, verifyWhich := range []string{"first", "second"} {
			t.Run(engine+"/verify-"+verifyWhich, func(t *testing.T) {
				e := newReqEnv(t, engine, nil)
				counter := &countingFulfiller{inner: e.RS.DefaultFulfiller(steward.RequestDeletion)}
				e.RS.SetFulfiller(steward.RequestDeletion, counter)
				reg := e.Register(t, reqPhone, map[string]string{"nickname": `"张伟"`})
				sub := stewardtest.Subject(reg.SubjectID)

				e.Clock.Set(time.Date(2026, 12, 1, 15, 58, 0, 0, time.UTC)) // 23:58 in Shanghai
				first, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoLongerUsed})
				if err != nil {
					t.Fatal(err)
				}
				e.Clock.Advance(5 * time.Minute) // 00:03 the next day in Shanghai: a later due date if it were reset
				second, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoConsent})
				if err != nil {
					t.Fatal(err)
				}
				if first.DueOn.String() != "2026-12-16" || !first.DueAt.Equal(time.Date(2026, 12, 16, 15, 59, 59, 999999000, time.UTC)) {
					t.Fatalf("first due %s / %s, want 2026-12-16 / 2026-12-16T15:59:59.999999Z", first.DueOn, first.DueAt)
				}
				if second.State != steward.RequestMerged || second.PrimaryID != first.ID || second.DueOn != first.DueOn {
					t.Fatalf("second = %s primary %q due %s; want merged into %s, due %s", second.State, second.PrimaryID, second.DueOn, first.ID, first.DueOn)
				}
				target := first.ID
				if verifyWhich == "second" {
					target = second.ID
				}
				e.verify(t, sub, reqPhone, target)
				// Fulfilling the duplicate is refused; its primary is the one.
				if _, err := e.RS.Fulfil(reqOfficer, second.ID, steward.FulfilInput{}); steward.ErrorCode(err) != steward.ECONFLICT {
					t.Fatalf("fulfil duplicate: %v, want ECONFLICT", err)
				}
				got, err := e.RS.Fulfil(reqOfficer, first.ID, steward.FulfilInput{})
				if err != nil {
					t.Fatal(err)
				}
				if got.State != steward.RequestFulfilled || got.DueOn.String() != "2026-12-16" {
					t.Fatalf("primary = %s due %s, want fulfilled due 2026-12-16", got.State, got.DueOn)
				}
				if _, err := e.RS.Fulfil(reqOfficer, first.ID, steward.FulfilInput{}); steward.ErrorCode(err) != steward.ECONFLICT {
					t.Fatalf("second fulfil: %v, want ECONFLICT", err)
				}
				if n := counter.calls.Load(); n != 1 {
					t.Errorf("deletion fulfiller ran %d times, want 1", n)
				}
				if n := len(e.audit(t, reg.SubjectID, steward.AuditCancel)); n != 1 {
					t.Errorf("%d erasures in the audit trail, want 1", n)
				}
				var res steward.DeletionReceipt
				if err := json.Unmarshal(got.Result, &res); err != nil || res.SubjectID != reg.SubjectID || len(res.KeyIDsDestroyed) != 1 {
					t.Errorf("result = %s (%v), want a deletion receipt with one key destroyed", got.Result, err)
				}
				if got.Duplicates == nil || got.Duplicates[0] != second.ID {
					t.Errorf("duplicates = %v, want [%s]", got.Duplicates, second.ID)
				}
			})
		}
	}
}

// The third access request within 30 days costs the declared fee, which the
// subject sees; withdrawals are never excessive (policy §6).
func TestRepeatAllowance(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine+"/fee", func(t *testing.T) {
			e := newReqEnv(t, engine, nil)
			reg := e.Register(t, reqPhone, nil, steward.ConsentChoice{Purpose: "marketing", Separate: true})
			sub := stewardtest.Subject(reg.SubjectID)
			for i := 1; i <= 3; i++ {
				v := e.fileVerified(t, sub, reqPhone, steward.RequestInput{Type: steward.RequestAccess})
				if i < 3 {
					if v.Fee != nil {
						t.Fatalf("access request %d carries fee %+v, want none", i, v.Fee)
					}
					if _, err := e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{}); err != nil {
						t.Fatal(err)
					}
					e.Clock.Advance(10 * 24 * time.Hour)
					continue
				}
				mine, err := e.RS.MyRequest(sub, v.ID)
				if err != nil {
					t.Fatal(err)
				}
				if mine.Fee == nil || *mine.Fee != (steward.Fee{AmountMinor: 2000, Currency: "CNY"}) {
					t.Fatalf("third access request fee = %+v, want 2000 CNY", mine.Fee)
				}
			}
			// Once the first two are out of the 30-day window, access is free again.
			e.Clock.Advance(45 * 24 * time.Hour)
			// Close the open third request first, or the next one merges into it.
			mine, _ := e.RS.MyRequests(sub)
			for _, r := range mine {
				if !r.State.Terminal() {
					if _, err := e.RS.Fulfil(reqOfficer, r.ID, steward.FulfilInput{}); err != nil {
						t.Fatal(err)
					}
				}
			}
			v, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestAccess})
			if err != nil {
				t.Fatal(err)
			}
			if v.Fee != nil {
				t.Errorf("access request 55 days later carries fee %+v, want none", v.Fee)
			}
			// Withdrawal is never excessive: three in a row, each free.
			for i := 0; i < 3; i++ {
				if i > 0 {
					if _, err := e.Service.GrantConsent(sub, steward.ConsentChoice{Purpose: "marketing", Separate: true}); err != nil {
						t.Fatal(err)
					}
				}
				w := e.fileVerified(t, sub, reqPhone, steward.RequestInput{Type: steward.RequestWithdrawal, Purpose: "marketing"})
				if w.Fee != nil || w.State != steward.RequestFulfilled {
					t.Fatalf("withdrawal %d: state %s fee %+v, want fulfilled at once and free", i+1, w.State, w.Fee)
				}
			}
		})
		t.Run(engine+"/refuse", func(t *testing.T) {
			d := declaration.Default()
			d.Requests.Repeat.Action = "refuse"
			e := newReqEnv(t, engine, d)
			reg := e.Register(t, reqPhone, nil)
			sub := stewardtest.Subject(reg.SubjectID)
			for i := 0; i < 2; i++ {
				v := e.fileVerified(t, sub, reqPhone, steward.RequestInput{Type: steward.RequestExplanation})
				if v.State != steward.RequestFulfilled {
					t.Fatalf("explanation %d is %s, want fulfilled at verification", i+1, v.State)
				}
			}
			v, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestExplanation})
			if err != nil {
				t.Fatal(err)
			}
			if v.State != steward.RequestRefused || v.Refusal.Ground != steward.RefusalUnreasonablyRepetitive ||
				v.Refusal.ComplaintChannel != d.Controller.ComplaintChannel || !strings.Contains(v.Refusal.Explanation, "allowance of 2 per 30 days") {
				t.Fatalf("third explanation request = %s %+v, want refused on unreasonably_repetitive with the complaint channel", v.State, v.Refusal)
			}
		})
	}
}

// A refusal must name an enumerated ground; the subject then sees the ground, the
// explanation and where to complain (P24).
func TestRefusalNeedsGround(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			e := newReqEnv(t, engine, nil)
			reg := e.Register(t, reqPhone, nil)
			sub := stewardtest.Subject(reg.SubjectID)
			v, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionBreachOfAgreement, Details: "请删除我的账号 张伟"})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				ground      steward.RefusalGround
				explanation string
			}{{"", "no"}, {"because_we_said_so", "no"}, {steward.RefusalMaliceOrAbuse, "  "}} {
				if _, err := e.RS.Refuse(reqOfficer, v.ID, c.ground, c.explanation); steward.ErrorCode(err) != steward.EINVALID {
					t.Errorf("refuse on %q/%q: %v, want EINVALID", c.ground, c.explanation, err)
				}
			}
			const why = "Deleting now would destroy evidence in a dispute you opened."
			if _, err := e.RS.Refuse(reqOfficer, v.ID, steward.RefusalSeriousHarm, why); err != nil {
				t.Fatal(err)
			}
			mine, err := e.RS.MyRequest(sub, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := steward.Refusal{Ground: steward.RefusalSeriousHarm, GroundTitle: "Serious harm to the legitimate rights of the subject or of others",
				GroundSource: "policy §6 (related restrictions); GB/T 35273-2020 §8.7", Explanation: why, ComplaintChannel: e.Decl.Controller.ComplaintChannel}
			if mine.State != steward.RequestRefused || mine.Refusal == nil || *mine.Refusal != want {
				t.Fatalf("subject sees %s %+v, want refused %+v", mine.State, mine.Refusal, want)
			}
			last := mine.Events[len(mine.Events)-1]
			if last.To != steward.RequestRefused || last.Reason != string(steward.RefusalSeriousHarm) || last.Actor != "staff:olivia" {
				t.Errorf("last event = %+v", last)
			}
			if mine.RefusalGroundTitle == "" || mine.Details != "请删除我的账号 张伟" {
				t.Errorf("title %q details %q", mine.RefusalGroundTitle, mine.Details)
			}
			// An reqAuditor sees the ground but neither the subject's words nor the explanation.
			av, err := e.RS.Get(reqAuditor, v.ID)
			if err != nil {
				t.Fatal(err)
			}
			wantAudited := want
			wantAudited.Explanation = ""
			if *av.Refusal != wantAudited || av.Details != "" || !av.DetailsRedacted {
				t.Errorf("auditor sees %+v details %q", av.Refusal, av.Details)
			}
			// Nothing the subject or staff wrote is stored in plaintext.
			data := storageBytes(t, e.Env)
			for _, pi := range []string{"张伟", "evidence in a dispute"} {
				if bytes.Contains(data, []byte(pi)) {
					t.Errorf("storage holds %q in plaintext", pi)
				}
			}
			// The export lists the request with its refusal.
			x, err := e.Service.ExportMe(sub)
			if err != nil {
				t.Fatal(err)
			}
			if len(x.Requests) != 1 || x.Requests[0].Refusal == nil || x.Requests[0].Refusal.Explanation != why {
				t.Errorf("export requests = %+v", x.Requests)
			}
		})
	}
}

func TestFulfilNeedsVerification(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			e := newReqEnv(t, engine, nil)
			reg := e.Register(t, reqPhone, nil)
			sub := stewardtest.Subject(reg.SubjectID)
			v, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestAccess})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{}); steward.ErrorCode(err) != steward.ECONFLICT {
				t.Fatalf("fulfil before verification: %v, want ECONFLICT", err)
			}
			if _, err := e.RS.Start(reqOfficer, v.ID); steward.ErrorCode(err) != steward.ECONFLICT {
				t.Fatalf("start before verification: %v, want ECONFLICT", err)
			}
			// A wrong code does not verify.
			if _, err := e.RS.SendVerificationCode(sub, v.ID); err != nil {
				t.Fatal(err)
			}
			code := e.LastCode(t, reqPhone)
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			if _, err := e.RS.VerifyWithCode(sub, v.ID, wrong); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("wrong code: %v, want EFORBIDDEN", err)
			}
			// Another subject cannot see or verify it.
			other := e.Register(t, "+8613900139000", nil)
			if _, err := e.RS.MyRequest(stewardtest.Subject(other.SubjectID), v.ID); steward.ErrorCode(err) != steward.ENOTFOUND {
				t.Fatalf("other subject reads request: %v, want ENOTFOUND", err)
			}
			got, err := e.RS.VerifyWithCode(sub, v.ID, code)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != steward.RequestIdentityVerified || got.VerificationMethod != "otp" {
				t.Fatalf("after verification: %s by %q", got.State, got.VerificationMethod)
			}
			got, err = e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{})
			if err != nil {
				t.Fatal(err)
			}
			var states []steward.RequestState
			for _, ev := range got.Events {
				states = append(states, ev.To)
			}
			if s := joinStates(states); s != "received,identity_verified,in_progress,fulfilled" {
				t.Errorf("events = %s", s)
			}
			// The subject's answer is the export, sealed; reqStaff results hold no PI.
			mine, _ := e.RS.MyRequest(sub, v.ID)
			var x steward.Export
			if err := json.Unmarshal(mine.Answer, &x); err != nil || x.Schema != steward.ExportSchema || x.Subject.ID != reg.SubjectID {
				t.Errorf("answer = %.80s… (%v)", mine.Answer, err)
			}
			if bytes.Contains(got.Result, []byte(reqPhone)) || bytes.Contains(got.Result, []byte("1990-05-17")) {
				t.Errorf("result %s holds PI", got.Result)
			}
			if av, _ := e.RS.Get(reqAuditor, v.ID); len(av.Answer) != 0 {
				t.Errorf("auditor sees the answer")
			}
		})
	}
}

func joinStates(s []steward.RequestState) string {
	var out []string
	for _, x := range s {
		out = append(out, string(x))
	}
	return strings.Join(out, ",")
}

// The permission table of doc/permissions.md is enforced.
func TestRequestPermissions(t *testing.T) {
	e := newReqEnv(t, "sqlite", nil)
	reg := e.Register(t, reqPhone, nil)
	subjectID := reg.SubjectID
	sub := stewardtest.Subject(subjectID)
	app := stewardtest.App("app")
	// Each action runs on a fresh request in the state it needs, closed afterwards:
	// a second open complaint would merge into the first.
	newReq := func(verified bool) string {
		in := steward.StaffRequestInput{SubjectID: subjectID, RequestInput: steward.RequestInput{Type: steward.RequestComplaint, Details: "slow replies"}}
		if verified {
			in.IdentityCheck = &steward.IdentityCheck{Method: "in_person_id_document", Reference: "desk 3"}
		}
		v, err := e.RS.FileOnBehalf(reqAdmin, in)
		if err != nil {
			t.Fatal(err)
		}
		return v.ID
	}
	actions := []struct {
		name string
		perm string
		do   func(ctx context.Context) error
	}{
		{"list", steward.PermRequestList, func(ctx context.Context) error { _, err := e.RS.List(ctx, steward.QueueFilter{}); return err }},
		{"file", steward.PermRequestFile, func(ctx context.Context) error {
			v, err := e.RS.FileOnBehalf(ctx, steward.StaffRequestInput{SubjectID: subjectID, RequestInput: steward.RequestInput{Type: steward.RequestExplanation}})
			if err == nil {
				_, err = e.RS.Withdraw(reqAdmin, v.ID)
			}
			return err
		}},
		{"verify", steward.PermRequestVerify, func(ctx context.Context) error {
			id := newReq(false)
			defer e.RS.Withdraw(reqAdmin, id)
			_, err := e.RS.VerifyOnBehalf(ctx, id, steward.IdentityCheck{Method: "video_call"})
			return err
		}},
		{"assign", steward.PermRequestAssign, func(ctx context.Context) error {
			id := newReq(false)
			defer e.RS.Withdraw(reqAdmin, id)
			_, err := e.RS.Assign(ctx, id, "sam")
			return err
		}},
		{"start", steward.PermRequestStart, func(ctx context.Context) error {
			id := newReq(true)
			defer e.RS.Withdraw(reqAdmin, id)
			_, err := e.RS.Start(ctx, id)
			return err
		}},
		{"withdraw", steward.PermRequestWithdraw, func(ctx context.Context) error {
			id := newReq(false)
			_, err := e.RS.Withdraw(ctx, id)
			if err != nil {
				e.RS.Withdraw(reqAdmin, id)
			}
			return err
		}},
		{"refuse", steward.PermRequestRefuse, func(ctx context.Context) error {
			id := newReq(false)
			_, err := e.RS.Refuse(ctx, id, steward.RefusalHighlyImpractical, "We cannot trace the call you describe.")
			if err != nil {
				e.RS.Withdraw(reqAdmin, id)
			}
			return err
		}},
		{"fulfil", steward.PermRequestFulfil, func(ctx context.Context) error {
			id := newReq(true)
			_, err := e.RS.Fulfil(ctx, id, steward.FulfilInput{Reply: "We have sped up replies."})
			if err != nil {
				e.RS.Withdraw(reqAdmin, id)
			}
			return err
		}},
	}
	callers := map[string]context.Context{
		steward.RoleSupport: reqSupport, steward.RolePrivacyOfficer: reqOfficer, steward.RoleAuditor: reqAuditor, steward.RoleAdmin: reqAdmin,
		"subject": sub, "app": app,
	}
	perms := steward.RequestPermissions()
	for _, a := range actions {
		for who, ctx := range callers {
			allowed := who == steward.RoleAdmin
			for _, r := range perms[a.perm] {
				allowed = allowed || r == who
			}
			err := a.do(ctx)
			switch {
			case allowed && err != nil:
				t.Errorf("%s may %s but got %v", who, a.name, err)
			case !allowed && steward.ErrorCode(err) != steward.EFORBIDDEN:
				t.Errorf("%s may not %s but got %v, want EFORBIDDEN", who, a.name, err)
			}
		}
	}
	// The table itself: reqSupport cannot refuse, fulfil or extend; auditors only list.
	for _, c := range []struct {
		role, perm string
		want       bool
	}{
		{steward.RoleSupport, steward.PermRequestRefuse, false},
		{steward.RoleSupport, steward.PermRequestFulfil, false},
		{steward.RoleSupport, steward.PermRequestExtend, false},
		{steward.RoleSupport, steward.PermRequestFile, true},
		{steward.RoleAuditor, steward.PermRequestList, true},
		{steward.RoleAuditor, steward.PermRequestViewDetails, false},
		{steward.RolePrivacyOfficer, steward.PermRequestRefuse, true},
	} {
		a := steward.Actor{Kind: steward.ActorStaff, ID: "x", Roles: []string{c.role}}
		if got := steward.MayRequest(a, c.perm); got != c.want {
			t.Errorf("%s %s = %v, want %v", c.role, c.perm, got, c.want)
		}
	}
}

// Without a controller e-mail in the declaration, reminders go to the privacy
// officers on the staff channel.
func TestRemindersWithoutControllerEmail(t *testing.T) {
	e := newReqEnv(t, "sqlite", nil)
	reg := e.Register(t, reqPhone, nil)
	v := e.fileVerified(t, stewardtest.Subject(reg.SubjectID), reqPhone, steward.RequestInput{Type: steward.RequestAccess})
	e.Clock.Set(v.DueAt.Add(time.Hour))
	n, err := e.RS.RemindDue(context.Background(), e.Clock.Now())
	if err != nil || n != 1 {
		t.Fatalf("reminders = %d, %v; want 1", n, err)
	}
	staff := &outbox.MemorySink{}
	e.Outbox.Sinks["staff"] = staff
	if _, err := e.Outbox.DeliverDue(context.Background()); err != nil {
		t.Fatal(err)
	}
	m, ok := staff.Last("role:privacy_officer")
	if !ok || m.Subject != "Overdue: rights request "+v.ID {
		t.Fatalf("staff reminder = %+v, %v", m, ok)
	}
}

// Reminders go to the controller once per request and threshold (P23).
func TestRemindersOnce(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			d := declaration.Default()
			d.Controller.Email = "privacy@commaker.example"
			e := newReqEnv(t, engine, d)
			reg := e.Register(t, reqPhone, nil)
			sub := stewardtest.Subject(reg.SubjectID)
			v := e.fileVerified(t, sub, reqPhone, steward.RequestInput{Type: steward.RequestAccess})
			ctx := context.Background()
			remind := func() int {
				t.Helper()
				n, err := e.RS.RemindDue(ctx, e.Clock.Now())
				if err != nil {
					t.Fatal(err)
				}
				return n
			}
			stats := func() steward.RequestCounts {
				t.Helper()
				c, err := e.RS.RequestStats(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return c
			}
			if n := remind(); n != 0 {
				t.Fatalf("%d reminders 15 days ahead, want 0", n)
			}
			if c := stats(); c != (steward.RequestCounts{Open: 1}) {
				t.Fatalf("stats = %+v", c)
			}
			e.Clock.Set(v.DueAt.Add(-2 * 24 * time.Hour))
			if n := remind(); n != 1 {
				t.Fatalf("%d reminders 2 days before the deadline, want 1", n)
			}
			if n := remind(); n != 0 {
				t.Fatalf("%d reminders on a second run, want 0", n)
			}
			if c := stats(); c != (steward.RequestCounts{Open: 1, DueSoon: 1}) {
				t.Fatalf("stats = %+v", c)
			}
			q, err := e.RS.List(reqSupport, steward.QueueFilter{})
			if err != nil {
				t.Fatal(err)
			}
			if q.Counts.DueSoon != 1 || len(q.Requests) != 1 || !q.Requests[0].DueSoon {
				t.Fatalf("queue = %+v", q)
			}
			e.Clock.Set(v.DueAt.Add(time.Microsecond))
			if n := remind(); n != 1 {
				t.Fatalf("%d reminders after the deadline, want 1", n)
			}
			if n := remind(); n != 0 {
				t.Fatalf("%d reminders on a second run, want 0", n)
			}
			if c := stats(); c != (steward.RequestCounts{Open: 1, Overdue: 1}) {
				t.Fatalf("stats = %+v", c)
			}
			q, err = e.RS.List(reqSupport, steward.QueueFilter{Overdue: true})
			if err != nil || len(q.Requests) != 1 || !q.Requests[0].Overdue {
				t.Fatalf("overdue queue = %+v, %v", q, err)
			}
			var msgs []steward.OutboxMessage
			e.Store.Read(ctx, func(tx steward.Tx) (err error) {
				msgs, err = tx.DueMessages(ctx, e.Store.Instance(), e.Clock.Now(), 100)
				return err
			})
			var reminders int
			for _, m := range msgs {
				if m.Kind == "reminder" {
					reminders++
					if m.Channel != "email" {
						t.Errorf("reminder on channel %s", m.Channel)
					}
				}
			}
			if reminders != 2 {
				t.Errorf("%d reminders in the outbox, want 2", reminders)
			}
		})
	}
}

// A complaint's clock starts when identity is verified (policy §10).
func TestComplaintClock(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			e := newReqEnv(t, engine, nil)
			reg := e.Register(t, reqPhone, nil)
			sub := stewardtest.Subject(reg.SubjectID)
			v, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestComplaint, Details: "Your app asked for my location twice."})
			if err != nil {
				t.Fatal(err)
			}
			if !v.DueOn.IsZero() {
				t.Fatalf("unverified complaint due %s, want no deadline yet", v.DueOn)
			}
			e.Clock.Set(time.Date(2026, 12, 3, 17, 0, 0, 0, time.UTC)) // 01:00 on 4 December in Shanghai
			got := e.verify(t, sub, reqPhone, v.ID)
			if got.DueOn.String() != "2026-12-19" {
				t.Fatalf("complaint due %s, want 2026-12-19 (15 days after verification on 2026-12-04 in Shanghai)", got.DueOn)
			}
			if _, err := e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{}); steward.ErrorCode(err) != steward.EINVALID {
				t.Fatalf("fulfil complaint without reply: %v, want EINVALID", err)
			}
			got, err = e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{Reply: "We fixed the prompt in version 3.2."})
			if err != nil {
				t.Fatal(err)
			}
			mine, _ := e.RS.MyRequest(sub, v.ID)
			if mine.State != steward.RequestFulfilled || !bytes.Contains(mine.Answer, []byte("version 3.2")) {
				t.Fatalf("subject sees %s answer %s", mine.State, mine.Answer)
			}
		})
	}
}

// Staff take a request on the subject's behalf, recording how identity was checked;
// a correction is applied when fulfilled; an extension needs the declaration's leave.
func TestStaffTakesCorrection(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			d := declaration.Default()
			d.Requests.ExtensionDays = 15
			e := newReqEnv(t, engine, d)
			reg := e.Register(t, reqPhone, map[string]string{"nickname": `"Old"`})
			in := steward.StaffRequestInput{SubjectID: reg.SubjectID,
				RequestInput:  steward.RequestInput{Type: steward.RequestCorrection, Changes: steward.FieldValues{"nickname": []byte(`"New Name"`), "gender": []byte(`null`)}},
				IdentityCheck: &steward.IdentityCheck{Method: "in_person_id_document", Reference: "ID card 110101199003077777 seen at desk 3"}}
			if _, err := e.RS.FileOnBehalf(reqSupport, steward.StaffRequestInput{SubjectID: reg.SubjectID, RequestInput: steward.RequestInput{Type: steward.RequestCorrection, Changes: steward.FieldValues{"phone": []byte(`"+8613900139000"`)}}}); steward.ErrorCode(err) != steward.EINVALID {
				t.Fatalf("correct reqPhone: %v, want EINVALID", err)
			}
			v, err := e.RS.FileOnBehalf(reqSupport, in)
			if err != nil {
				t.Fatal(err)
			}
			if v.State != steward.RequestIdentityVerified || v.VerificationMethod != "in_person_id_document" || v.VerifiedBy != "staff:sam" ||
				v.VerificationReference != in.IdentityCheck.Reference {
				t.Fatalf("filed = %s by %q via %q ref %q", v.State, v.VerifiedBy, v.VerificationMethod, v.VerificationReference)
			}
			if _, err := e.RS.Extend(reqSupport, v.ID, "Waiting for the old records"); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("support extends: %v, want EFORBIDDEN", err)
			}
			ext, err := e.RS.Extend(reqOfficer, v.ID, "Waiting for the old records")
			if err != nil {
				t.Fatal(err)
			}
			if ext.DueOn != v.DueOn.AddDays(15) || ext.State != steward.RequestExtended {
				t.Fatalf("extended due %s state %s, want %s extended", ext.DueOn, ext.State, v.DueOn.AddDays(15))
			}
			if _, err := e.RS.Extend(reqOfficer, v.ID, "again"); steward.ErrorCode(err) != steward.ECONFLICT {
				t.Fatalf("second extension: %v, want ECONFLICT", err)
			}
			got, err := e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{})
			if err != nil {
				t.Fatal(err)
			}
			if got.State != steward.RequestFulfilled || !bytes.Contains(got.Result, []byte(`"fields_changed":["gender","nickname"]`)) {
				t.Fatalf("fulfilled %s result %s", got.State, got.Result)
			}
			p, err := e.Service.Me(stewardtest.Subject(reg.SubjectID))
			if err != nil {
				t.Fatal(err)
			}
			if string(p.Fields["nickname"]) != `"New Name"` {
				t.Errorf("nickname = %s", p.Fields["nickname"])
			}
			if got := strings.Join(p.Fields.Names(), ","); got != "birthday,nickname,phone" {
				t.Errorf("fields after the correction = %s, want birthday,nickname,phone: a correction changes only what it names", got)
			}
			// A correction that deletes nothing must not delete anything either.
			v2, err := e.RS.FileOnBehalf(reqSupport, steward.StaffRequestInput{SubjectID: reg.SubjectID,
				RequestInput:  steward.RequestInput{Type: steward.RequestCorrection, Changes: steward.FieldValues{"nickname": []byte(`"Newer"`)}},
				IdentityCheck: &steward.IdentityCheck{Method: "video_call", Reference: "ticket 5"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.RS.Fulfil(reqOfficer, v2.ID, steward.FulfilInput{}); err != nil {
				t.Fatal(err)
			}
			p, _ = e.Service.Me(stewardtest.Subject(reg.SubjectID))
			if got := strings.Join(p.Fields.Names(), ","); got != "birthday,nickname,phone" || string(p.Fields["nickname"]) != `"Newer"` {
				t.Errorf("after a correction with no deletions: %s, nickname %s", got, p.Fields["nickname"])
			}
			if bytes.Contains(storageBytes(t, e.Env), []byte("110101199003077777")) {
				t.Error("the identity-check reference is stored in plaintext")
			}
		})
	}
}

// Without extension_days a deadline cannot be extended.
func TestNoExtensionByDefault(t *testing.T) {
	e := newReqEnv(t, "sqlite", nil)
	reg := e.Register(t, reqPhone, nil)
	v := e.fileVerified(t, stewardtest.Subject(reg.SubjectID), reqPhone, steward.RequestInput{Type: steward.RequestAccess})
	if _, err := e.RS.Extend(reqOfficer, v.ID, "busy"); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("extend: %v, want ECONFLICT", err)
	}
}

// Automated decisions: recorded by declared apps, explained, appealed to a human,
// and refused by the subject (P22; PIPL Art. 24).
func TestAutomatedDecisions(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			e := newReqEnv(t, engine, nil)
			reg := e.Register(t, reqPhone, map[string]string{"imei": `"490154203237518"`})
			sub := stewardtest.Subject(reg.SubjectID)
			engineApp := stewardtest.App("risk-engine")
			in := steward.DecisionInput{System: "risk_scoring", Outcome: "sign-in blocked", Inputs: []string{"imei", "installed_apps"}}
			if _, err := e.RS.RecordDecision(stewardtest.App("unknown-app"), reg.SubjectID, in); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("undeclared app: %v, want EFORBIDDEN", err)
			}
			if _, err := e.RS.RecordDecision(engineApp, reg.SubjectID, steward.DecisionInput{System: "risk_scoring", Outcome: "x", Inputs: []string{"nickname"}}); steward.ErrorCode(err) != steward.EINVALID {
				t.Fatalf("input outside the system: %v, want EINVALID", err)
			}
			dec, err := e.RS.RecordDecision(engineApp, reg.SubjectID, in)
			if err != nil {
				t.Fatal(err)
			}
			mine, err := e.RS.MyDecisions(sub)
			if err != nil {
				t.Fatal(err)
			}
			if len(mine.Decisions) != 1 || mine.Decisions[0].Outcome != "sign-in blocked" || strings.Join(mine.Decisions[0].InputCategories, ",") != "device" || mine.Decisions[0].LogicSummary == "" {
				t.Fatalf("my decisions = %+v", mine)
			}
			// An explanation is answered at verification with logic, categories and outcome.
			ex := e.fileVerified(t, sub, reqPhone, steward.RequestInput{Type: steward.RequestDecisionExplanation, DecisionID: dec.ID})
			if ex.State != steward.RequestFulfilled || !bytes.Contains(ex.Answer, []byte("sign-in blocked")) || !bytes.Contains(ex.Answer, []byte(`"input_categories":["device"]`)) {
				t.Fatalf("explanation %s answer %s", ex.State, ex.Answer)
			}
			// An appeal waits for a human, who records the review.
			ap := e.fileVerified(t, sub, reqPhone, steward.RequestInput{Type: steward.RequestAppeal, DecisionID: dec.ID, Details: "I was signing in from my own reqPhone."})
			if ap.State != steward.RequestIdentityVerified {
				t.Fatalf("appeal is %s, want identity_verified awaiting review", ap.State)
			}
			q, _ := e.RS.List(reqOfficer, steward.QueueFilter{Type: steward.RequestAppeal})
			if len(q.Requests) != 1 || q.Requests[0].ID != ap.ID {
				t.Fatalf("appeal queue = %+v", q.Requests)
			}
			if _, err := e.RS.Fulfil(reqOfficer, ap.ID, steward.FulfilInput{Reply: "ok"}); steward.ErrorCode(err) != steward.EINVALID {
				t.Fatalf("review without outcome: %v, want EINVALID", err)
			}
			if _, err := e.RS.Fulfil(reqOfficer, ap.ID, steward.FulfilInput{Outcome: "overturned", Reply: "The device is yours; the block is lifted."}); err != nil {
				t.Fatal(err)
			}
			mine, _ = e.RS.MyDecisions(sub)
			if mine.Decisions[0].ReviewOutcome != "overturned" || mine.Decisions[0].ReviewRequestID != ap.ID {
				t.Fatalf("reviewed decision = %+v", mine.Decisions[0])
			}
			// Opting out of solely automated decisions stops new ones.
			if _, err := e.RS.OptOutOfDecisions(sub, "risk_scoring"); err != nil {
				t.Fatal(err)
			}
			if _, err := e.RS.RecordDecision(engineApp, reg.SubjectID, in); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("decision after opt-out: %v, want EFORBIDDEN", err)
			}
			mine, _ = e.RS.MyDecisions(sub)
			if len(mine.OptOuts) != 1 || mine.OptOuts[0].System != "risk_scoring" || len(mine.Decisions) != 1 {
				t.Fatalf("after opt-out: %+v", mine)
			}
			if bytes.Contains(storageBytes(t, e.Env), []byte("sign-in blocked")) {
				t.Error("a decision outcome is stored in plaintext")
			}
		})
	}
}

// Withdrawing a request, and the subject's view of the whole history.
func TestWithdrawMine(t *testing.T) {
	e := newReqEnv(t, "sqlite", nil)
	reg := e.Register(t, reqPhone, nil)
	sub := stewardtest.Subject(reg.SubjectID)
	v, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestPortability})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.RS.WithdrawMine(sub, v.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != steward.RequestWithdrawn {
		t.Fatalf("state %s", got.State)
	}
	if _, err := e.RS.WithdrawMine(sub, v.ID); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Fatalf("withdraw twice: %v, want ECONFLICT", err)
	}
	// The withdrawn one does not count as open: a new portability request is new.
	v2, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestPortability})
	if err != nil || v2.State != steward.RequestReceived {
		t.Fatalf("new request %+v %v", v2, err)
	}
	all, err := e.RS.MyRequests(sub)
	if err != nil || len(all) != 2 {
		t.Fatalf("my requests = %d, %v", len(all), err)
	}
}

func TestFileRejectsBadInput(t *testing.T) {
	e := newReqEnv(t, "sqlite", nil)
	reg := e.Register(t, reqPhone, nil)
	sub := stewardtest.Subject(reg.SubjectID)
	for _, in := range []steward.RequestInput{
		{Type: "gossip"},
		{Type: steward.RequestDeletion},
		{Type: steward.RequestDeletion, DeletionGround: "because"},
		{Type: steward.RequestAccess, DeletionGround: steward.DeletionNoConsent},
		{Type: steward.RequestWithdrawal, Purpose: "nonexistent"},
		{Type: steward.RequestAppeal},
		{Type: steward.RequestComplaint},
		{Type: steward.RequestCorrection},
		{Type: steward.RequestCorrection, Changes: steward.FieldValues{"shoe_size": []byte(`"42"`)}},
		{Type: steward.RequestAccess, Details: strings.Repeat("x", steward.MaxRequestDetails+1)},
	} {
		if _, err := e.RS.File(sub, in); steward.ErrorCode(err) != steward.EINVALID {
			t.Errorf("file %v: %v, want EINVALID", in, err)
		}
	}
	if _, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestWithdrawal, Purpose: "marketing"}); steward.ErrorCode(err) != steward.ECONFLICT {
		t.Errorf("withdraw consent never given: %v, want ECONFLICT", err)
	}
	if _, err := e.RS.File(sub, steward.RequestInput{Type: steward.RequestAppeal, DecisionID: "nope"}); steward.ErrorCode(err) != steward.ENOTFOUND {
		t.Errorf("appeal unknown decision: %v, want ENOTFOUND", err)
	}
	if _, err := e.RS.File(context.Background(), steward.RequestInput{Type: steward.RequestAccess}); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
		t.Errorf("anonymous: %v, want EUNAUTHORIZED", err)
	}
}

// doc/permissions.md shows the table RequestPermissions enforces.
func TestPermissionsDocMatchesCode(t *testing.T) {
	b, err := os.ReadFile("doc/permissions.md")
	if err != nil {
		t.Fatal(err)
	}
	roles := []string{steward.RoleSupport, steward.RolePrivacyOfficer, steward.RoleAuditor, steward.RoleAdmin}
	documented := map[string][]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "| `requests.") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 2+len(roles) {
			t.Fatalf("row %q has %d cells, want %d", line, len(cells), 2+len(roles))
		}
		perm := strings.Trim(strings.TrimSpace(cells[0]), "`")
		documented[perm] = []string{}
		for i, r := range roles {
			if strings.TrimSpace(cells[2+i]) == "✓" {
				documented[perm] = append(documented[perm], r)
			}
		}
	}
	code := steward.RequestPermissions()
	if len(documented) != len(code) {
		t.Errorf("doc lists %d permissions, code has %d", len(documented), len(code))
	}
	for perm, holders := range code {
		want := append(slices.Clone(holders), steward.RoleAdmin)
		slices.Sort(want)
		got := slices.Clone(documented[perm])
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s: doc says %v, code says %v", perm, got, want)
		}
	}
}

// Concurrent fulfilments of one request run its fulfiller once; the others get
// ECONFLICT.
func TestConcurrentFulfilRunsOnce(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			e := newReqEnv(t, engine, nil)
			counter := &countingFulfiller{inner: e.RS.DefaultFulfiller(steward.RequestDeletion)}
			e.RS.SetFulfiller(steward.RequestDeletion, counter)
			reg := e.Register(t, reqPhone, nil)
			v := e.fileVerified(t, stewardtest.Subject(reg.SubjectID), reqPhone, steward.RequestInput{Type: steward.RequestDeletion, DeletionGround: steward.DeletionNoLongerUsed})
			const n = 8
			errs := make(chan error, n)
			for i := 0; i < n; i++ {
				go func() { _, err := e.RS.Fulfil(reqOfficer, v.ID, steward.FulfilInput{}); errs <- err }()
			}
			ok := 0
			for i := 0; i < n; i++ {
				switch err := <-errs; steward.ErrorCode(err) {
				case "":
					ok++
				case steward.ECONFLICT:
				default:
					t.Errorf("fulfil: %v", err)
				}
			}
			if ok != 1 || counter.calls.Load() != 1 || len(e.audit(t, reg.SubjectID, steward.AuditCancel)) != 1 {
				t.Fatalf("%d fulfilments succeeded, fulfiller ran %d times; want 1 and 1", ok, counter.calls.Load())
			}
		})
	}
}
