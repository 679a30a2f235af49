package steward_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	stsql "github.com/stewardhq/steward/sql"
	"github.com/stewardhq/steward/stewardtest"
	"github.com/stewardhq/steward/wechat"
)

// roomyOTP lets one test send many codes to one number.
var roomyOTP = steward.OTPPolicy{PerPhonePerHour: 1000, PerClientPerHour: 1000, ResendInterval: time.Nanosecond}

// storageBytes returns every byte the data and key stores hold: the SQLite files
// (database, WAL) or a pg_dump of both PostgreSQL databases.
func storageBytes(t *testing.T, env *stewardtest.Env) []byte {
	t.Helper()
	var all bytes.Buffer
	if env.Engine == stsql.SQLite {
		for _, name := range []string{"steward.db", "steward.db-wal", "steward-access.db", "steward-access.db-wal", "keys.db", "keys.db-wal"} {
			b, err := os.ReadFile(filepath.Join(env.Dir, name))
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			all.Write(b)
		}
		if all.Len() < 4096 {
			t.Fatalf("read only %d bytes of SQLite files", all.Len())
		}
		return all.Bytes()
	}
	for _, dsn := range []string{env.DataDSN, env.KeysDSN} {
		out, err := exec.Command("pg_dump", "--no-owner", dsn).Output()
		if err != nil {
			t.Fatalf("pg_dump: %v", err)
		}
		all.Write(out)
	}
	if !bytes.Contains(all.Bytes(), []byte("CREATE TABLE public.subject_fields")) {
		t.Fatal("pg_dump output lacks the subject_fields table")
	}
	return all.Bytes()
}

func TestNoPlaintextPIInStorage(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			fake := &wechat.Fake{}
			env := stewardtest.New(t, engine, stewardtest.Options{WeChat: fake})
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`, "gender": `"male"`})
			// A WeChat binding, a read, an update and an export leave their traces too.
			sub := stewardtest.Subject(reg.SubjectID)
			if _, err := env.Service.BindWeChat(sub, fake.Issue("wxid_zhangwei_test", "")); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Service.UpdateMe(sub, steward.FieldValues{"nickname": []byte(`"张伟Test"`)}); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Service.ExportMe(sub); err != nil {
				t.Fatal(err)
			}
			data := storageBytes(t, env)
			for _, pi := range []string{"张伟Test", "+8613800138000", "13800138000", "wxid_zhangwei_test", "1990-05-17"} {
				if bytes.Contains(data, []byte(pi)) {
					t.Errorf("storage holds %q in plaintext", pi)
				}
			}
			// The test can fail: the sealed values are there and open with the key.
			var sealed []steward.SealedField
			env.Store.Read(context.Background(), func(tx steward.Tx) (err error) {
				sealed, err = tx.GetFields(context.Background(), reg.SubjectID, nil)
				return err
			})
			if len(sealed) != 5 {
				t.Fatalf("%d sealed fields stored, want 5", len(sealed))
			}
		})
	}
}

func copyStore(t *testing.T, env *stewardtest.Env) string { return env.CopyDataStore(t) }

func openCopy(t *testing.T, env *stewardtest.Env, dsn, id string) (int, steward.FieldValues) {
	return env.OpenCopy(t, dsn, id)
}

func TestErasureReachesBackups(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`, "imei": `"490154203237518"`})
			other := env.Register(t, "+8613900139000", map[string]string{"nickname": `"李娜"`})
			before := copyStore(t, env)
			if n, v := openCopy(t, env, before, reg.SubjectID); n != 4 || string(v["nickname"]) != `"张伟Test"` {
				t.Fatalf("before cancellation the backup opens %d of %d fields, want nickname readable", len(v), n)
			}
			sub := stewardtest.Subject(reg.SubjectID)
			if _, err := env.Service.SendCancellationCode(sub); err != nil {
				t.Fatal(err)
			}
			rc, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613800138000"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(rc.FieldsErased, ","); got != "birthday,imei,nickname,phone" {
				t.Errorf("fields erased = %s", got)
			}
			n, v := openCopy(t, env, before, reg.SubjectID)
			if n != 4 || len(v) != 0 {
				t.Fatalf("after cancellation the backup still holds %d sealed fields and opens %d; want 4 and 0", n, len(v))
			}
			// The other subject in the same backup is untouched.
			if _, v := openCopy(t, env, before, other.SubjectID); string(v["nickname"]) != `"李娜"` {
				t.Fatalf("other subject's nickname from backup = %s", v["nickname"])
			}
			// The live store holds a tombstone only.
			if n, _ := openCopy(t, env, env.DataDSN, reg.SubjectID); n != 0 {
				t.Fatalf("live store still holds %d fields", n)
			}
			var subj *steward.Subject
			env.Store.Read(context.Background(), func(tx steward.Tx) (err error) {
				subj, err = tx.GetSubject(context.Background(), reg.SubjectID)
				return err
			})
			if subj.Status != steward.SubjectCancelled || subj.KeyID != "" {
				t.Fatalf("tombstone = %+v", subj)
			}
		})
	}
}

