package stewardtest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
	stsql "github.com/stewardhq/steward/sql"
)

// CopyDataStore takes a copy of the data store as a backup would: the SQLite
// database and WAL files, or a pg_dump restored into a new database. It returns
// the copy's DSN. The key store is not copied: it is backed up apart.
func (e *Env) CopyDataStore(t testing.TB) string {
	t.Helper()
	if e.Engine == stsql.SQLite {
		dir := t.TempDir()
		for _, name := range []string{"steward.db", "steward.db-wal", "steward.db-shm"} {
			b, err := os.ReadFile(filepath.Join(e.Dir, name))
			if os.IsNotExist(err) {
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return filepath.Join(dir, "steward.db")
	}
	dump, err := exec.Command("pg_dump", "--no-owner", e.DataDSN).Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	backup, _ := PostgresDatabases(t)
	cmd := exec.Command("psql", "-q", "-v", "ON_ERROR_STOP=1", backup)
	cmd.Stdin = bytes.NewReader(dump)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	return backup
}

// OpenCopy reads every sealed field of subject id from the copy at dsn and tries
// to open each with the key store and key file as they are now. It returns how
// many fields the copy holds and the values that could be opened. A subject whose
// data key was destroyed opens none.
func (e *Env) OpenCopy(t testing.TB, dsn, id string) (int, steward.FieldValues) {
	t.Helper()
	ctx := context.Background()
	st, err := stsql.OpenStore(ctx, dsn, stsql.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var sealed []steward.SealedField
	if err := st.Read(ctx, func(tx steward.Tx) (err error) { sealed, err = tx.GetFields(ctx, id, nil); return err }); err != nil {
		t.Fatal(err)
	}
	kr := keyring.New(e.KeyFile, e.KeyStore) // no cache: the key store as it is now
	opened := steward.FieldValues{}
	key, err := kr.SubjectKey(ctx, id)
	if err != nil {
		if steward.ErrorCode(err) != steward.EGONE {
			t.Fatalf("subject key: %v, want EGONE", err)
		}
		return len(sealed), opened
	}
	for _, f := range sealed {
		if v, err := key.Open(f.Field, f.Value); err == nil {
			opened[f.Field] = v
		}
	}
	return len(sealed), opened
}
