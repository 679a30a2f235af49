package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stewardhq/steward"
	"github.com/stewardhq/steward/keyring"
)

// TestRunRequests files a request through the service, then works it from the
// command line: show, a refusal support may not make, the officer's refusal, list.
func TestRunRequests(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, _, err := keyring.LoadOrCreateKeyFile(filepath.Join(dir, "steward.key")); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	cfg.Data = dir
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := openApp(ctx, cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.svc.SendCode(ctx, "+8613800138000", steward.CodeRegister); err != nil {
		t.Fatal(err)
	}
	if _, err := a.outbox.DeliverDue(ctx); err != nil {
		t.Fatal(err)
	}
	reg, err := a.svc.Register(ctx, steward.Registration{Phone: "+8613800138000", Code: lastSinkCode(t, cfg.DevSink),
		Fields:   steward.FieldValues{"birthday": json.RawMessage(`"1990-05-17"`)},
		Consents: []steward.ConsentChoice{{Purpose: "account", Separate: true}, {Purpose: "risk_control", Separate: true}}})
	if err != nil {
		t.Fatal(err)
	}
	v, err := a.requests.File(steward.WithActor(ctx, steward.Actor{Kind: steward.ActorSubject, ID: reg.SubjectID}), steward.RequestInput{Type: steward.RequestAccess})
	if err != nil {
		t.Fatal(err)
	}
	a.Close()

	cli := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := run(ctx, append(append([]string{"requests"}, args...), "--data", dir), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := cli("show", v.ID); code != 0 || !strings.Contains(out, `"state": "received"`) {
		t.Fatalf("show: %d %s %s", code, out, errs)
	}
	code, _, errs := cli("refuse", v.ID, "--staff", "sam", "--role", "support", "--ground", "serious_harm", "--explanation", "x")
	if code != 1 || !strings.Contains(errs, "EFORBIDDEN: requests.refuse needs one of the roles privacy_officer, admin") {
		t.Fatalf("refuse as support: %d %s", code, errs)
	}
	if code, _, errs := cli("refuse", v.ID, "--ground", "because", "--explanation", "x"); code != 1 || !strings.Contains(errs, "EINVALID") {
		t.Fatalf("refuse on no ground: %d %s", code, errs)
	}
	code, out, errs := cli("refuse", v.ID, "--ground", "serious_harm", "--explanation", "It would expose another customer.")
	var got steward.RequestView
	if code != 0 || json.Unmarshal([]byte(out), &got) != nil || got.State != steward.RequestRefused || got.Refusal.Ground != steward.RefusalSeriousHarm {
		t.Fatalf("refuse: %d %s %s", code, out, errs)
	}
	code, out, errs = cli("list", "--state", "all")
	var q steward.RequestQueue
	if code != 0 || json.Unmarshal([]byte(out), &q) != nil || len(q.Requests) != 1 || q.Requests[0].Events[len(q.Requests[0].Events)-1].Actor != "system:cli:requests refuse" {
		t.Fatalf("list: %d %s %s", code, out, errs)
	}
	if code, _, _ := cli("fulfil"); code != 2 {
		t.Fatalf("fulfil without an id: exit %d, want 2", code)
	}
	// A role that does not exist is a usage error naming the roles, not EFORBIDDEN.
	for _, c := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"show", v.ID, "--staff", "zed", "--role", "wizard"},
			"steward requests show: unknown role \"wizard\"; roles are support, privacy_officer, auditor, admin\n"},
		{[]string{"list", "--staff", "zed", "--role", "auditor, wizard"},
			"steward requests list: unknown role \"wizard\"; roles are support, privacy_officer, auditor, admin\n"},
		{[]string{"list", "--staff", "zed"},
			"steward requests list: --staff needs --role, one or more of support, privacy_officer, auditor, admin\n"},
		{[]string{"list", "--role", "admin"},
			"steward requests list: --role needs --staff NAME\n" + requestsUsage},
	} {
		code, out, errs := cli(c.args...)
		if code != 2 || out != "" || errs != c.wantErr {
			t.Errorf("requests %v: exit %d, stdout %q, stderr %q; want 2 and %q", c.args, code, out, errs, c.wantErr)
		}
	}
	if code, out, errs := cli("show", v.ID, "--staff", "zed", "--role", "auditor"); code != 0 || !strings.Contains(out, `"state": "refused"`) {
		t.Fatalf("show as an auditor: %d %s %s", code, out, errs)
	}
}

// lastSinkCode returns the one-time code in the last message of the development sink.
func lastSinkCode(t *testing.T, path string) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var last string
	for sc := bufio.NewScanner(f); sc.Scan(); {
		last = sc.Text()
	}
	var m struct{ Body string }
	if err := json.Unmarshal([]byte(last), &m); err != nil {
		t.Fatalf("sink line %q: %v", last, err)
	}
	i := strings.Index(m.Body, "code is ")
	if i < 0 {
		t.Fatalf("no code in %q", m.Body)
	}
	return m.Body[i+8 : i+14]
}