func TestSameNumberIsOnePerson(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
			env.Register(t, "+86 138 0013 8000", nil)
			for _, form := range []string{"0086-138-0013-8000", "(+86)13800138000", "138\u00a00013\u00a08000", "１３８００１３８０００"} {
				_, err := env.TryRegister(t, form, nil)
				if steward.ErrorCode(err) != steward.ECONFLICT {
					t.Errorf("register %q: %v, want ECONFLICT", form, err)
				}
			}
		})
	}
}

func TestMinimumAgeInLegalTimeZone(t *testing.T) {
	cst := time.FixedZone("CST", 8*3600)
	cases := []struct {
		birthday string
		at       time.Time
		code     string
	}{
		{`"2008-02-29"`, time.Date(2026, 2, 28, 12, 0, 0, 0, cst), steward.EFORBIDDEN},
		{`"2008-02-29"`, time.Date(2026, 3, 1, 0, 30, 0, 0, cst), ""},
		{`"2008-06-01"`, time.Date(2026, 5, 31, 16, 30, 0, 0, time.UTC), ""},
		{`"2009-02-29"`, time.Date(2026, 11, 29, 12, 0, 0, 0, cst), steward.EINVALID},
	}
	for i, c := range cases {
		// TryRegister advances the clock a minute before it sends the code, so the
		// registration happens exactly at c.at.
		env := stewardtest.New(t, stsql.SQLite, stewardtest.Options{Now: c.at.Add(-time.Minute)})
		phone := "+861380013800" + string(rune('0'+i))
		_, err := env.TryRegister(t, phone, map[string]string{"birthday": c.birthday})
		if got := steward.ErrorCode(err); got != c.code {
			t.Errorf("born %s, registering at %s: %v, want %q", c.birthday, c.at.Format(time.RFC3339), err, c.code)
		}
	}
	// The ages themselves.
	bd, _ := steward.ParseBirthday("2008-02-29")
	sh, _ := time.LoadLocation("Asia/Shanghai")
	if a := steward.Age(bd, time.Date(2026, 2, 28, 12, 0, 0, 0, cst), sh); a != 17 {
		t.Errorf("age = %d, want 17", a)
	}
	if a := steward.Age(bd, time.Date(2026, 3, 1, 0, 30, 0, 0, cst), sh); a != 18 {
		t.Errorf("age = %d, want 18", a)
	}
	bd, _ = steward.ParseBirthday("2008-06-01")
	if a := steward.Age(bd, time.Date(2026, 5, 31, 16, 30, 0, 0, time.UTC), sh); a != 18 {
		t.Errorf("age = %d, want 18 (already 1 June in Shanghai)", a)
	}
	if a := steward.Age(bd, time.Date(2026, 5, 31, 16, 30, 0, 0, time.UTC), time.UTC); a != 17 {
		t.Errorf("age in UTC = %d, want 17", a)
	}
}

