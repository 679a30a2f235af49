package main

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward/keyring"
	"github.com/stewardhq/steward/stewardtest"
	_ "modernc.org/sqlite"
)

// buildSteward builds the real binary once per test binary run.
func buildSteward(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "steward")
	cmd := exec.Command("go", "build", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestWalkthrough runs examples/walkthrough.sh, which starts the real steward serve
// on 127.0.0.1:0 with a temporary data directory and drives it with curl.
func TestWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s is not installed", tool)
			}
			t.Skipf("%s is not installed", tool)
		}
	}
	bin := buildSteward(t)
	cmd := exec.Command("bash", "../../examples/walkthrough.sh")
	cmd.Env = append(os.Environ(), "STEWARD_BIN="+bin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walkthrough: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "walkthrough: ") || !strings.Contains(last, " steps passed") {
		t.Fatalf("last line %q", last)
	}
	var passed, total int
	if _, err := fmt.Sscanf(last, "walkthrough: %d of %d steps passed", &passed, &total); err != nil || passed != total || total < 10 {
		t.Fatalf("last line %q: %d of %d", last, passed, total)
	}
	t.Log(last)
}

// TestAuditVerifyCommand checks `steward audit verify` exits 0 on an intact chain
// and 1 naming the first bad entry after one audit row is altered.
func TestAuditVerifyCommand(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	// Admin commands never create a key file; make one the way serve does.
	cfg := defaultConfig()
	cfg.Data = dir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, newLogger(&stderr, "error"), true)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	for _, app := range []string{"app", "risk-engine"} {
		if code := run(ctx, []string{"token", "create", "--app", app, "--data", dir}, &stdout, &stderr); code != 0 {
			t.Fatalf("token create: %d %s", code, stderr.String())
		}
	}
	stdout.Reset()
	if code := run(ctx, []string{"audit", "verify", "--data", dir}, &stdout, &stderr); code != 0 || !strings.Contains(stdout.String(), "2 entries verified") {
		t.Fatalf("verify intact: exit %d, %q %q", code, stdout.String(), stderr.String())
	}
	db, err := sql.Open("sqlite", filepath.Join(dir, "steward.db"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE audit_log SET detail = 'token=forged' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	stdout.Reset()
	stderr.Reset()
	code := run(ctx, []string{"audit", "verify", "--data", dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "entry 2: hash mismatch") {
		t.Fatalf("verify tampered: exit %d, stderr %q", code, stderr.String())
	}
}

// TestAuditVerifyNeedsNoKeysAndCreatesNothing: verifying works without the key
// file and fails, creating nothing, when the access log's file is gone.
func TestAuditVerifyNeedsNoKeysAndCreatesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	cfg := defaultConfig()
	cfg.Data = dir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	a, err := openApp(ctx, cfg, newLogger(&stderr, "error"), true)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if err := os.Remove(filepath.Join(dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	if code := run(ctx, []string{"audit", "verify", "--data", dir}, &stdout, &stderr); code != 0 {
		t.Fatalf("verify without the key file: exit %d, %s", code, stderr.String())
	}
	for _, name := range []string{"steward-access.db", "steward-access.db-wal", "steward-access.db-shm"} {
		os.Remove(filepath.Join(dir, name))
	}
	stderr.Reset()
	code := run(ctx, []string{"audit", "verify", "--data", dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "steward-access.db is missing") {
		t.Fatalf("verify without the access log: exit %d, %q", code, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "steward-access.db")); !os.IsNotExist(err) {
		t.Fatal("verify created the access log it could not find")
	}
}

// TestKeyStoreMustBeItsOwnDatabase: the same PostgreSQL database written two ways
// for database and keys_database is refused.
func TestKeyStoreMustBeItsOwnDatabase(t *testing.T) {
	data, _ := stewardtest.PostgresDatabases(t)
	other := strings.Replace(data, "127.0.0.1:5432", "127.0.0.1", 1) + "&application_name=x"
	if other == data+"&application_name=x" {
		other = data + "&application_name=x"
	}
	dir := t.TempDir()
	if _, _, err := keyring.LoadOrCreateKeyFile(filepath.Join(dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"migrate", "--data", dir, "--database", data, "--keys-database", other}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "the key store must be a database of its own") {
		t.Fatalf("migrate with one database for both: exit %d, %q", code, stderr.String())
	}
}
