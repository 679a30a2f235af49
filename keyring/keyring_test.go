package keyring

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
)

var testNow = time.Date(2026, 3, 1, 8, 30, 0, 123456000, time.UTC)

func newTestKeyring(t testing.TB) (*Keyring, *MemoryKeyStore, *KeyFile) {
	t.Helper()
	kf, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	ks := NewMemoryKeyStore()
	r := New(kf, ks)
	r.Now = func() time.Time { return testNow }
	return r, ks, kf
}

func subjectKey(t testing.TB, r *Keyring, subjectID string) *SubjectKey {
	t.Helper()
	ctx := context.Background()
	if _, err := r.CreateSubjectKey(ctx, subjectID); err != nil {
		t.Fatal(err)
	}
	k, err := r.SubjectKey(ctx, subjectID)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func wantCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if got := steward.ErrorCode(err); got != code {
		t.Fatalf("%s: code %q (%v), want %q", what, got, err, code)
	}
}

func TestSealOpenRoundTrip(t *testing.T) {
	r, _, _ := newTestKeyring(t)
	k := subjectKey(t, r, "subj-1")
	for _, tt := range []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"phone", []byte("+8613800138000")},
		{"binary with NULs", []byte{0, 1, 0, 255, 0}},
		{"256 B", bytes.Repeat([]byte("x"), 256)},
		{"1 MiB photo", bytes.Repeat([]byte{0xAB}, 1<<20)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := k.Seal("nickname", tt.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := len(sealed), len(tt.plaintext)+SealOverhead; got != want {
				t.Errorf("len(sealed) = %d, want %d", got, want)
			}
			if sealed[0] != 0x01 {
				t.Errorf("version byte = %#x, want 0x01", sealed[0])
			}
			if len(tt.plaintext) >= 8 && bytes.Contains(sealed, tt.plaintext[:8]) {
				t.Error("sealed value contains the plaintext")
			}
			again, err := k.Seal("nickname", tt.plaintext)
			if err != nil {
				t.Fatal(err)
			}
			if bytes.Equal(sealed[1:1+12], again[1:1+12]) {
				t.Error("two seals used the same nonce")
			}
			got, err := k.Open("nickname", sealed)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.plaintext, got, cmp.Comparer(bytes.Equal)); diff != "" {
				t.Errorf("Open(Seal(x)) differs (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCreateSubjectKey(t *testing.T) {
	ctx := context.Background()
	r, ks, kf := newTestKeyring(t)
	keyID, err := r.CreateSubjectKey(ctx, "subj-1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(keyID, "dek-") || len(keyID) != len("dek-")+26 {
		t.Errorf("key id %q, want dek-<26 chars>", keyID)
	}
	stored, err := ks.GetKey(ctx, "subj-1")
	if err != nil {
		t.Fatal(err)
	}
	want := WrappedKey{SubjectID: "subj-1", KeyID: keyID, KEKID: kf.ActiveKEKID(), CreatedAt: testNow}
	if diff := cmp.Diff(want, stored, cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".Wrapped" }, cmp.Ignore())); diff != "" {
		t.Errorf("stored key (-want +got):\n%s", diff)
	}
	if len(stored.Wrapped) != 61 || stored.Wrapped[0] != 0x01 {
		t.Errorf("wrapped key: %d bytes, version %#x; want 61 bytes, version 0x01", len(stored.Wrapped), stored.Wrapped[0])
	}
	k, err := r.SubjectKey(ctx, "subj-1")
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyID() != keyID || k.SubjectID() != "subj-1" {
		t.Errorf("handle ids = %s, %s; want %s, subj-1", k.KeyID(), k.SubjectID(), keyID)
	}

	_, err = r.CreateSubjectKey(ctx, "subj-1")
	wantCode(t, "second CreateSubjectKey", err, steward.ECONFLICT)

	for _, bad := range []string{"", "a\x00b", strings.Repeat("s", 257)} {
		_, err := r.CreateSubjectKey(ctx, bad)
		wantCode(t, fmt.Sprintf("CreateSubjectKey(%q)", bad), err, steward.EINVALID)
		_, err = r.SubjectKey(ctx, bad)
		wantCode(t, fmt.Sprintf("SubjectKey(%q)", bad), err, steward.EINVALID)
	}
	_, err = r.SubjectKey(ctx, "nobody")
	wantCode(t, "SubjectKey of unknown subject", err, steward.ENOTFOUND)
}

