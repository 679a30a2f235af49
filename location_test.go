package steward_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/stewardtest"
)

var locationConsent = steward.ConsentChoice{Purpose: "location_services", Separate: true}

func TestLocationNeedsConsentAndIsRounded(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			id := env.Register(t, "+8613800138000", nil).SubjectID
			sub := stewardtest.Subject(id)
			_, err := env.Service.SetLocation(sub, 31.230416, 121.473701)
			if steward.ErrorCode(err) != steward.EFORBIDDEN || steward.ErrorMessage(err) != "purpose location_services: the subject has not given consent" {
				t.Fatalf("location without consent: %v", err)
			}
			if _, err := env.Service.GrantConsent(sub, locationConsent); err != nil {
				t.Fatal(err)
			}
			loc, err := env.Service.SetLocation(sub, 31.230416, -121.476701)
			if err != nil {
				t.Fatal(err)
			}
			want := &steward.Location{Latitude: 31.23, Longitude: -121.48, At: env.Clock.Now()}
			if diff := cmp.Diff(want, loc); diff != "" {
				t.Fatalf("stored location (-want +got):\n%s", diff)
			}
			p, _ := env.Service.Me(sub)
			if got := string(p.Fields["location"]); got != `{"latitude":31.23,"longitude":-121.48,"at":"2026-11-29T02:01:00Z"}` {
				t.Errorf("profile location = %s", got)
			}
			if _, err := env.Service.SetLocation(sub, 91, 0); steward.ErrorCode(err) != steward.EINVALID {
				t.Errorf("latitude 91: %v", err)
			}
			// Withdrawing the purpose deletes the location (its only purpose).
			if _, err := env.Service.WithdrawConsent(sub, "location_services"); err != nil {
				t.Fatal(err)
			}
			if p, _ := env.Service.Me(sub); p.Fields["location"] != nil {
				t.Error("location kept after withdrawal")
			}
			if had, err := env.Service.DeleteLocation(sub); err != nil || had {
				t.Errorf("delete after withdrawal = %v, %v", had, err)
			}
		})
	}
}

func TestRetentionRun(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			a := env.Register(t, "+8613800138000", nil, locationConsent, steward.ConsentChoice{Purpose: "analytics"}).SubjectID
			b := env.Register(t, "+8613900139000", nil, locationConsent).SubjectID
			if _, err := env.Service.SetLocation(stewardtest.Subject(a), 31.23, 121.47); err != nil {
				t.Fatal(err)
			}
			l, err := env.Service.CreateLink(stewardtest.App("app"), steward.LinkRequest{SubjectID: a, Destination: "https://commaker.com/"})
			if err != nil {
				t.Fatal(err)
			}
			env.Service.FollowLink(context.Background(), l.ID, true)
			aAt := env.Clock.Now()
			env.Clock.Advance(10 * 24 * time.Hour)
			if _, err := env.Service.SetLocation(stewardtest.Subject(b), 39.90, 116.40); err != nil {
				t.Fatal(err)
			}
			sys := steward.SystemContext(context.Background(), "retention")
			if _, err := env.Service.RunRetention(stewardtest.Subject(a)); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Errorf("retention as a subject: %v", err)
			}

			// Day 90 after A's location: nothing is older than 90 days yet.
			env.Clock.Set(aAt.Add(90 * 24 * time.Hour))
			rep, err := env.Service.RunRetention(sys)
			if err != nil {
				t.Fatal(err)
			}
			want := []steward.RetentionResult{
				{Field: "location", Days: 90, Cutoff: aAt},
				{Field: "link_clicks", Days: 180, Cutoff: aAt.Add(-90 * 24 * time.Hour)},
			}
			if diff := cmp.Diff(want, rep.Fields); diff != "" {
				t.Fatalf("day 90 (-want +got):\n%s", diff)
			}
			// A microsecond later A's location goes, B's (10 days younger) stays.
			env.Clock.Advance(time.Microsecond)
			rep, _ = env.Service.RunRetention(sys)
			want[0].Cutoff, want[0].Subjects, want[0].Items = aAt.Add(time.Microsecond), 1, 1
			want[1].Cutoff = want[1].Cutoff.Add(time.Microsecond)
			if diff := cmp.Diff(want, rep.Fields); diff != "" {
				t.Fatalf("day 90 + 1µs (-want +got):\n%s", diff)
			}
			pa, _ := env.Service.Me(stewardtest.Subject(a))
			pb, _ := env.Service.Me(stewardtest.Subject(b))
			if pa.Fields["location"] != nil || pb.Fields["location"] == nil {
				t.Fatalf("after retention: A location %s, B location %s", pa.Fields["location"], pb.Fields["location"])
			}
			// Idempotent: a second run deletes nothing.
			rep, _ = env.Service.RunRetention(sys)
			if rep.Fields[0].Items != 0 {
				t.Errorf("second run deleted %d", rep.Fields[0].Items)
			}
			// Day 181: the click goes too.
			env.Clock.Set(aAt.Add(181 * 24 * time.Hour))
			rep, _ = env.Service.RunRetention(sys)
			if got := rep.Fields[1]; got.Subjects != 1 || got.Items != 1 {
				t.Errorf("clicks at day 181 = %+v", got)
			}
			if links := exportedLinks(t, env, a); len(links) != 1 || len(links[0].Clicks) != 0 {
				t.Errorf("links after click retention = %+v", links)
			}
			// Each deletion is in the subject's audit trail, counts only.
			x, _ := env.Service.ExportMe(stewardtest.Subject(a))
			var got []string
			for _, e := range x.AccessLog {
				if e.Action == steward.AuditRetention {
					got = append(got, e.Actor+" "+strings.Join(e.Fields, ","))
				}
			}
			if diff := cmp.Diff([]string{"system:retention location", "system:retention link_clicks"}, got); diff != "" {
				t.Errorf("retention audit (-want +got):\n%s", diff)
			}
		})
	}
}

