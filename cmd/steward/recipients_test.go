package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	stewardhttp "github.com/stewardhq/steward/http"
	"github.com/stewardhq/steward/keyring"
)

// TestRecipientsNoticesShape checks `steward recipients notices` prints the object
// GET /v1/recipients/notices answers, {"notices":[…]}, not a bare array.
func TestRecipientsNoticesShape(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := keyring.LoadOrCreateKeyFile(filepath.Join(dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"notices"}, {"notices", "--state", "pending", "--overdue"}} {
		var out, errb bytes.Buffer
		code := run(context.Background(), append(append([]string{"recipients"}, args...), "--data", dir), &out, &errb)
		if code != 0 || out.String() != "{\n  \"notices\": []\n}\n" {
			t.Fatalf("recipients %v: exit %d, stdout %q, stderr %q; want {\"notices\": []}", args, code, out.String(), errb.String())
		}
		var list stewardhttp.NoticeList
		if err := json.Unmarshal(out.Bytes(), &list); err != nil || list.Notices == nil {
			t.Errorf("recipients %v: %q does not decode as the API's NoticeList: %v", args, out.String(), err)
		}
	}
}

// TestRecipientsListShape checks `steward recipients list` prints the object
// GET /v1/recipients answers, with the recipient added by `recipients add`.
func TestRecipientsListShape(t *testing.T) {
	dir := t.TempDir()
	if _, _, err := keyring.LoadOrCreateKeyFile(filepath.Join(dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"recipients", "list", "--data", dir}, &out, &errb); code != 0 || out.String() != "{\n  \"recipients\": []\n}\n" {
		t.Fatalf("recipients list: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
