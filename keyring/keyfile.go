package keyring

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/stewardhq/steward"
)

// KeySize is the size in bytes of every key in this package: KEKs, DEKs and the
// blind-index key are all 256-bit.
const KeySize = 32

// keyFileVersion is the only key file format this package reads and writes.
const keyFileVersion = 1

// KeyFile holds the key-encryption keys and the blind-index key read from a key
// file. It is immutable once loaded; Rotate returns a new KeyFile. Its String,
// GoString and LogValue never show key bytes.
type KeyFile struct {
	active    kek   // wraps new DEKs
	retired   []kek // earlier KEKs, kept to unwrap the DEKs they wrapped
	blindKey  []byte
	createdAt time.Time
}

// kek is one key-encryption key and the id recorded next to each DEK it wraps.
type kek struct {
	id        string
	key       []byte
	createdAt time.Time
}

// keyFileJSON is the file format. A new file has one KEK under "kek"; after a
// rotation the earlier ones move to "retired_keks", where they still unwrap the
// DEKs that record their id.
type keyFileJSON struct {
	Version       int       `json:"version"`
	KEK           kekJSON   `json:"kek"`
	RetiredKEKs   []kekJSON `json:"retired_keks,omitempty"`
	BlindIndexKey []byte    `json:"blind_index_key"` // base64 by encoding/json
	CreatedAt     time.Time `json:"created_at"`
}

type kekJSON struct {
	ID        string    `json:"id"`
	Key       []byte    `json:"key"`
	CreatedAt time.Time `json:"created_at,omitzero"`
}

// GenerateKeyFile returns a KeyFile with a fresh random KEK and an independent
// random blind-index key, without writing it anywhere. Tests and LoadOrCreateKeyFile
// use it; a deployment keeps its keys in a file.
func GenerateKeyFile() (*KeyFile, error) {
	now := time.Now().UTC().Truncate(time.Microsecond)
	return &KeyFile{active: newKEK(now), blindKey: randomKey(), createdAt: now}, nil
}

// Rotate returns a copy of kf with a new random KEK as the active one and every
// earlier KEK retired, so DEKs wrapped before still unwrap. Write the result with
// WriteKeyFile before building a Keyring from it: a DEK wrapped under a KEK that
// never reached the file is lost. The blind-index key is kept, since changing it
// would orphan every stored index.
func (kf *KeyFile) Rotate() (*KeyFile, error) {
	k := newKEK(time.Now().UTC().Truncate(time.Microsecond))
	for _, old := range kf.keks() {
		if old.id == k.id {
			return nil, steward.WrapError(steward.EINTERNAL, "", errors.New("keyring: new kek id collides with an existing one"))
		}
	}
	retired := append([]kek{kf.active}, kf.retired...)
	return &KeyFile{active: k, retired: retired, blindKey: kf.blindKey, createdAt: kf.createdAt}, nil
}

// ActiveKEKID returns the id of the KEK that wraps new DEKs, such as "kek-3q7…".
func (kf *KeyFile) ActiveKEKID() string { return kf.active.id }

// KEKIDs returns the ids of all KEKs in the file, the active one first.
func (kf *KeyFile) KEKIDs() []string {
	ids := make([]string, 0, 1+len(kf.retired))
	for _, k := range kf.keks() {
		ids = append(ids, k.id)
	}
	return ids
}

// CreatedAt returns when the key file was first created, in UTC.
func (kf *KeyFile) CreatedAt() time.Time { return kf.createdAt }

// String describes kf by KEK ids only; key bytes are never printed.
func (kf *KeyFile) String() string {
	if kf == nil {
		return "keyring.KeyFile(nil)"
	}
	return fmt.Sprintf("keyring.KeyFile{active_kek: %s, keks: %d, keys: REDACTED}", kf.active.id, 1+len(kf.retired))
}

// GoString is String, so that %#v does not print the key bytes either.
func (kf *KeyFile) GoString() string { return kf.String() }