// A sealed value opens only for the subject, field and key it was sealed for.
func TestOpenBinding(t *testing.T) {
	r, _, _ := newTestKeyring(t)
	alice := subjectKey(t, r, "alice")
	bob := subjectKey(t, r, "bob")
	const secret = "+8613800138000"
	sealed, err := alice.Seal("phone", []byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(i int) []byte {
		c := bytes.Clone(sealed)
		c[i] ^= 1
		return c
	}
	for _, tt := range []struct {
		name       string
		key        *SubjectKey
		field      string
		ciphertext []byte
	}{
		{"other field", alice, "nickname", sealed},
		{"field prefix", alice, "phon", sealed},
		{"other subject", bob, "phone", sealed},
		{"version byte", alice, "phone", flip(0)},
		{"nonce", alice, "phone", flip(1)},
		{"ciphertext", alice, "phone", flip(14)},
		{"tag", alice, "phone", flip(len(sealed) - 1)},
		{"truncated", alice, "phone", sealed[:SealOverhead-1]},
		{"empty", alice, "phone", nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.key.Open(tt.field, tt.ciphertext)
			wantCode(t, "Open", err, steward.EINTERNAL)
			if got != nil {
				t.Errorf("Open returned %d bytes with an error", len(got))
			}
			if strings.Contains(err.Error(), secret) || (len(tt.ciphertext) > 0 && strings.Contains(err.Error(), fmt.Sprintf("%x", tt.ciphertext))) {
				t.Errorf("error leaks data: %v", err)
			}
			if msg := steward.ErrorMessage(err); msg != "An internal error has occurred." {
				t.Errorf("user message = %q, want the generic one", msg)
			}
		})
	}

	for _, bad := range []string{"", "ph\x00one"} {
		_, err := alice.Seal(bad, []byte("x"))
		wantCode(t, fmt.Sprintf("Seal(%q)", bad), err, steward.EINVALID)
		_, err = alice.Open(bad, sealed)
		wantCode(t, fmt.Sprintf("Open(%q)", bad), err, steward.EINVALID)
	}
}

func TestDestroySubjectKey(t *testing.T) {
	ctx := context.Background()
	r, ks, kf := newTestKeyring(t)
	k := subjectKey(t, r, "subj-1")
	sealed, err := k.Seal("phone", []byte("+8613800138000"))
	if err != nil {
		t.Fatal(err)
	}
	copied := bytes.Clone(sealed) // e.g. in a replica or an old backup of the data store

	ids, err := r.DestroySubjectKey(ctx, "subj-1")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{k.KeyID()}, ids); diff != "" {
		t.Errorf("destroyed key ids (-want +got):\n%s", diff)
	}
	if tomb := ks.keys["subj-1"]; tomb.Wrapped != nil || tomb.KeyID != k.KeyID() {
		t.Errorf("tombstone = %+v, want key id kept and no key bytes", tomb)
	}

	_, err = r.SubjectKey(ctx, "subj-1")
	wantCode(t, "SubjectKey after destroy", err, steward.EGONE)
	// A fresh Keyring with the same key file (another node, a restart) cannot either.
	_, err = New(kf, ks).SubjectKey(ctx, "subj-1")
	wantCode(t, "SubjectKey on another Keyring after destroy", err, steward.EGONE)
	// The subject cannot be given a new key that would look like the old one.
	_, err = r.CreateSubjectKey(ctx, "subj-1")
	wantCode(t, "CreateSubjectKey after destroy", err, steward.ECONFLICT)
	// No other key opens the copy.
	other := subjectKey(t, r, "subj-2")
	_, err = other.Open("phone", copied)
	wantCode(t, "Open the copy with another subject's key", err, steward.EINTERNAL)

	again, err := r.DestroySubjectKey(ctx, "subj-1")
	if err != nil {
		t.Fatalf("second DestroySubjectKey: %v", err)
	}
	if diff := cmp.Diff(ids, again); diff != "" {
		t.Errorf("second DestroySubjectKey ids (-first +second):\n%s", diff)
	}
	_, err = r.DestroySubjectKey(ctx, "never")
	wantCode(t, "DestroySubjectKey of unknown subject", err, steward.ENOTFOUND)
}

// editStore returns what its KeyStore holds, changed by edit: a tampered row.
type editStore struct {
	KeyStore
	edit func(*WrappedKey)
}

