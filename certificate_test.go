package steward_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/stewardtest"
)

func subjectKeyID(t *testing.T, env *stewardtest.Env, id string) string {
	t.Helper()
	var s *steward.Subject
	if err := env.Store.Read(context.Background(), func(tx steward.Tx) (err error) { s, err = tx.GetSubject(context.Background(), id); return err }); err != nil {
		t.Fatal(err)
	}
	return s.KeyID
}

func TestCertificateSignVerify(t *testing.T) {
	for _, engine := range stewardtest.Engines(t) {
		t.Run(engine, func(t *testing.T) {
			env := stewardtest.New(t, engine, stewardtest.Options{})
			f := newFeatures(t, env)
			rv := newReceiver(t)
			reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`, "imei": `"490154203237518"`})
			rec := f.partner(t, "Acme Logistics", rv.srv.URL, []string{"account"}, []string{"nickname"})
			f.recipients.Disclose(stewardtest.App("app"), reg.SubjectID, steward.DisclosureInput{rec.ID, "account", []string{"nickname"}})
			dek := subjectKeyID(t, env, reg.SubjectID)
			erasedAt := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
			env.Clock.Set(erasedAt)
			r := deletionRequest(t, env, reg.SubjectID)
			body, err := f.erasure.Fulfil(staff(steward.RolePrivacyOfficer), r)
			if err != nil {
				t.Fatal(err)
			}
			c, err := steward.VerifyCertificate(body, env.Keyring.PublicKey())
			if err != nil {
				t.Fatalf("verify the certificate just issued: %v", err)
			}
			steps, _ := f.erasure.PendingSteps(context.Background(), r.ID)
			want := &steward.DeletionCertificate{
				Schema: "steward.deletion-certificate/v1", CertificateID: c.CertificateID, Controller: "ComMarker",
				RequestID: r.ID, RequestType: "deletion", DeletionGround: "no_longer_used", SubjectID: reg.SubjectID,
				ErasedAt: erasedAt, IssuedAt: erasedAt,
				FieldsErased: []string{"birthday", "imei", "nickname", "phone"}, FieldsRetained: []steward.RetainedField{},
				KeyIDsDestroyed: []string{dek},
				Stores: []steward.StoreCovered{
					{Store: "data store", Effect: "Sealed field values, blind indexes, one-time codes, sessions and queued messages deleted; the subject remains as a tombstone without personal information."},
					{Store: "key store", Effect: "The subject's data keys destroyed: the wrapped key bytes are wiped, so every value sealed under them is unreadable."},
					{Store: "data store backups and replicas", Effect: "They hold the subject's values sealed under the destroyed keys only, unreadable from the moment the keys were destroyed."},
					{Store: "key store backups", Effect: "Backups taken before the keys were destroyed age out by 2026-12-07T08:00:00Z; none is kept longer."},
				},
				Backups: steward.BackupAgeOut{KeyStoreRetention: "P7D", KeysDestroyedAt: erasedAt, LastBackupExpiresAt: time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC),
					Statement: "No backup of the key store taken before 2026-11-30T08:00:00Z survives after 2026-12-07T08:00:00Z."},
				RecipientsNotified: []steward.NotifiedRecipient{{RecipientID: rec.ID, Name: "Acme Logistics", Kind: "partner", NoticeID: steps[0].ID,
					Fields: []string{"nickname"}, AcknowledgeBy: time.Date(2026, 12, 7, 8, 0, 0, 0, time.UTC)}},
			}
			if diff := cmp.Diff(want, c); diff != "" {
				t.Errorf("certificate (-want +got):\n%s", diff)
			}
			var env1 steward.SignedCertificate
			json.Unmarshal(body, &env1)
			if env1.Algorithm != "Ed25519" || env1.KeyID != env.Keyring.SigningKeyID() || env1.PublicKey == "" {
				t.Errorf("envelope = algorithm %q key_id %q (want %q)", env1.Algorithm, env1.KeyID, env.Keyring.SigningKeyID())
			}
			// The key file alone verifies it: no database needed.
			if _, err := steward.VerifyCertificate(body, env.KeyFile.SigningKey().Public().(ed25519.PublicKey)); err != nil {
				t.Errorf("verify with the key file's key: %v", err)
			}
			// Pretty-printing the file changes no signed byte.
			var pretty bytes.Buffer
			json.Indent(&pretty, body, "", "  ")
			if _, err := steward.VerifyCertificate(pretty.Bytes(), env.Keyring.PublicKey()); err != nil {
				t.Errorf("verify the indented certificate: %v", err)
			}
			// Fulfilling again returns the same certificate, byte for byte.
			env.Clock.Advance(time.Hour)
			again, err := f.erasure.Fulfil(staff(steward.RolePrivacyOfficer), r)
			if err != nil || !bytes.Equal(again, body) {
				t.Errorf("second Fulfil: %v; same bytes %v", err, bytes.Equal(again, body))
			}
			stored, err := f.erasure.Certificate(staff(steward.RoleAuditor), r.ID)
			if err != nil || !bytes.Equal(stored, body) {
				t.Errorf("stored certificate: %v; same bytes %v", err, bytes.Equal(stored, body))
			}
		})
	}
}

func TestCertificateTamperAndWrongKey(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	reg := env.Register(t, "+8613800138000", map[string]string{"imei": `"490154203237518"`})
	body, err := f.erasure.Fulfil(staff(steward.RolePrivacyOfficer), deletionRequest(t, env, reg.SubjectID))
	if err != nil {
		t.Fatal(err)
	}
	other, err := keyring.GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	otherKey := other.SigningKey()
	otherPub := otherKey.Public().(ed25519.PublicKey)
	// A forger re-signs an altered payload with their own key and puts it in the envelope.
	var forged steward.SignedCertificate
	json.Unmarshal(body, &forged)
	forged.Payload = bytes.Replace(forged.Payload, []byte(`"imei",`), nil, 1)
	forged.Signature = base64Std(ed25519.Sign(otherKey, forged.Payload))
	forged.KeyID, forged.PublicKey = steward.SigningKeyID(otherPub), base64Std(otherPub)
	forgedJSON, _ := json.Marshal(forged)
	mine := env.Keyring.SigningKeyID()
	cases := []struct {
		name    string
		data    []byte
		trusted ed25519.PublicKey
		msg     string
	}{
		{"intact", body, env.Keyring.PublicKey(), ""},
		{"field list altered", bytes.Replace(body, []byte(`"imei",`), nil, 1), env.Keyring.PublicKey(),
			"The signature does not match the payload: the certificate was altered after it was signed."},
		{"date altered", bytes.Replace(body, []byte(`"last_backup_expires_at":"2026-12-06`), []byte(`"last_backup_expires_at":"2026-12-05`), 1), env.Keyring.PublicKey(),
			"The signature does not match the payload: the certificate was altered after it was signed."},
		{"checked against another key", body, otherPub,
			"The certificate was signed by key " + mine + ", not by the trusted key " + steward.SigningKeyID(otherPub) + "."},
		{"re-signed by a forger", forgedJSON, env.Keyring.PublicKey(),
			"The certificate was signed by key " + steward.SigningKeyID(otherPub) + ", not by the trusted key " + mine + "."},
		{"forger claims our key id", bytes.Replace(forgedJSON, []byte(steward.SigningKeyID(otherPub)), []byte(mine), 1), env.Keyring.PublicKey(),
			"The signature does not match the payload: the certificate was altered after it was signed."},
		{"not a certificate", []byte(`{"hello":"world"}`), env.Keyring.PublicKey(),
			"The file is not a signed deletion certificate: it needs payload, signature, key_id and algorithm."},
		{"another algorithm", bytes.Replace(body, []byte(`"algorithm":"Ed25519"`), []byte(`"algorithm":"RS256"`), 1), env.Keyring.PublicKey(),
			`The certificate's algorithm is "RS256"; only Ed25519 is accepted.`},
	}
	for _, c := range cases {
		_, err := steward.VerifyCertificate(c.data, c.trusted)
		if c.msg == "" {
			if err != nil {
				t.Errorf("%s: %v", c.name, err)
			}
			continue
		}
		if steward.ErrorCode(err) != steward.EINVALID || steward.ErrorMessage(err) != c.msg {
			t.Errorf("%s: %v\nwant EINVALID: %s", c.name, err, c.msg)
		}
	}
	if !bytes.Contains(body, []byte(`"last_backup_expires_at":"2026-12-06T02:01:00Z"`)) {
		t.Fatalf("the date case edits nothing: %s", body)
	}
}

// A subject who cancelled on their own and then (say, through staff) files a
// deletion request gets a certificate too, rebuilt from the audit trail.
func TestCertificateAfterSelfServiceCancellation(t *testing.T) {
	env := stewardtest.New(t, "sqlite", stewardtest.Options{})
	f := newFeatures(t, env)
	reg := env.Register(t, "+8613800138000", map[string]string{"nickname": `"张伟Test"`})
	dek := subjectKeyID(t, env, reg.SubjectID)
	sub := stewardtest.Subject(reg.SubjectID)
	env.Service.SendCancellationCode(sub)
	if _, err := env.Service.CancelAccount(sub, env.LastCode(t, "+8613800138000")); err != nil {
		t.Fatal(err)
	}
	cancelledAt := env.Clock.Now().UTC()
	env.Clock.Advance(24 * time.Hour)
	body, err := f.erasure.Fulfil(staff(steward.RolePrivacyOfficer), deletionRequest(t, env, reg.SubjectID))
	if err != nil {
		t.Fatal(err)
	}
	c, err := steward.VerifyCertificate(body, env.Keyring.PublicKey())
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.FieldsErased, ","); got != "birthday,nickname,phone" {
		t.Errorf("fields erased = %s", got)
	}
	if !c.ErasedAt.Equal(cancelledAt) || strings.Join(c.KeyIDsDestroyed, ",") != dek {
		t.Errorf("erased at %s with keys %v; want %s and %s", c.ErasedAt, c.KeyIDsDestroyed, cancelledAt, dek)
	}
}

func base64Std(b []byte) string {
	out, _ := json.Marshal(b) // encoding/json writes []byte as standard base64
	return strings.Trim(string(out), `"`)
}