// TestBasicFunctionsWithoutLocation proves policy §2.3 (P7): a subject who refuses
// location registers, reads and corrects the profile, manages consents, exports
// and cancels exactly as anyone else.
func TestBasicFunctionsWithoutLocation(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := newShieldEnv(t, engine)
			// Registration: only the required purposes, location_services refused.
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟"`})
			sub := stewardtest.Subject(reg.SubjectID)
			var granted []string
			for _, rc := range reg.Receipts {
				granted = append(granted, rc.Purpose.Name)
			}
			if diff := cmp.Diff([]string{"account", "risk_control"}, granted); diff != "" {
				t.Fatalf("consents at registration (-want +got):\n%s", diff)
			}
			// Profile read and correction.
			p, err := env.Service.UpdateMe(sub, steward.FieldValues{"nickname": json.RawMessage(`"小张"`), "gender": json.RawMessage(`"male"`)})
			if err != nil {
				t.Fatal(err)
			}
			want := map[string]string{"phone": `"+8613800138000"`, "nickname": `"小张"`, "gender": `"male"`, "birthday": `"1990-05-17"`}
			got := map[string]string{}
			for k, v := range p.Fields {
				got[k] = string(v)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Fatalf("profile (-want +got):\n%s", diff)
			}
			// Other optional consents come and go without location.
			if _, err := env.Service.GrantConsent(sub, steward.ConsentChoice{Purpose: "member_notifications", Separate: true}); err != nil {
				t.Fatal(err)
			}
			if _, err := env.Service.WithdrawConsent(sub, "member_notifications"); err != nil {
				t.Fatal(err)
			}
			// Location itself is refused, and writing it through the profile too.
			if _, err := env.Service.SetLocation(sub, 31.23, 121.47); steward.ErrorCode(err) != steward.EFORBIDDEN {
				t.Fatalf("location: %v", err)
			}
			if _, err := env.Service.UpdateMe(sub, steward.FieldValues{"location": json.RawMessage(`{"latitude":31.23,"longitude":121.47}`)}); steward.ErrorCode(err) != steward.EINVALID {
				t.Fatalf("location through the profile: %v", err)
			}
			// Client apps read under the basic purposes.
			v, err := env.Service.ReadForPurpose(stewardtest.App("app"), reg.SubjectID, "account", []string{"nickname"})
			if err != nil || string(v["nickname"]) != `"小张"` {
				t.Fatalf("read for account = %v, %v", v, err)
			}
			// Export: complete, no location anywhere.
			x, err := env.Service.ExportMe(sub)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, f := range x.Fields {
				names = append(names, f.Name)
			}
			if diff := cmp.Diff([]string{"birthday", "gender", "nickname", "phone"}, names); diff != "" {
				t.Errorf("exported fields (-want +got):\n%s", diff)
			}
			for _, st := range x.Consents.Current {
				if st.Purpose == "location_services" {
					t.Errorf("a location consent state exists: %+v", st)
				}
			}
			// Cancellation.
			if _, err := env.Service.SendCancellationCode(sub); err != nil {
				t.Fatal(err)
			}
			rc, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613800138000"))
			if err != nil {
				t.Fatal(err)
			}
			slices.Sort(rc.FieldsErased)
			if diff := cmp.Diff([]string{"birthday", "gender", "nickname", "phone"}, rc.FieldsErased); diff != "" {
				t.Errorf("erased (-want +got):\n%s", diff)
			}
			if len(rc.KeyIDsDestroyed) != 1 {
				t.Errorf("keys destroyed = %v", rc.KeyIDsDestroyed)
			}
		})
	}
}

