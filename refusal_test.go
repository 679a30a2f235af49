package steward

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRefusalDefaultGrounds(t *testing.T) {
	g := DefaultRefusalGrounds()
	var codes []RefusalGround
	for _, info := range g.All() {
		codes = append(codes, info.Code)
		if info.Title == "" || !strings.Contains(info.Source, "policy §6") {
			t.Errorf("ground %s: title %q source %q; want a title and a policy §6 source", info.Code, info.Title, info.Source)
		}
	}
	// The policy's six restrictions, then its four kinds of unreasonable request.
	want := []RefusalGround{
		"national_security", "public_interest", "criminal_proceedings", "malice_or_abuse",
		"serious_harm", "commercial_secrets",
		"unreasonably_repetitive", "excessive_technical_means", "risk_to_others", "highly_impractical",
	}
	if diff := cmp.Diff(want, codes); diff != "" {
		t.Errorf("default grounds (-want +got):\n%s", diff)
	}
	for i, info := range g.All() {
		wantClass := RefusalClassRestriction
		if i >= 6 {
			wantClass = RefusalClassUnreasonable
		}
		if info.Class != wantClass {
			t.Errorf("%s class %s, want %s", info.Code, info.Class, wantClass)
		}
	}
	if _, ok := g.Lookup(RefusalLegalObligation); ok {
		t.Error("a GB/T-only ground is enabled by default")
	}
}

func TestRefusalConfiguredGrounds(t *testing.T) {
	evidence := RefusalGroundInfo{Code: "evidence_preservation", Title: "PI held as evidence in a pending dispute", Source: "deployment declaration"}
	g, err := NewRefusalGrounds(append(StandardRefusalGrounds(), evidence)...)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := g.Lookup(RefusalLegalObligation)
	if !ok || info.Source != "GB/T 35273-2020 §8.7" {
		t.Errorf("Lookup(legal_obligation) = %+v, %v", info, ok)
	}
	got, ok := g.Lookup("evidence_preservation")
	want := evidence
	want.Class = RefusalClassRestriction
	if diff := cmp.Diff(want, got); !ok || diff != "" {
		t.Errorf("configured ground (-want +got):\n%s", diff)
	}
	if n := len(g.All()); n != 13 {
		t.Errorf("%d grounds, want 10 defaults + 2 standard + 1 configured", n)
	}

	bad := []struct {
		name string
		info RefusalGroundInfo
	}{
		{"duplicate of a default", RefusalGroundInfo{Code: "commercial_secrets", Title: "t", Source: "s"}},
		{"empty code", RefusalGroundInfo{Title: "t", Source: "s"}},
		{"code with spaces", RefusalGroundInfo{Code: "Because We Said So", Title: "t", Source: "s"}},
		{"no title", RefusalGroundInfo{Code: "x", Source: "s"}},
		{"no source", RefusalGroundInfo{Code: "x", Title: "t"}},
		{"unknown class", RefusalGroundInfo{Code: "x", Title: "t", Source: "s", Class: "whim"}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewRefusalGrounds(tt.info); ErrorCode(err) != EINVALID {
				t.Errorf("NewRefusalGrounds = %v, want EINVALID", err)
			}
		})
	}
}

func TestRefusalValidate(t *testing.T) {
	g := DefaultRefusalGrounds()
	ok := Refusal{Ground: RefusalCriminalProceedings, Explanation: "An investigation covers this data.", ComplaintChannel: "privacy@example.com"}
	tests := []struct {
		name   string
		grants RefusalGrounds
		ref    Refusal
		code   string
	}{
		{"valid", g, ok, ""},
		{"no ground (free text only)", g, Refusal{Explanation: "No.", ComplaintChannel: "x"}, EINVALID},
		{"unknown ground", g, Refusal{Ground: "too_busy", Explanation: "No.", ComplaintChannel: "x"}, EINVALID},
		{"GB/T ground not configured", g, Refusal{Ground: RefusalLegalObligation, Explanation: "No.", ComplaintChannel: "x"}, EINVALID},
		{"empty explanation", g, Refusal{Ground: RefusalCommercialSecrets, ComplaintChannel: "x"}, EINVALID},
		{"blank explanation", g, Refusal{Ground: RefusalCommercialSecrets, Explanation: " \n\t", ComplaintChannel: "x"}, EINVALID},
		{"no complaint channel", g, Refusal{Ground: RefusalCommercialSecrets, Explanation: "Trade secret."}, EINVALID},
		{"zero registry refuses all", RefusalGrounds{}, ok, EINVALID},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ErrorCode(tt.grants.Validate(tt.ref)); got != tt.code {
				t.Errorf("Validate code %q, want %q", got, tt.code)
			}
		})
	}
}

func TestRefusalDoesNotLeakExplanation(t *testing.T) {
	ref := Refusal{Ground: RefusalSeriousHarm, Explanation: "Zhang San's records are mixed in", ComplaintChannel: "x"}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("refused", "refusal", ref)
	for _, s := range []string{b.String(), fmt.Sprint(ref), ref.String()} {
		if strings.Contains(s, "Zhang") {
			t.Errorf("explanation leaked: %s", s)
		}
	}
}