func TestCancellationKillsEverySession(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
			reg := env.Register(t, "+8613800138000", nil)
			ctx := context.Background()
			var tokens []string
			for range 2 {
				env.Clock.Advance(time.Minute)
				if _, err := env.Service.SendCode(ctx, "13800138000", steward.CodeSignIn); err != nil {
					t.Fatal(err)
				}
				si, err := env.Service.SignIn(ctx, "13800138000", env.LastCode(t, "+8613800138000"))
				if err != nil {
					t.Fatal(err)
				}
				tokens = append(tokens, si.Token)
			}
			for _, tok := range tokens {
				if a, err := env.Service.Authenticate(ctx, tok); err != nil || a.ID != reg.SubjectID {
					t.Fatalf("device token before cancellation: %v %v", a, err)
				}
			}
			sub := stewardtest.Subject(reg.SubjectID)
			env.Service.SendCancellationCode(sub)
			rc, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613800138000"))
			if err != nil {
				t.Fatal(err)
			}
			if rc.SessionsRevoked != 3 {
				t.Errorf("sessions revoked = %d, want 3 (registration + two devices)", rc.SessionsRevoked)
			}
			for _, tok := range append(tokens, reg.Token) {
				if _, err := env.Service.Authenticate(ctx, tok); steward.ErrorCode(err) != steward.EUNAUTHORIZED {
					t.Errorf("token after cancellation: %v, want EUNAUTHORIZED", err)
				}
			}
		})
	}
}

func TestCancellationWithAnotherSubjectsCode(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
			a := env.Register(t, "+8613800138000", nil)
			b := env.Register(t, "+8613900139000", nil)
			ctxA, ctxB := stewardtest.Subject(a.SubjectID), stewardtest.Subject(b.SubjectID)
			env.Service.SendCancellationCode(ctxA)
			env.Service.SendCancellationCode(ctxB)
			codeB := env.LastCode(t, "+8613900139000")
			if codeB == env.LastCode(t, "+8613800138000") {
				t.Skip("the two random codes coincide (one in a million)")
			}
			_, err := env.Service.CancelAccount(ctxA, codeB)
			if steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("cancel A with B's code: %v, want EFORBIDDEN", err)
			}
			for _, ctx := range []context.Context{ctxA, ctxB} {
				p, err := env.Service.Me(ctx)
				if err != nil || p.Subject.Status != steward.SubjectActive || len(p.Fields) != 2 {
					t.Fatalf("after the refused cancellation: %+v, %v", p, err)
				}
			}
		})
	}
}

func TestAppWithoutConsentGetsNoDeviceIDs(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			reg := env.Register(t, "+8613800138000", map[string]string{"imei": `"490154203237518"`, "imsi": `"460001234567890"`})
			app := stewardtest.App("risk-engine")
			if v, err := env.Service.ReadForPurpose(app, reg.SubjectID, "risk_control", []string{"imei"}); err != nil || string(v["imei"]) != `"490154203237518"` {
				t.Fatalf("read with consent: %v %v", v, err)
			}
			if _, err := env.Service.WithdrawConsent(stewardtest.Subject(reg.SubjectID), "risk_control"); err != nil {
				t.Fatal(err)
			}
			v, err := env.Service.ReadForPurpose(app, reg.SubjectID, "risk_control", nil)
			if steward.ErrorCode(err) != steward.EFORBIDDEN || v != nil {
				t.Fatalf("read without consent: %v, %v; want EFORBIDDEN and no values", v, err)
			}
			if !strings.Contains(steward.ErrorMessage(err), "risk_control") || !strings.Contains(steward.ErrorMessage(err), "withdrew") {
				t.Errorf("message %q does not name the missing consent", steward.ErrorMessage(err))
			}
			// Withdrawal deleted the device ids kept only for risk control.
			p, _ := env.Service.Me(stewardtest.Subject(reg.SubjectID))
			if _, ok := p.Fields["imei"]; ok {
				t.Error("imei kept after its only purpose lost its basis")
			}
			// An app not declared for the purpose is refused even with consent.
			if _, err := env.Service.ReadForPurpose(app, reg.SubjectID, "account", nil); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("risk-engine reading account: %v", err)
			}
			// Both the refusal and the read are in the subject's access log.
			x, _ := env.Service.ExportMe(stewardtest.Subject(reg.SubjectID))
			var actions []string
			for _, e := range x.AccessLog {
				if e.Actor == "app:risk-engine" {
					actions = append(actions, e.Action+"/"+e.Purpose)
				}
			}
			if got := strings.Join(actions, " "); got != "subject.read/risk_control subject.read_denied/risk_control subject.read_denied/account" {
				t.Errorf("access log for the app = %s", got)
			}
		})
	}
}

