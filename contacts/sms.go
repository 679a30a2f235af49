package contacts

import "github.com/nyaruka/phonenumbers"

// CanReceiveSMS reports whether the E.164 number e164 may receive an SMS: a
// mobile number, or one whose plan does not tell mobile from fixed line (as in
// North America). Fixed lines, toll-free, premium-rate, shared-cost, VoIP and
// voicemail numbers cannot; one-time codes are not sent to them. It returns false
// for a string that is not a number.
func CanReceiveSMS(e164 string) bool {
	p, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return false
	}
	switch phonenumbers.GetNumberType(p) {
	case phonenumbers.MOBILE, phonenumbers.FIXED_LINE_OR_MOBILE, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UNKNOWN:
		return true
	}
	return false
}
