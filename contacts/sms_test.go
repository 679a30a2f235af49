package contacts

import "testing"

func TestCanReceiveSMS(t *testing.T) {
	for _, c := range []struct {
		e164 string
		want bool
	}{
		{"+8613800138000", true}, // China Mobile
		{"+8619147005800", true}, // China Telecom 191
		{"+12015550123", true},   // NANP: fixed line or mobile
		{"+861062345678", false}, // Beijing landline
		{"+864008308003", false}, // 400 service number
		{"+49611123456", false},  // Wiesbaden landline
		{"not a number", false},
	} {
		if got := CanReceiveSMS(c.e164); got != c.want {
			t.Errorf("CanReceiveSMS(%q) = %v, want %v", c.e164, got, c.want)
		}
	}
}