func TestAuditVerifyDetectsTampering(t *testing.T) {
	tampers := []struct {
		name, sql, want string
	}{
		{"purpose changed", `UPDATE audit_log SET purpose = 'marketing' WHERE seq = 3`, "entry 3: hash mismatch"},
		{"time changed", `UPDATE audit_log SET at = 1577836800000000 WHERE seq = 3`, "entry 3: hash mismatch"},
		{"sequence changed", `UPDATE audit_log SET seq = 100 WHERE seq = 3`, "entry 4: expected sequence 3"},
		{"middle entry removed", `DELETE FROM audit_log WHERE seq = 3`, "entry 4: expected sequence 3"},
		{"last entry removed", `DELETE FROM audit_log WHERE seq = (SELECT MAX(seq) FROM audit_log)`, "entries were removed from the end"},
		{"chain emptied", `DELETE FROM audit_log`, "entries were removed from the end"},
		{"head removed", `DELETE FROM audit_head`, "head:"},
	}
	for _, engine := range stewardtest.Engines(t) {
		for _, tc := range tampers {
			t.Run(engine+"/"+tc.name, func(t *testing.T) {
				env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
				env.Register(t, "+8613800138000", nil)
				env.Register(t, "+8613900139000", nil)
				sys := steward.SystemContext(context.Background(), "test")
				n, err := env.Service.VerifyAudit(sys)
				if err != nil || n < 6 {
					t.Fatalf("intact chain: %d entries, %v", n, err)
				}
				driver := "sqlite"
				if engine == stsql.Postgres {
					driver = "pgx"
				}
				db, err := sql.Open(driver, env.DataDSN)
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				if _, err := db.Exec(tc.sql); err != nil {
					t.Fatal(err)
				}
				_, err = env.Service.VerifyAudit(sys)
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("after %s: %v, want an error containing %q", tc.name, err, tc.want)
				}
			})
		}
	}
}

func TestAuditVerifyCoversAccessLog(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			reg := env.Register(t, "+8613800138000", map[string]string{"imei": `"490154203237518"`})
			for range 3 {
				if _, err := env.Service.ReadForPurpose(stewardtest.App("risk-engine"), reg.SubjectID, "risk_control", nil); err != nil {
					t.Fatal(err)
				}
			}
			sys := steward.SystemContext(context.Background(), "test")
			_, access, err := env.Service.AuditHeads(sys)
			if err != nil || access.Seq != 3 {
				t.Fatalf("access head = %v, %v; want 3 reads", access, err)
			}
			driver, dsn := "sqlite", stsql.AccessDSN(env.DataDSN)
			if engine == stsql.Postgres {
				driver = "pgx"
			}
			db, err := sql.Open(driver, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			// Hiding who read: the app becomes another.
			if _, err := db.Exec(`UPDATE access_log SET actor_id = 'app' WHERE seq = 2`); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Service.VerifyAudit(sys); err == nil || !strings.Contains(err.Error(), "access log: entry 2: hash mismatch") {
				t.Fatalf("after tampering with the access log: %v", err)
			}
		})
	}
}

func TestWithdrawalTellsWhatItErasedAndKeepsTheAccountIdentifiable(t *testing.T) {
	env := stewardtest.New(t, stsql.SQLite, stewardtest.Options{})
	reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟"`, "imei": `"490154203237518"`})
	sub := stewardtest.Subject(reg.SubjectID)
	rc, err := env.Service.WithdrawConsent(sub, "account")
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rc.FieldsDeleted, ","); got != "birthday,nickname" {
		t.Errorf("fields deleted on withdrawing account = %q, want birthday,nickname (phone stays for risk_control)", got)
	}
	_, err = env.Service.WithdrawConsent(sub, "risk_control")
	if steward.ErrorCode(err) != steward.ECONFLICT || !strings.Contains(steward.ErrorMessage(err), "cancel the account") {
		t.Fatalf("withdrawing the last basis for the phone: %v, want ECONFLICT pointing to cancellation", err)
	}
	p, _ := env.Service.Me(sub)
	if string(p.Fields["phone"]) != `"+8613800138000"` || string(p.Fields["imei"]) != `"490154203237518"` {
		t.Fatalf("the refused withdrawal changed data: %v", p.Fields.Names())
	}
}

