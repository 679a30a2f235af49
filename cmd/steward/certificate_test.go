package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
)

func TestRunCertificateVerify(t *testing.T) {
	dir := t.TempDir()
	kf, _, err := keyring.LoadOrCreateKeyFile(filepath.Join(dir, "steward.key"))
	if err != nil {
		t.Fatal(err)
	}
	signer := keyring.New(kf, keyring.NewMemoryKeyStore())
	at := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	c := &steward.DeletionCertificate{Schema: steward.CertificateSchema, CertificateID: "cert-1", Controller: "ComMarker",
		RequestID: "req-1", RequestType: steward.RequestDeletion, DeletionGround: steward.DeletionNoLongerUsed, SubjectID: "subj-1",
		ErasedAt: at, IssuedAt: at, FieldsErased: []string{"birthday", "phone"},
		FieldsRetained:  []steward.RetainedField{{Field: "nickname", HoldID: "hold-1", Case: steward.HoldAuthority, Reference: "(2026) Jing 0105 Min Chu 1234", Purpose: "legal_hold", KeyID: "dek-h"}},
		KeyIDsDestroyed: []string{"dek-1"},
		Stores:          []steward.StoreCovered{{Store: "key store", Effect: "destroyed"}},
		Backups: steward.BackupAgeOut{KeyStoreRetention: "P7D", KeysDestroyedAt: at, LastBackupExpiresAt: at.Add(7 * 24 * time.Hour),
			Statement: "No backup of the key store taken before 2026-11-30T08:00:00Z survives after 2026-12-07T08:00:00Z."},
		RecipientsNotified: []steward.NotifiedRecipient{{RecipientID: "rcp-1", Name: "Acme Logistics", Kind: steward.RecipientPartner, NoticeID: "ntc-1",
			Fields: []string{"phone"}, AcknowledgeBy: at.Add(7 * 24 * time.Hour)}},
	}
	signed, err := steward.SignCertificate(c, signer)
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.MarshalIndent(signed, "", "  ")
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodPath := write("good.json", good)
	tampered := write("tampered.json", bytes.Replace(good, []byte(`"birthday",`), nil, 1))
	if bytes.Equal(mustRead(t, tampered), good) {
		t.Fatal("tampering changed nothing")
	}
	other, _ := keyring.GenerateKeyFile()
	otherPub := base64.StdEncoding.EncodeToString(other.SigningKey().Public().(ed25519.PublicKey))
	pub := base64.StdEncoding.EncodeToString(signer.PublicKey())
	keyID := signer.SigningKeyID()

	wantSummary := "certificate cert-1 verified: signed by " + keyID + " (Ed25519)\n" +
		"  controller:      ComMarker\n" +
		"  request:         req-1 (deletion, ground no_longer_used)\n" +
		"  subject:         subj-1\n" +
		"  erased at:       2026-11-30T08:00:00Z\n" +
		"  fields erased:   birthday, phone\n" +
		"  field retained:  nickname under legal hold hold-1 (authority_decision: (2026) Jing 0105 Min Chu 1234; purpose legal_hold)\n" +
		"  keys destroyed:  dek-1\n" +
		"  store:           key store: destroyed\n" +
		"  recipient told:  Acme Logistics (partner, rcp-1), notice ntc-1, fields phone, to acknowledge by 2026-12-07T08:00:00Z\n" +
		"  backups:         No backup of the key store taken before 2026-11-30T08:00:00Z survives after 2026-12-07T08:00:00Z.\n"
	cases := []struct {
		name       string
		args       []string
		status     int
		stdout     string
		stderr     string
		stderrPart bool // stderr is a prefix
	}{
		{"with the key file", []string{"verify", goodPath, "--data", dir}, 0, wantSummary, "", false},
		{"with the public key, flag first", []string{"verify", "--public-key", pub, goodPath}, 0, wantSummary, "", false},
		{"tampered", []string{"verify", tampered, "--data", dir}, 1, "",
			"steward certificate verify: " + tampered + ": NOT VERIFIED: The signature does not match the payload: the certificate was altered after it was signed.\n", false},
		{"wrong key", []string{"verify", goodPath, "--public-key", otherPub}, 1, "",
			"steward certificate verify: " + goodPath + ": NOT VERIFIED: The certificate was signed by key " + keyID + ", not by the trusted key " +
				steward.SigningKeyID(other.SigningKey().Public().(ed25519.PublicKey)) + ".\n", false},
		{"bad public key", []string{"verify", goodPath, "--public-key", "abc"}, 2, "",
			"steward certificate verify: --public-key must be a base64 Ed25519 public key (32 bytes)\n", false},
		{"no key file", []string{"verify", goodPath, "--data", t.TempDir()}, 1, "", "steward certificate verify: ENOTFOUND: Key file ", true},
		{"no file", []string{"verify", "--data", dir}, 2, "", "usage:", true},
		{"public key", []string{"public-key", "--data", dir}, 0,
			"{\n  \"algorithm\": \"Ed25519\",\n  \"key_id\": \"" + keyID + "\",\n  \"public_key\": \"" + pub + "\"\n}\n", "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := run(context.Background(), append([]string{"certificate"}, c.args...), &stdout, &stderr)
			if status != c.status || stdout.String() != c.stdout {
				t.Errorf("status %d, stdout:\n%s\nwant %d:\n%s\nstderr: %s", status, stdout.String(), c.status, c.stdout, stderr.String())
			}
			if got := stderr.String(); c.stderrPart && !strings.HasPrefix(got, c.stderr) || !c.stderrPart && got != c.stderr {
				t.Errorf("stderr %q, want %q", got, c.stderr)
			}
		})
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