// LogValue implements slog.LogValuer with KEK ids only.
func (kf *KeyFile) LogValue() slog.Value {
	if kf == nil {
		return slog.StringValue("<nil>")
	}
	return slog.GroupValue(
		slog.String("active_kek", kf.active.id),
		slog.Int("keks", 1+len(kf.retired)),
		slog.String("keys", "REDACTED"),
	)
}

func (kf *KeyFile) keks() []kek {
	return append([]kek{kf.active}, kf.retired...)
}

// LoadKeyFile reads the key file at path, for production where a missing key file
// must stop the service rather than start it with new keys. It returns ENOTFOUND
// if there is no file, EINVALID if the file can be read by group or others (the
// message says to chmod 600) or is malformed, and EINTERNAL for other I/O faults.
func LoadKeyFile(path string) (*KeyFile, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, steward.WrapError(steward.ENOTFOUND, fmt.Sprintf("Key file %s does not exist.", path), err)
	} else if err != nil {
		return nil, steward.WrapError(steward.EINTERNAL, fmt.Sprintf("Key file %s cannot be opened.", path), err)
	}
	defer f.Close()

	// Stat the open file, not the path, so the mode checked is the mode of what is read.
	fi, err := f.Stat()
	if err != nil {
		return nil, steward.WrapError(steward.EINTERNAL, fmt.Sprintf("Key file %s cannot be read.", path), err)
	}
	if !fi.Mode().IsRegular() {
		return nil, steward.Errorf(steward.EINVALID, "Key file %s is not a regular file.", path)
	}
	// Windows reports no Unix permission bits worth checking; ACLs guard the file there.
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, steward.Errorf(steward.EINVALID,
			"Key file %s has mode %04o and is open to other users; run: chmod 600 %s", path, perm, path)
	}
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(f); err != nil {
		return nil, steward.WrapError(steward.EINTERNAL, fmt.Sprintf("Key file %s cannot be read.", path), err)
	}
	kf, err := parseKeyFile(buf.Bytes())
	clear(buf.Bytes())
	if err != nil {
		return nil, steward.WrapError(steward.EINVALID, fmt.Sprintf("Key file %s is malformed.", path), err)
	}
	return kf, nil
}

// LoadOrCreateKeyFile reads the key file at path or, if there is none, creates
// one with fresh random keys (mode 0600, directory 0700 if missing) and reports
// created = true. It never replaces an existing file: if another process creates
// the file first, that file is loaded. Errors are those of LoadKeyFile, and
// EINTERNAL if the file cannot be written.
func LoadOrCreateKeyFile(path string) (kf *KeyFile, created bool, err error) {
	kf, err = LoadKeyFile(path)
	if steward.ErrorCode(err) != steward.ENOTFOUND {
		return kf, false, err
	}
	if kf, err = GenerateKeyFile(); err != nil {
		return nil, false, err
	}
	if err := writeKeyFile(path, kf, false); errors.Is(err, fs.ErrExist) {
		kf, err = LoadKeyFile(path)
		return kf, false, err
	} else if err != nil {
		return nil, false, err
	}
	return kf, true, nil
}

// WriteKeyFile writes kf to path with mode 0600, replacing any file there
// atomically (temporary file, fsync, rename, fsync of the directory). It is for
// `keys rotate`; the directory is created with mode 0700 if missing. Errors are
// EINTERNAL.
func WriteKeyFile(path string, kf *KeyFile) error {
	return writeKeyFile(path, kf, true)
}