// TestOneCodeOneAccount races ten registrations with the same valid code: exactly
// one account is created and the others are refused.
func TestOneCodeOneAccount(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			ctx := context.Background()
			if _, err := env.Service.SendCode(ctx, "+8613800138000", steward.CodeRegister); err != nil {
				t.Fatal(err)
			}
			code := env.LastCode(t, "+8613800138000")
			reg := steward.Registration{Phone: "13800138000", Code: code, Consents: stewardtest.DefaultConsents(env.Decl),
				Fields: steward.FieldValues{"birthday": []byte(`"1990-05-17"`)}}
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[string]int{}
			for range 10 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					_, err := env.Service.Register(ctx, reg)
					mu.Lock()
					codes[steward.ErrorCode(err)]++
					mu.Unlock()
				}()
			}
			wg.Wait()
			if codes[""] != 1 || codes[""]+codes[steward.ECONFLICT]+codes[steward.EFORBIDDEN] != 10 {
				t.Fatalf("outcomes = %v, want one success and nine refusals", codes)
			}
			var n int
			env.Store.Read(ctx, func(tx steward.Tx) error {
				_, err := tx.LookupIndex(ctx, "phone", env.Keyring.BlindIndex("phone", "+8613800138000"))
				if err == nil {
					n = 1
				}
				return nil
			})
			if n != 1 {
				t.Fatal("no account holds the number")
			}
		})
	}
}

func TestCodesGoOnlyToMobileNumbers(t *testing.T) {
	env := stewardtest.New(t, stsql.SQLite, stewardtest.Options{})
	_, err := env.Service.SendCode(context.Background(), "010-6234 5678", steward.CodeRegister)
	if steward.ErrorCode(err) != steward.EINVALID || !strings.Contains(steward.ErrorMessage(err), "mobile number") {
		t.Fatalf("code to a Beijing landline: %v, want EINVALID naming mobile numbers", err)
	}
	if _, err := env.Service.SendCode(context.Background(), "138 0013 8000", steward.CodeRegister); err != nil {
		t.Fatalf("code to a mobile number: %v", err)
	}
}

// TestEveryRefusedReadIsLogged: refusals for an undeclared purpose, a purpose the
// app is not declared for, a field outside the purpose and a missing consent all
// reach the subject's access log, with declared names only.
func TestEveryRefusedReadIsLogged(t *testing.T) {
	env := stewardtest.New(t, stsql.SQLite, stewardtest.Options{})
	reg := env.Register(t, "+8613800138000", nil)
	app := stewardtest.App("risk-engine")
	for _, c := range []struct {
		app     context.Context
		purpose string
		fields  []string
		code    string
	}{
		{app, "no_such_purpose", nil, steward.EINVALID},
		{app, "account", nil, steward.EFORBIDDEN},                              // app not declared for it
		{app, "risk_control", []string{"nickname"}, steward.EFORBIDDEN},        // field outside the purpose
		{app, "risk_control", []string{"+8613800138000"}, steward.EINVALID},    // not a field at all
		{stewardtest.App("app"), "location_services", nil, steward.EFORBIDDEN}, // no consent
	} {
		if _, err := env.Service.ReadForPurpose(c.app, reg.SubjectID, c.purpose, c.fields); steward.ErrorCode(err) != c.code {
			t.Fatalf("read %s %v: %v, want %s", c.purpose, c.fields, err, c.code)
		}
	}
	x, err := env.Service.ExportMe(stewardtest.Subject(reg.SubjectID))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range x.AccessLog {
		if e.Action == steward.AuditReadDenied {
			got = append(got, e.Purpose+":"+strings.Join(e.Fields, ","))
		}
	}
	want := ":|account:|risk_control:nickname|risk_control:?|location_services:location"
	if strings.Join(got, "|") != want {
		t.Errorf("refusals logged = %q, want %q", strings.Join(got, "|"), want)
	}
	if b, _ := json.Marshal(x.AccessLog); bytes.Contains(b, []byte("8613800138000")) || bytes.Contains(b, []byte("no_such_purpose")) {
		t.Error("a caller's string reached the access log")
	}
}
