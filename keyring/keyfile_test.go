package keyring

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stewardhq/steward"
)

var keyFileCmp = cmp.AllowUnexported(KeyFile{}, kek{})

func TestLoadOrCreateKeyFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys") // missing: must be created 0700
	path := filepath.Join(dir, "steward.key")

	kf, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !created {
		t.Error("first LoadOrCreateKeyFile: created = false, want true")
	}
	for p, want := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("mode of %s = %04o, want %04o", p, got, want)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".*tmp*")); len(left) != 0 {
		t.Errorf("temporary files left behind: %v", left)
	}

	again, created, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if created {
		t.Error("second LoadOrCreateKeyFile: created = true, want false")
	}
	if diff := cmp.Diff(kf, again, keyFileCmp); diff != "" {
		t.Errorf("reloaded key file differs (-created +reloaded):\n%s", diff)
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(kf, loaded, keyFileCmp); diff != "" {
		t.Errorf("LoadKeyFile differs (-created +loaded):\n%s", diff)
	}
}

func TestKeyFileFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.key")
	kf, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Version int `json:"version"`
		KEK     struct {
			ID  string `json:"id"`
			Key string `json:"key"`
		} `json:"kek"`
		BlindIndexKey string `json:"blind_index_key"`
		CreatedAt     string `json:"created_at"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.Version != 1 {
		t.Errorf("version = %d, want 1", raw.Version)
	}
	if raw.KEK.ID != kf.ActiveKEKID() || !strings.HasPrefix(raw.KEK.ID, "kek-") || len(raw.KEK.ID) != len("kek-")+16 {
		t.Errorf("kek.id = %q, want kek-<16 chars> equal to ActiveKEKID %q", raw.KEK.ID, kf.ActiveKEKID())
	}
	kekKey, err1 := base64.StdEncoding.DecodeString(raw.KEK.Key)
	blindKey, err2 := base64.StdEncoding.DecodeString(raw.BlindIndexKey)
	if err1 != nil || err2 != nil || len(kekKey) != 32 || len(blindKey) != 32 {
		t.Fatalf("kek.key and blind_index_key must be base64 of 32 bytes: %v %v (%d, %d bytes)", err1, err2, len(kekKey), len(blindKey))
	}
	if bytes.Equal(kekKey, blindKey) {
		t.Error("kek.key equals blind_index_key; they must be independent")
	}
	if raw.CreatedAt == "" || !strings.HasSuffix(raw.CreatedAt, "Z") {
		t.Errorf("created_at = %q, want RFC 3339 UTC", raw.CreatedAt)
	}
}

func TestLoadKeyFilePermissions(t *testing.T) {
	for _, tt := range []struct {
		mode os.FileMode
		code string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o640, steward.EINVALID},
		{0o604, steward.EINVALID},
		{0o644, steward.EINVALID},
		{0o620, steward.EINVALID}, // writable by group: could be replaced
	} {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "steward.key")
			if _, _, err := LoadOrCreateKeyFile(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tt.mode); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyFile(path)
			if got := steward.ErrorCode(err); got != tt.code {
				t.Fatalf("LoadKeyFile with mode %04o: code %q (%v), want %q", tt.mode, got, err, tt.code)
			}
			if err == nil {
				return
			}
			if msg := steward.ErrorMessage(err); !strings.Contains(msg, "chmod 600 "+path) {
				t.Errorf("message %q does not tell to chmod 600 the file", msg)
			}
			// LoadOrCreateKeyFile must refuse too, never replace the file.
			if _, created, err := LoadOrCreateKeyFile(path); steward.ErrorCode(err) != steward.EINVALID || created {
				t.Errorf("LoadOrCreateKeyFile = created %v, %v; want EINVALID", created, err)
			}
		})
	}
}

func TestLoadKeyFileErrors(t *testing.T) {
	good, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	goodJSON := func(edit func(j *keyFileJSON)) string {
		j := good.toJSON()
		edit(&j)
		b, _ := json.Marshal(j)
		return string(b)
	}
	for _, tt := range []struct {
		name, content string
	}{
		{"not json", "kek=abc"},
		{"version 2", goodJSON(func(j *keyFileJSON) { j.Version = 2 })},
		{"short kek", goodJSON(func(j *keyFileJSON) { j.KEK.Key = j.KEK.Key[:16] })},
		{"no kek id", goodJSON(func(j *keyFileJSON) { j.KEK.ID = "" })},
		{"short blind key", goodJSON(func(j *keyFileJSON) { j.BlindIndexKey = nil })},
		{"blind key equals kek", goodJSON(func(j *keyFileJSON) { j.BlindIndexKey = j.KEK.Key })},
		{"duplicate kek id", goodJSON(func(j *keyFileJSON) {
			j.RetiredKEKs = []kekJSON{{ID: j.KEK.ID, Key: bytes.Repeat([]byte{7}, 32)}}
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "steward.key")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := LoadKeyFile(path)
			if got := steward.ErrorCode(err); got != steward.EINVALID {
				t.Fatalf("code %q (%v), want EINVALID", got, err)
			}
			assertNoKeyBytes(t, err.Error(), good)
		})
	}

	t.Run("missing", func(t *testing.T) {
		_, err := LoadKeyFile(filepath.Join(t.TempDir(), "none.key"))
		if got := steward.ErrorCode(err); got != steward.ENOTFOUND {
			t.Fatalf("code %q (%v), want ENOTFOUND", got, err)
		}
	})
}

// Processes racing to create the key file must all end up with the same keys:
// a KEK that was overwritten would lose every DEK wrapped under it.
func TestLoadOrCreateKeyFileRace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.key")
	const n = 8
	var (
		wg      sync.WaitGroup
		results [n]*KeyFile
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() { results[i], created[i], errs[i] = LoadOrCreateKeyFile(path) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if created[i] {
			creators++
		}
		if diff := cmp.Diff(results[0], results[i], keyFileCmp); diff != "" {
			t.Errorf("caller %d got other keys than caller 0:\n%s", i, diff)
		}
	}
	if creators != 1 {
		t.Errorf("%d callers report created, want 1", creators)
	}
}

func TestKeyFileRotate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "steward.key")
	kf, _, err := LoadOrCreateKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := kf.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ActiveKEKID() == kf.ActiveKEKID() {
		t.Fatal("Rotate kept the active KEK id")
	}
	if diff := cmp.Diff([]string{rotated.ActiveKEKID(), kf.ActiveKEKID()}, rotated.KEKIDs()); diff != "" {
		t.Errorf("KEKIDs after rotation (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{kf.ActiveKEKID()}, kf.KEKIDs()); diff != "" {
		t.Errorf("Rotate changed the original KeyFile (-want +got):\n%s", diff)
	}
	if err := WriteKeyFile(path, rotated); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode after WriteKeyFile = %04o, want 0600", fi.Mode().Perm())
	}
	loaded, err := LoadKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(rotated, loaded, keyFileCmp); diff != "" {
		t.Errorf("rotated key file reloaded differs (-written +loaded):\n%s", diff)
	}
}

func TestKeyFileRedacted(t *testing.T) {
	kf, err := GenerateKeyFile()
	if err != nil {
		t.Fatal(err)
	}
	kf, err = kf.Rotate()
	if err != nil {
		t.Fatal(err)
	}
	r := New(kf, NewMemoryKeyStore())
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, nil))
	log.Info("loaded", "key_file", kf, "keyring", r)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%q"} {
		assertNoKeyBytes(t, fmt.Sprintf(verb, kf), kf)
		assertNoKeyBytes(t, fmt.Sprintf(verb, r), kf)
	}
	assertNoKeyBytes(t, logs.String(), kf)
	if !strings.Contains(logs.String(), kf.ActiveKEKID()) {
		t.Errorf("log %s does not name the active KEK", logs.String())
	}
}

// assertNoKeyBytes fails if s contains any key of kf, raw, hex or base64.
func assertNoKeyBytes(t *testing.T, s string, kf *KeyFile) {
	t.Helper()
	keys := [][]byte{kf.blindKey}
	for _, k := range kf.keks() {
		keys = append(keys, k.key)
	}
	for _, k := range keys {
		for _, enc := range []string{
			string(k), hex.EncodeToString(k), base64.StdEncoding.EncodeToString(k),
			base64.RawURLEncoding.EncodeToString(k), strings.TrimSuffix(fmt.Sprint(k[:8]), "]"),
		} {
			if strings.Contains(s, enc) {
				t.Fatalf("output contains key bytes: %s", s)
			}
		}
	}
}