// TestRetentionDeletesOldCodes: one-time codes, which hold the phone number's
// blind index (also of people who never registered) and the asking client's
// address, are deleted CodeRetention after they were sent; newer codes are kept.
// Each deletion batch is audited.
func TestRetentionDeletesOldCodes(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{OTP: roomyOTP})
			ctx := steward.WithActor(context.Background(), steward.Actor{Kind: steward.ActorSubject, Address: "203.0.113.7"})
			// A person who asks for a code and never registers, and one who registers.
			if _, err := env.Service.SendCode(ctx, "+8613700137000", steward.CodeRegister); err != nil {
				t.Fatal(err)
			}
			env.Register(t, "+8613800138000", nil)
			sentOld := env.Clock.Now()
			env.Clock.Advance(steward.CodeRetention - time.Hour)
			if _, err := env.Service.SendCode(ctx, "+8613900139000", steward.CodeRegister); err != nil {
				t.Fatal(err)
			}
			sys := steward.SystemContext(context.Background(), "retention")
			rep, err := env.Service.RunRetention(sys)
			if err != nil || rep.Codes != 0 {
				t.Fatalf("retention before any code is %v old: %d codes deleted, %v; want 0", steward.CodeRetention, rep.Codes, err)
			}
			env.Clock.Set(sentOld.Add(steward.CodeRetention + time.Second))
			if rep, err = env.Service.RunRetention(sys); err != nil || rep.Codes != 2 {
				t.Fatalf("retention: %d codes deleted, %v; want 2", rep.Codes, err)
			}
			if !strings.Contains(rep.String(), "one-time codes: kept 25h0m0s; deleted 2") {
				t.Errorf("report:\n%s", rep)
			}
			env.Store.Read(context.Background(), func(tx steward.Tx) error {
				for phone, want := range map[string]string{"+8613700137000": steward.ENOTFOUND, "+8613800138000": steward.ENOTFOUND, "+8613900139000": ""} {
					_, err := tx.LatestCode(context.Background(), steward.CodeRegister, env.Keyring.BlindIndex("phone", phone))
					if steward.ErrorCode(err) != want {
						t.Errorf("code to %s after retention: %v, want %q", phone, err, want)
					}
				}
				entries, err := tx.AuditBySubject(context.Background(), "")
				if err != nil {
					t.Fatal(err)
				}
				found := false
				for _, e := range entries {
					found = found || e.Action == steward.AuditRetention && strings.HasPrefix(e.Detail, "one_time_codes=2 ")
				}
				if !found {
					t.Error("no audit entry for the deleted codes")
				}
				return nil
			})
		})
	}
}