func (s editStore) GetKey(ctx context.Context, subjectID string) (WrappedKey, error) {
	k, err := s.KeyStore.GetKey(ctx, subjectID)
	if err == nil {
		s.edit(&k)
	}
	return k, err
}

func TestTamperedWrappedKey(t *testing.T) {
	ctx := context.Background()
	kf, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	ks := NewMemoryKeyStore()
	r := New(kf, ks)
	alice := subjectKey(t, r, "alice")
	subjectKey(t, r, "bob")
	bobKey, err := ks.GetKey(ctx, "bob")
	if err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name string
		edit func(*WrappedKey)
	}{
		{"version byte", func(k *WrappedKey) { k.Wrapped[0] = 2 }},
		{"nonce", func(k *WrappedKey) { k.Wrapped[1] ^= 1 }},
		{"wrapped dek", func(k *WrappedKey) { k.Wrapped[20] ^= 1 }},
		{"tag", func(k *WrappedKey) { k.Wrapped[60] ^= 1 }},
		{"truncated", func(k *WrappedKey) { k.Wrapped = k.Wrapped[:40] }},
		{"key id", func(k *WrappedKey) { k.KeyID = bobKey.KeyID }},
		{"other subject's wrapped dek", func(k *WrappedKey) { k.Wrapped, k.KeyID = bobKey.Wrapped, bobKey.KeyID }},
		{"unknown kek", func(k *WrappedKey) { k.KEKID = "kek-unknown" }},
		{"row of another subject", func(k *WrappedKey) { *k = bobKey }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			tr := New(kf, editStore{ks, tt.edit})
			k, err := tr.SubjectKey(ctx, "alice")
			wantCode(t, "SubjectKey of a tampered key", err, steward.EINTERNAL)
			if k != nil {
				t.Error("SubjectKey returned a handle with an error")
			}
		})
	}

	// The untampered row still works.
	k, err := r.SubjectKey(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if k.KeyID() != alice.KeyID() {
		t.Errorf("key id %s, want %s", k.KeyID(), alice.KeyID())
	}
}

func TestRotation(t *testing.T) {
	ctx := context.Background()
	kf1, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	ks := NewMemoryKeyStore()
	r1 := New(kf1, ks)
	old := subjectKey(t, r1, "old")
	sealed, err := old.Seal("phone", []byte("+8613800138000"))
	if err != nil {
		t.Fatal(err)
	}
	index := r1.BlindIndex("phone", "+8613800138000")

	kf2, err := kf1.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	r2 := New(kf2, ks)

	// DEKs wrapped under the retired KEK still unwrap and open old values.
	k, err := r2.SubjectKey(ctx, "old")
	if err != nil {
		t.Fatal(err)
	}
	got, err := k.Open("phone", sealed)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "+8613800138000" {
		t.Errorf("Open after rotation = %q", got)
	}

	// New DEKs are wrapped under the new KEK.
	if _, err := r2.CreateSubjectKey(ctx, "new"); err != nil {
		t.Fatal(err)
	}
	stored, err := ks.GetKey(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	if stored.KEKID != kf2.ActiveKEKID() || stored.KEKID == kf1.ActiveKEKID() {
		t.Errorf("new key wrapped under %s, want the new KEK %s", stored.KEKID, kf2.ActiveKEKID())
	}
	// A node still on the old key file cannot unwrap it.
	_, err = r1.SubjectKey(ctx, "new")
	wantCode(t, "old key file unwraps a new-KEK DEK", err, steward.EINTERNAL)

	// Blind indexes survive rotation.
	if !bytes.Equal(index, r2.BlindIndex("phone", "+8613800138000")) {
		t.Error("blind index changed with KEK rotation")
	}
}

func TestSubjectKeyRedacted(t *testing.T) {
	r, _, _ := newTestKeyring(t)
	k := subjectKey(t, r, "subj-1")
	want := "keyring.SubjectKey{subject: subj-1, key: " + k.KeyID() + "}"
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		if got := fmt.Sprintf(verb, k); got != want {
			t.Errorf("Sprintf(%s) = %s, want %s", verb, got, want)
		}
	}
	var logs bytes.Buffer
	slog.New(slog.NewJSONHandler(&logs, nil)).Info("x", "key", k)
	if !strings.Contains(logs.String(), `"key":{"subject":"subj-1","key":"`+k.KeyID()+`"}`) {
		t.Errorf("log = %s", logs.String())
	}
}
