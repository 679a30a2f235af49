package contacts

import "testing"

func TestRegionOf(t *testing.T) {
	tests := []struct{ e164, want string }{
		{"+8613800138000", "CN"},
		{"+8619147005800", "CN"},
		{"+12015550123", "US"},
		{"+16135550123", "CA"}, // Ottawa: +1 shared with the US, region from the area code
		{"+4915123456789", "DE"},
		{"+85291234567", "HK"},
		{"+80012345678", ""},  // international freephone: no region
		{"8613800138000", ""}, // not E.164
		{"", ""},
		{"+", ""},
		{"+86abc", ""},
	}
	for _, tt := range tests {
		if got := RegionOf(tt.e164); got != tt.want {
			t.Errorf("RegionOf(%q) = %q, want %q", tt.e164, got, tt.want)
		}
	}
}
