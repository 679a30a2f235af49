// Package contacts reads address books and normalizes phone numbers.
//
// It serves the contact-shielding promise (DESIGN.md P6): a subject's address book is
// read once, every phone number in it is normalized to E.164 so that it can be compared
// with the numbers of other subjects, and nothing else from the file is kept. Neither the
// errors nor the warnings of this package ever contain a phone number, a name or any other
// text taken from the input.
package contacts

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/width"

	"github.com/stewardhq/steward"
)

// maxPhoneBytes bounds the input Normalize looks at. phonenumbers itself stops at 250
// characters; no real number with an extension comes near 64 bytes.
const maxPhoneBytes = 128

var (
	// explicitExt matches an extension written with a marker after the last digit of the
	// number: ";ext=5555", "x123", "ext. 5", "extension 12", ", ext 9".
	explicitExt = regexp.MustCompile(`(?i)^(.*?\d[\s)]*)(?:;\s*ext\s*=|,?\s*(?:extension|extn|ext|x)\.?)\s*\d{1,7}\s*$`)
	// dashExt matches an extension written " - 11" after the number, as Outlook does for a
	// PBX extension ("+49 (0611) 123456 - 11"). The spaces around the dash are required: a
	// dash between digits is an ordinary group separator.
	dashExt = regexp.MustCompile(`^(.*\d[\s)]*?)\s+-\s+\d{1,7}\s*$`)
)

// ValidRegion reports whether region is an ISO 3166-1 alpha-2 code ("CN", "US", "DE";
// letter case is ignored) for which phone-number metadata exists, i.e. a region Normalize
// and Parse accept as the default region.
func ValidRegion(region string) bool {
	region = strings.ToUpper(region)
	return len(region) == 2 && phonenumbers.GetSupportedRegions()[region]
}

// Normalize returns raw as an E.164 phone number ("+8613800138000"). Numbers written
// without a country code are read as dialled in region, an ISO 3166-1 alpha-2 code such as
// "CN" (see ValidRegion); region's international dialling prefix is understood, so
// "0086 138 0013 8000" is valid for region CN and "011 86 138 0013 8000" for region US.
//
// Before parsing, Normalize folds full-width digits and punctuation, treats every Unicode
// space (no-break space included) as a space, drops invisible formatting characters (the
// U+202D/U+202C marks iOS puts around numbers), strips a "tel:" URI scheme and its
// parameters, and strips an extension (";ext=5555", "x123", "ext. 5", " - 11"): address
// books are matched by line, so the extension is not part of the result. A dash with
// spaces around it is only taken as an extension when the number before it is valid on
// its own; DIN 5008 direct-dial suffixes without spaces ("123456-11") cannot be told from
// digit grouping and stay part of the number.
//
// Normalize never guesses. It returns an error with code steward.EINVALID, whose message
// holds none of the input, for an unknown region and for anything that is not a valid
// number by phonenumbers.IsValidNumber: short codes ("95508"), words, vanity numbers with
// letters ("1-800-MYFAX"; letters are never converted to digits), masked numbers
// ("138****8000"), dial strings with pause or wait characters ("p", "w", ",", ";"), and
// service codes with "*" or "#".
func Normalize(raw, region string) (string, error) {
	region = strings.ToUpper(strings.TrimSpace(region))
	if !ValidRegion(region) {
		return "", steward.Errorf(steward.EINVALID, "region must be a two-letter country code such as CN or US")
	}
	if len(raw) > maxPhoneBytes {
		return "", steward.Errorf(steward.EINVALID, "phone number is too long")
	}
	s := strings.TrimSpace(foldPhone(raw))
	if len(s) >= 4 && strings.EqualFold(s[:4], "tel:") {
		s = s[4:]
		// RFC 3966 parameters (ext, isub, phone-context) follow the number after ";".
		if i := strings.IndexByte(s, ';'); i >= 0 {
			s = s[:i]
		}
		s = strings.TrimSpace(s)
	}
	if s == "" {
		return "", steward.Errorf(steward.EINVALID, "phone number is empty")
	}
	if m := explicitExt.FindStringSubmatch(s); m != nil {
		s = m[1]
	} else if m := dashExt.FindStringSubmatch(s); m != nil {
		if e164, err := parseE164(m[1], region); err == nil {
			return e164, nil
		}
	}
	return parseE164(s, region)
}

// parseE164 checks that s holds only characters of a written phone number and returns it
// in E.164 if phonenumbers finds it valid for region.
func parseE164(s, region string) (string, error) {
	seenPlus, seenDigit := false, false
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			seenDigit = true
		case r == ' ', r == '-', r == '.', r == '/', r == '(', r == ')':
		case r == '+':
			// "+" is the international prefix: once, before any digit.
			if seenPlus || seenDigit {
				return "", steward.Errorf(steward.EINVALID, "phone number has a misplaced +")
			}
			seenPlus = true
		case unicode.IsLetter(r):
			return "", steward.Errorf(steward.EINVALID, "phone number contains letters")
		default:
			return "", steward.Errorf(steward.EINVALID, "phone number contains characters that are not part of a number")
		}
	}
	if !seenDigit {
		return "", steward.Errorf(steward.EINVALID, "phone number has no digits")
	}
	num, err := phonenumbers.Parse(s, region)
	if err != nil || !phonenumbers.IsValidNumber(num) {
		// err is not kept: phonenumbers' messages are generic, but nothing from the
		// number must reach a log through the cause either.
		return "", steward.Errorf(steward.EINVALID, "phone number is not valid")
	}
	return phonenumbers.Format(num, phonenumbers.E164), nil
}

// foldPhone maps full-width characters to ASCII, every decimal digit to an ASCII digit,
// Unicode spaces to " " and dashes to "-", and drops invisible format characters.
func foldPhone(raw string) string {
	s := width.Fold.String(raw)
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r < 0x80:
			if r == '\t' || r == '\r' || r == '\n' {
				r = ' '
			}
			b.WriteRune(r)
		case unicode.Is(unicode.Nd, r):
			b.WriteByte('0' + digitValue(r))
		case unicode.IsSpace(r), unicode.Is(unicode.Zs, r):
			b.WriteByte(' ')
		case unicode.Is(unicode.Pd, r), r == '\u2212':
			b.WriteByte('-')
		case unicode.Is(unicode.Cf, r):
			// LRM, RLM, LRO/PDF, zero-width space, BOM: invisible, not part of the number.
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// digitValue returns the value of decimal digit r. Unicode allocates every decimal digit
// set as a run of consecutive code points starting at zero, some runs back to back (the
// mathematical digits), so the value is the distance from the start of the run modulo 10.
func digitValue(r rune) byte {
	n := 0
	for n < 64 && unicode.Is(unicode.Nd, r-rune(n)-1) {
		n++
	}
	return byte(n % 10)
}
