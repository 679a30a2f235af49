package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stewardhq/steward/declaration"
)

func TestRunDeclaration(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, declaration.DefaultYAML(), 0o600); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	broken := strings.Replace(string(declaration.DefaultYAML()), "legal_time_zone: Asia/Shanghai", "legal_time_zone: Asia/Shanghia", 1)
	broken = strings.Replace(broken, "    kind: date\n", "    kind: day\n", 1)
	if err := os.WriteFile(bad, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	zoneLine := lineOf(t, broken, "legal_time_zone: Asia/Shanghia")
	kindLine := lineOf(t, broken, "    kind: day")

	tests := []struct {
		name       string
		args       []string
		wantStatus int
		wantStdout string
		wantStderr string // prefix of stderr
	}{
		{
			name: "check valid", args: []string{"check", good}, wantStatus: 0,
			wantStdout: good + ": ok (12 fields, 7 purposes)\n",
		},
		{
			name: "check invalid", args: []string{"check", bad}, wantStatus: 1,
			wantStderr: bad + ":" + zoneLine + `: legal_time_zone: unknown time zone "Asia/Shanghia"` + "\n" +
				bad + ":" + kindLine + `: field "birthday": unknown kind "day" (want string, phone, date, enum, bytes, list, location or derived)` + "\n",
		},
		{
			name: "check several", args: []string{"check", good, bad}, wantStatus: 1,
			wantStdout: good + ": ok (12 fields, 7 purposes)\n",
			wantStderr: bad + ":" + zoneLine + ": ",
		},
		{
			name: "check missing file", args: []string{"check", filepath.Join(dir, "none.yaml")}, wantStatus: 1,
			wantStderr: "steward declaration check: open " + filepath.Join(dir, "none.yaml") + ": no such file or directory\n",
		},
		{name: "show", args: []string{"show"}, wantStatus: 0, wantStdout: string(declaration.DefaultYAML())},
		{name: "no subcommand", args: nil, wantStatus: 2, wantStderr: "usage: steward declaration"},
		{name: "check without file", args: []string{"check"}, wantStatus: 2, wantStderr: "steward declaration check: no FILE given\n"},
		{name: "show with argument", args: []string{"show", "x"}, wantStatus: 2, wantStderr: "steward declaration show: takes no arguments\n"},
		{name: "unknown subcommand", args: []string{"lint"}, wantStatus: 2, wantStderr: "steward declaration: unknown subcommand \"lint\"\n"},
		{name: "help", args: []string{"help"}, wantStatus: 0, wantStdout: declarationUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			status := runDeclaration(context.Background(), tt.args, &stdout, &stderr)
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d (stderr: %s)", status, tt.wantStatus, stderr.String())
			}
			if diff := cmp.Diff(tt.wantStdout, stdout.String()); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(stderr.String(), tt.wantStderr) || (tt.wantStderr == "" && stderr.Len() > 0) {
				t.Errorf("stderr = %q, want prefix %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

// lineOf returns the 1-based line number, as text, of the first line of text
// starting with prefix.
func lineOf(t *testing.T, text, prefix string) string {
	t.Helper()
	for i, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return ""
}
