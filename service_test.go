package steward_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

func TestRegisterReadCancel(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			reg := env.Register(t, "+86 138 0013 8000", map[string]string{"nickname": `"张伟Test"`, "imei": `"490154203237518"`})
			app := stewardtest.App("risk-engine")
			got, err := env.Service.ReadForPurpose(app, reg.SubjectID, "risk_control", nil)
			if err != nil {
				t.Fatal(err)
			}
			if string(got["imei"]) != `"490154203237518"` || string(got["phone"]) != `"+8613800138000"` {
				t.Fatalf("read = %v", got)
			}
			if _, ok := got["nickname"]; ok {
				t.Fatal("nickname leaked outside purpose account")
			}
			sub := stewardtest.Subject(reg.SubjectID)
			if _, err := env.Service.WithdrawConsent(sub, "risk_control"); err != nil {
				t.Fatal(err)
			}
			_, err = env.Service.ReadForPurpose(app, reg.SubjectID, "risk_control", nil)
			if steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("read after withdrawal: %v, want EFORBIDDEN", err)
			}
			x, err := env.Service.ExportMe(sub)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(x)
			t.Logf("export: %d bytes", len(b))
			env.Clock.Advance(2 * time.Minute)
			if _, err := env.Service.SendCancellationCode(sub); err != nil {
				t.Fatal(err)
			}
			code := env.LastCode(t, "+8613800138000")
			rc, err := env.Service.CancelAccount(sub, code)
			if err != nil {
				t.Fatal(err)
			}
			if len(rc.KeyIDsDestroyed) != 1 {
				t.Fatalf("receipt %+v", rc)
			}
			if _, err := env.Service.Authenticate(context.Background(), reg.Token); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
				t.Fatalf("token after cancellation: %v", err)
			}
		})
	}
}

// TestErasedSubjectCannotWrite: an account erased by another process (here, the
// store directly, as the CLI would) while this process still trusts the session
// for up to 5 s must refuse the subject's writes with EGONE and store nothing.
func TestErasedSubjectCannotWrite(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟"`})
			ctx := context.Background()
			if err := env.Store.Write(ctx, func(tx steward.Tx) error {
				if err := tx.DeleteAllFields(ctx, reg.SubjectID); err != nil {
					return err
				}
				return tx.CancelSubject(ctx, reg.SubjectID, env.Clock.Now())
			}); err != nil {
				t.Fatal(err)
			}
			sub := stewardtest.Subject(reg.SubjectID)
			if _, err := env.Service.UpdateMe(sub, steward.FieldValues{"nickname": []byte(`"zombie"`)}); steward.ErrorCode(err) != steward.EGONE {
				t.Errorf("UpdateMe after erasure: %v, want EGONE", err)
			}
			if _, err := env.Service.GrantConsent(sub, steward.ConsentChoice{Purpose: "marketing", Separate: true}); steward.ErrorCode(err) != steward.EGONE {
				t.Errorf("GrantConsent after erasure: %v, want EGONE", err)
			}
			if _, err := env.Service.WithdrawConsent(sub, "risk_control"); steward.ErrorCode(err) != steward.EGONE {
				t.Errorf("WithdrawConsent after erasure: %v, want EGONE", err)
			}
			var fields []steward.SealedField
			if err := env.Store.Read(ctx, func(tx steward.Tx) (err error) { fields, err = tx.GetFields(ctx, reg.SubjectID, nil); return err }); err != nil {
				t.Fatal(err)
			}
			if len(fields) != 0 {
				t.Errorf("fields stored after erasure: %d", len(fields))
			}
		})
	}
}
