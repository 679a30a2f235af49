package steward_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/stewardtest"
)

// failingDestroy is a key store whose DestroySubjectKey fails while down is set:
// the key store unreachable just after a cancellation deleted the data.
type failingDestroy struct {
	steward.Keys
	down atomic.Bool
}

func (k *failingDestroy) DestroySubjectKey(ctx context.Context, id string) ([]string, error) {
	if k.down.Load() {
		return nil, steward.WrapError(steward.EUNAVAILABLE, "key store down", errors.New("disk I/O error"))
	}
	return k.Keys.DestroySubjectKey(ctx, id)
}

// TestFinishErasuresAfterKeyStoreFailure: a cancellation whose key destruction
// failed leaves a tombstone marked as not done; the maintenance run's
// FinishErasures destroys the key once the key store answers, and only once.
func TestFinishErasuresAfterKeyStoreFailure(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
			gone := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
			kept := env.Register(t, "+8613900139000", nil)
			keys := &failingDestroy{Keys: keyring.Steward{Keyring: env.Keyring}}
			svc := env.ServiceWith(nil, keys)
			ctx := stewardtest.Subject(gone.SubjectID)
			if _, err := svc.SendCancellationCode(ctx); err != nil {
				t.Fatal(err)
			}
			keys.down.Store(true)
			rc, err := svc.CancelAccount(ctx, env.LastCode(t, "+8613800138000"))
			if err != nil {
				t.Fatalf("cancellation with the key store down: %v; the data is deleted, the receipt is due", err)
			}
			if !rc.KeyDestructionPending || len(rc.KeyIDsDestroyed) != 0 || len(rc.FieldsErased) == 0 {
				t.Fatalf("receipt with the key store down: %+v; want the fields erased, no key destroyed, key destruction pending", rc)
			}
			bg := context.Background()
			if _, err := env.KeyStore.GetKey(bg, gone.SubjectID); err != nil {
				t.Fatalf("the key should still be alive after the failed destruction: %v", err)
			}
			var pending []string
			if err := env.Store.Read(bg, func(tx steward.Tx) (err error) { pending, err = tx.PendingKeyDestructions(bg, 10); return err }); err != nil {
				t.Fatal(err)
			}
			if len(pending) != 1 || pending[0] != gone.SubjectID {
				t.Fatalf("tombstones pending key destruction = %v, want [%s]", pending, gone.SubjectID)
			}

			// The maintenance run while the key store is still down: fails, keeps the mark.
			if n, err := svc.FinishErasures(bg); err == nil || n != 0 {
				t.Fatalf("FinishErasures with the key store down = %d, %v; want 0 and an error", n, err)
			}
			keys.down.Store(false)
			if n, err := svc.FinishErasures(bg); err != nil || n != 1 {
				t.Fatalf("FinishErasures = %d, %v; want 1, nil", n, err)
			}
			if _, err := env.KeyStore.GetKey(bg, gone.SubjectID); steward.ErrorCode(err) != steward.EGONE {
				t.Fatalf("data key after FinishErasures: %v, want EGONE (destroyed)", err)
			}
			if _, err := env.KeyStore.GetKey(bg, kept.SubjectID); err != nil {
				t.Fatalf("another subject's key: %v, want alive", err)
			}
			if n, err := svc.FinishErasures(bg); err != nil || n != 0 {
				t.Fatalf("second FinishErasures = %d, %v; want 0, nil", n, err)
			}
		})
	}
}

// TestCancellationRecordsKeyDestroyed: a cancellation that destroys the key
// leaves nothing for FinishErasures.
func TestCancellationRecordsKeyDestroyed(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{OTP: roomyOTP})
	reg := env.Register(t, "+8613800138000", nil)
	ctx := stewardtest.Subject(reg.SubjectID)
	if _, err := env.Service.SendCancellationCode(ctx); err != nil {
		t.Fatal(err)
	}
	rc, err := env.Service.CancelAccount(ctx, env.LastCode(t, "+8613800138000"))
	if err != nil {
		t.Fatal(err)
	}
	if rc.KeyDestructionPending || len(rc.KeyIDsDestroyed) != 1 {
		t.Fatalf("receipt of a complete cancellation: %+v; want one key destroyed, nothing pending", rc)
	}
	if n, err := env.Service.FinishErasures(context.Background()); err != nil || n != 0 {
		t.Fatalf("FinishErasures after a complete cancellation = %d, %v; want 0, nil", n, err)
	}
}
