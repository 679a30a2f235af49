package steward_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

// hangUpAfter is a Store whose caller's context is cancelled right after its
// n-th Write commits: a client hanging up at that moment.
type hangUpAfter struct {
	steward.Store
	n      int64
	writes atomic.Int64
	cancel context.CancelFunc
}

func (s *hangUpAfter) Write(ctx context.Context, fn func(steward.Tx) error) error {
	err := s.Store.Write(ctx, fn)
	if s.writes.Add(1) == s.n {
		s.cancel()
	}
	return err
}

// TestCancellationClientHangsUp: a client that hangs up once the account's data
// is deleted must not leave the data key behind (found by a tester: 7 runs in 40).
func TestCancellationClientHangsUp(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{OTP: roomyOTP})
	reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
	ctx, cancel := context.WithCancel(stewardtest.Subject(reg.SubjectID))
	defer cancel()
	// Writes: the code sent, the code verified, the erasure.
	store := &hangUpAfter{Store: env.Store, n: 3, cancel: cancel}
	svc := env.ServiceWith(store, nil)
	if _, err := svc.SendCancellationCode(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CancelAccount(ctx, env.LastCode(t, "+8613800138000")); err != nil {
		t.Fatalf("cancellation: %v", err)
	}
	if ctx.Err() == nil {
		t.Fatal("the client did not hang up: the test is wrong")
	}
	if _, err := env.KeyStore.GetKey(context.Background(), reg.SubjectID); steward.ErrorCode(err) != steward.EGONE {
		t.Fatalf("data key after a cancellation whose client hung up: %v, want EGONE (destroyed)", err)
	}
}

// TestSignInClientHangsUp: a client that hangs up once its code is checked must
// not be left with a spent code and no session (found by a tester: 1 sign-in in
// 25 under hang-ups). The code is spent in the transaction that creates the
// session, so the sign-in either happened in full or not at all.
func TestSignInClientHangsUp(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{OTP: roomyOTP})
	reg := env.Register(t, "+8613800138000", nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// Writes: the code sent, then the code checked; the client hangs up after that.
	store := &hangUpAfter{Store: env.Store, n: 2, cancel: cancel}
	svc := env.ServiceWith(store, nil)
	if _, err := svc.SendCode(ctx, "+8613800138000", steward.CodeSignIn); err != nil {
		t.Fatal(err)
	}
	in, err := svc.SignIn(ctx, "+8613800138000", env.LastCode(t, "+8613800138000"))
	if ctx.Err() == nil {
		t.Fatal("the client did not hang up: the test is wrong")
	}
	if err != nil {
		t.Fatalf("sign-in whose client hung up after the code was checked: %v; the code is spent and no session exists", err)
	}
	actor, err := svc.Authenticate(context.Background(), in.Token)
	if err != nil || actor.ID != reg.SubjectID {
		t.Fatalf("the session's token: %+v, %v; want subject %s", actor, err, reg.SubjectID)
	}
}
