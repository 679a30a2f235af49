package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const contactsTestdata = "../../../shared/testdata/addressbooks"

func TestRunContactsInspect(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want map[string]any
	}{
		{
			name: "CN landlines, default region",
			args: []string{"inspect", filepath.Join(contactsTestdata, "cn-tencent-3.0-landlines-photo.vcf")},
			want: map[string]any{
				"format": "vcard", "cards": 1.0, "numbers_found": 6.0, "valid": 6.0, "invalid": 0.0, "incomplete": 0.0,
				"numbers":  []any{"+861062671188", "+862081167888", "+862154569595", "+862885225111", "+8675583765566", "+8675586013388"},
				"warnings": []any{},
			},
		},
		{
			name: "iOS, --region after FILE",
			args: []string{"inspect", filepath.Join(contactsTestdata, "ios5-3.0-crcrlf-grouped-photo.vcf"), "--region", "US"},
			want: map[string]any{
				"format": "vcard", "cards": 1.0, "numbers_found": 7.0, "valid": 6.0, "invalid": 1.0, "incomplete": 0.0,
				"numbers":  []any{"+19052221234", "+19055551234", "+19056661234", "+19057771234", "+19058881234", "+19059991234"},
				"warnings": []any{"card 1: TEL value is not a valid phone number"},
			},
		},
		{
			name: "truncated, --region before FILE",
			args: []string{"inspect", "-region=cn", filepath.Join(contactsTestdata, "broken-2.1-truncated-no-end.vcf")},
			want: map[string]any{
				"format": "vcard", "cards": 0.0, "numbers_found": 0.0, "valid": 0.0, "invalid": 0.0, "incomplete": 1.0,
				"numbers":  []any{},
				"warnings": []any{"card 1: cut off before END:VCARD; its 0 phone numbers were ignored"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := runContacts(context.Background(), tt.args, &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d, stderr %s", code, stderr.String())
			}
			if stderr.Len() != 0 {
				t.Errorf("stderr: %s", stderr.String())
			}
			var got map[string]any
			if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
				t.Fatalf("stdout is not JSON: %v\n%s", err, stdout.String())
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("report (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(stdout.String(), "{\n  \"format\": ") {
				t.Errorf("output is not indented: %.40q", stdout.String())
			}
		})
	}
}

func TestRunContactsErrors(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string // exact, for exit 1; a prefix for exit 2
	}{
		{"not an address book", []string{"inspect", filepath.Join(contactsTestdata, "SOURCES.md")}, 1,
			`{"error":{"code":"EINVALID","message":"not a vCard or CSV address book"}}` + "\n"},
		{"missing file", []string{"inspect", filepath.Join(contactsTestdata, "no-such-file.vcf")}, 1,
			`{"error":{"code":"ENOTFOUND","message":"cannot open the address book file"}}` + "\n"},
		{"no subcommand", nil, 2, "usage: steward contacts inspect FILE"},
		{"unknown subcommand", []string{"import", "x.vcf"}, 2, `steward contacts: unknown subcommand "import"`},
		{"no file", []string{"inspect", "--region", "CN"}, 2, "steward contacts inspect: want exactly one FILE, got 0"},
		{"two files", []string{"inspect", "a.vcf", "b.vcf"}, 2, "steward contacts inspect: want exactly one FILE, got 2"},
		{"bad region", []string{"inspect", "a.vcf", "--region", "China"}, 2, "steward contacts inspect: --region must be"},
		{"unknown flag", []string{"inspect", "--country", "CN", "a.vcf"}, 2, "steward contacts inspect: flag provided but not defined: -country"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := runContacts(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %s", code, tt.wantCode, stderr.String())
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %s", stdout.String())
			}
			if tt.wantCode == 1 && stderr.String() != tt.wantStderr {
				t.Errorf("stderr %q, want %q", stderr.String(), tt.wantStderr)
			}
			if tt.wantCode == 2 && !strings.HasPrefix(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr %q, want prefix %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}
