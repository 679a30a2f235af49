package contacts

import (
	"strings"
	"testing"

	"github.com/stewardhq/steward"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		raw, region, want string
	}{
		// The cases of the issue, region CN.
		{"+86 138 0013 8000", "CN", "+8613800138000"},
		{"0086-138-0013-8000", "CN", "+8613800138000"},
		{"(+86)13800138000", "CN", "+8613800138000"},
		{"138\u00a00013\u00a08000", "CN", "+8613800138000"},
		{"１３８００１３８０００", "CN", "+8613800138000"},
		{"13800138000", "CN", "+8613800138000"},
		{"191 4700 5800", "CN", "+8619147005800"},
		{"0086-139-0013-9000", "CN", "+8613900139000"},
		// The international dialling prefix is the default region's: 011 from the US.
		{"011 86 138 0013 8000", "US", "+8613800138000"},
		// Region codes are case-insensitive.
		{"13800138000", "cn", "+8613800138000"},
		// Full-width plus and parentheses, iOS direction marks, other Unicode spaces.
		{"（＋８６）１３８　００１３　８０００", "CN", "+8613800138000"},
		{"\u202d+86 138 0013 8000\u202c", "CN", "+8613800138000"},
		{"138\u20090013\u20098000", "CN", "+8613800138000"},
		{"138–0013–8000", "CN", "+8613800138000"},
		// Arabic-Indic digits.
		{"+٨٦ ١٣٨ ٠٠١٣ ٨٠٠٠", "CN", "+8613800138000"},
		// Landlines with area codes, the 400 service numbers.
		{"010-62671188", "CN", "+861062671188"},
		{"0755-83765566", "CN", "+8675583765566"},
		{"4008308003", "CN", "+864008308003"},
		// tel: URIs and extensions: the extension is stripped.
		{"tel:+44-555-555-5555;ext=5555", "CN", "+445555555555"},
		{"TEL:+86-138-0013-8000", "US", "+8613800138000"},
		{"+1 202 555 0123;ext=5555", "US", "+12025550123"},
		{"+1 202 555 0123 x123", "US", "+12025550123"},
		{"+1 202 555 0123x123", "US", "+12025550123"},
		{"(202) 555-0123 ext. 5", "US", "+12025550123"},
		{"+49 (0611) 123456 - 11", "DE", "+49611123456"},
		// " - " between groups is a separator when the part before it is no number.
		{"138 - 0013 - 8000", "CN", "+8613800138000"},
		// A national trunk 0 in parentheses after the country code is dropped.
		{"+49 (0611) 123456", "DE", "+49611123456"},
		// E.164 input is a fixed point.
		{"+8613800138000", "US", "+8613800138000"},
	}
	for _, tt := range tests {
		t.Run(tt.region+"/"+tt.raw, func(t *testing.T) {
			got, err := Normalize(tt.raw, tt.region)
			if err != nil {
				t.Fatalf("Normalize(%q, %q) error: %v", tt.raw, tt.region, err)
			}
			if got != tt.want {
				t.Errorf("Normalize(%q, %q) = %q, want %q", tt.raw, tt.region, got, tt.want)
			}
		})
	}
}

func TestNormalizeInvalid(t *testing.T) {
	tests := []struct {
		raw, region, why string
	}{
		{"0086 138 0013 8000", "US", "00 is not the international prefix in the US"},
		{"95508", "CN", "short code"},
		{"10086", "CN", "short code"},
		{"hello", "CN", "word"},
		{"mobile", "US", "word"},
		{"1-800-MYFAX", "US", "vanity letters are not converted"},
		{"+1-800-MYFAX", "CN", "vanity letters are not converted"},
		{"1-800-FLOWERS", "US", "vanity letters are not converted"},
		{"138****8000", "CN", "masked"},
		{"138xxxx8000", "CN", "masked"},
		{"p1234p5678w9", "CN", "pause and wait"},
		{"13800138000p123", "CN", "pause"},
		{"13800138000w123", "CN", "wait"},
		{"13800138000,123", "CN", "pause as comma"},
		{"13800138000;123", "CN", "wait as semicolon"},
		{"*21*13800138000#", "CN", "service code"},
		{"+86 138 0013 80001", "CN", "too long"},
		{"+86 138 0013 800", "CN", "too short"},
		{"123456", "CN", "too short"},
		{"5555551111", "US", "555 is not an area code"},
		{"905-111-1234", "US", "a NANP exchange does not start with 1"},
		{"+49 1234 56788", "CN", "no German number starts 12"},
		{"86+13800138000", "CN", "misplaced plus"},
		{"", "CN", "empty"},
		{"   ", "CN", "blank"},
		{"tel:", "CN", "empty URI"},
		{"13800138000", "", "no region"},
		{"13800138000", "XX", "unknown region"},
		{"13800138000", "CHN", "alpha-3 region"},
		{strings.Repeat("1", 200), "CN", "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.why+"/"+tt.raw, func(t *testing.T) {
			got, err := Normalize(tt.raw, tt.region)
			if err == nil {
				t.Fatalf("Normalize(%q, %q) = %q, want error (%s)", tt.raw, tt.region, got, tt.why)
			}
			if code := steward.ErrorCode(err); code != steward.EINVALID {
				t.Errorf("code = %s, want %s", code, steward.EINVALID)
			}
			// Never echo personal information: no digit of the input in the error.
			if msg := err.Error(); strings.ContainsAny(msg, "0123456789") {
				t.Errorf("error %q contains digits", msg)
			}
		})
	}
}

func TestValidRegion(t *testing.T) {
	for region, want := range map[string]bool{
		"CN": true, "US": true, "DE": true, "cn": true, "JP": true,
		"": false, "XX": false, "ZZ": false, "001": false, "CHN": false, "C": false,
	} {
		if got := ValidRegion(region); got != want {
			t.Errorf("ValidRegion(%q) = %v, want %v", region, got, want)
		}
	}
}

func FuzzNormalize(f *testing.F) {
	for _, s := range []string{"+86 138 0013 8000", "１３８００１３８０００", "tel:+44-555-555-5555;ext=5555",
		"+49 (0611) 123456 - 11", "1-800-MYFAX", "138****8000", "p1234p5678w9", "٨٦"} {
		f.Add(s, "CN")
	}
	f.Fuzz(func(t *testing.T, raw, region string) {
		got, err := Normalize(raw, region)
		if err != nil {
			if strings.ContainsAny(err.Error(), "0123456789") {
				t.Fatalf("error %q holds digits", err)
			}
			return
		}
		if again, err := Normalize(got, region); err != nil || again != got {
			t.Fatalf("Normalize(%q) = %q, %v; not a fixed point", got, again, err)
		}
	})
}