// writeKeyFile publishes kf at path through a temporary file. Without replace it
// never clobbers an existing file and returns an error matching fs.ErrExist, so
// two processes creating keys at once cannot leave one of them holding keys that
// were overwritten.
func writeKeyFile(path string, kf *KeyFile, replace bool) (err error) {
	data, err := json.MarshalIndent(kf.toJSON(), "", "  ")
	if err != nil {
		return steward.WrapError(steward.EINTERNAL, "", fmt.Errorf("keyring: encode key file: %w", err))
	}
	defer clear(data)
	data = append(data, '\n')

	fail := func(err error) error {
		return steward.WrapError(steward.EINTERNAL, fmt.Sprintf("Key file %s cannot be written.", path), err)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fail(err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fail(err)
	}
	tmpName := tmp.Name()
	defer os.Remove(tmpName) // after a rename or link this is a no-op or drops the extra name
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fail(err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		return fail(err)
	}

	if replace {
		if err := os.Rename(tmpName, path); err != nil {
			return fail(err)
		}
	} else if err := os.Link(tmpName, path); errors.Is(err, fs.ErrExist) {
		return err
	} else if err != nil {
		// The file system has no hard links: fall back to an exclusive create,
		// which still never clobbers but is not atomic against a crash mid-write
		// (a torn file is then refused as malformed, never silently replaced).
		if err := writeExclusive(path, data); err != nil {
			if errors.Is(err, fs.ErrExist) {
				return err
			}
			return fail(err)
		}
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync() // best effort: not every platform can fsync a directory
		d.Close()
	}
	return nil
}

func writeExclusive(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (kf *KeyFile) toJSON() keyFileJSON {
	j := keyFileJSON{
		Version:       keyFileVersion,
		KEK:           kekJSON{ID: kf.active.id, Key: kf.active.key, CreatedAt: kf.active.createdAt},
		BlindIndexKey: kf.blindKey,
		CreatedAt:     kf.createdAt,
	}
	for _, k := range kf.retired {
		j.RetiredKEKs = append(j.RetiredKEKs, kekJSON{ID: k.id, Key: k.key, CreatedAt: k.createdAt})
	}
	return j
}

// parseKeyFile decodes and checks a key file. Its errors name JSON fields and KEK
// ids, never key bytes.
func parseKeyFile(data []byte) (*KeyFile, error) {
	var j keyFileJSON
	if err := json.Unmarshal(data, &j); err != nil {
		// A json.SyntaxError quotes no input, but an UnmarshalTypeError may name a
		// value's type only; neither carries key bytes.
		return nil, fmt.Errorf("keyring: decode key file: %w", err)
	}
	if j.Version != keyFileVersion {
		return nil, fmt.Errorf("keyring: key file version %d, want %d", j.Version, keyFileVersion)
	}
	if len(j.BlindIndexKey) != KeySize {
		return nil, fmt.Errorf("keyring: blind_index_key has %d bytes, want %d", len(j.BlindIndexKey), KeySize)
	}
	kf := &KeyFile{blindKey: j.BlindIndexKey, createdAt: j.CreatedAt.UTC()}
	seen := map[string]bool{}
	for i, kj := range append([]kekJSON{j.KEK}, j.RetiredKEKs...) {
		if kj.ID == "" || strings.ContainsAny(kj.ID, "|\x00") {
			return nil, fmt.Errorf("keyring: kek %d has an empty or invalid id", i)
		}
		if seen[kj.ID] {
			return nil, fmt.Errorf("keyring: kek id %s appears twice", kj.ID)
		}
		seen[kj.ID] = true
		if len(kj.Key) != KeySize {
			return nil, fmt.Errorf("keyring: kek %s has %d bytes, want %d", kj.ID, len(kj.Key), KeySize)
		}
		if bytes.Equal(kj.Key, j.BlindIndexKey) {
			return nil, fmt.Errorf("keyring: kek %s equals the blind-index key; they must be independent", kj.ID)
		}
		k := kek{id: kj.ID, key: kj.Key, createdAt: kj.CreatedAt.UTC()}
		if i == 0 {
			kf.active = k
		} else {
			kf.retired = append(kf.retired, k)
		}
	}
	return kf, nil
}

func newKEK(now time.Time) kek {
	return kek{id: "kek-" + randomID(10), key: randomKey(), createdAt: now}
}

// randomKey returns KeySize bytes from crypto/rand, which never fails (Go ≥ 1.24).
func randomKey() []byte {
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

var idEncoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// randomID returns n random bytes in lowercase Crockford base32.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return idEncoding.EncodeToString(b)
}
