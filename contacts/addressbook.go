package contacts

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/stewardhq/steward"
)

// Defaults for Options.
const (
	// DefaultMaxBytes is the largest address book Parse reads when Options.MaxBytes is
	// zero: 5 MiB, about 20 000 cards without photos.
	DefaultMaxBytes = 5 << 20
	// DefaultMaxNumbers is the most TEL values Parse accepts when Options.MaxNumbers is zero.
	DefaultMaxNumbers = 20000
)

// maxWarnings bounds Report.Warnings so a file of 20 000 bad numbers does not produce a
// report of 20 000 lines; the last warning says how many were left out.
const maxWarnings = 100

// Values of Report.Format.
const (
	// FormatVCard is a vCard file (RFC 6350, RFC 2426 or vCard 2.1).
	FormatVCard = "vcard"
	// FormatCSV is a Google or Outlook CSV export.
	FormatCSV = "csv"
)

// Options configures Parse.
type Options struct {
	// Region is the ISO 3166-1 alpha-2 code ("CN", "US") used for numbers written without
	// a country code; see ValidRegion. Required.
	Region string
	// MaxBytes is the largest input accepted, in bytes, after which Parse fails with
	// steward.EINVALID. Zero or less means DefaultMaxBytes.
	MaxBytes int64
	// MaxNumbers is the most TEL values (phone fields, valid or not) accepted, after which
	// Parse fails with steward.EINVALID. Zero or less means DefaultMaxNumbers.
	MaxNumbers int
}

// Report is what Parse found in an address book. Only Numbers holds personal
// information; String and LogValue show counts only.
//
// Counts are of values, not of distinct numbers: every non-empty TEL value (vCard) or
// phone cell (CSV) of a complete card or row counts once in NumbersFound and once in
// either Valid or Invalid, so Valid+Invalid == NumbersFound always. Numbers is the set of
// distinct valid numbers, so len(Numbers) <= Valid.
type Report struct {
	// Format is FormatVCard or FormatCSV. An empty input (a file that is only a byte
	// order mark or white space) is reported as an empty vCard file.
	Format string `json:"format"`
	// Cards is the number of complete vCards (BEGIN:VCARD … END:VCARD), or of non-empty
	// data rows of a CSV file.
	Cards int `json:"cards"`
	// NumbersFound is the number of non-empty phone values in complete cards or rows.
	NumbersFound int `json:"numbers_found"`
	// Valid is the number of those values Normalize accepted.
	Valid int `json:"valid"`
	// Invalid is the number of those values Normalize rejected; they are dropped.
	Invalid int `json:"invalid"`
	// Incomplete is the number of cards that were cut off (no END:VCARD). They are not
	// counted in Cards and their phone values are ignored.
	Incomplete int `json:"incomplete"`
	// Numbers holds the distinct valid numbers in E.164, sorted. Never nil.
	Numbers []string `json:"numbers"`
	// Warnings describe dropped values and damaged cards by card or row number, never by
	// content. At most 100; never nil.
	Warnings []string `json:"warnings"`
}

// String describes the report by its counts, without any number.
func (r Report) String() string {
	return fmt.Sprintf("contacts.Report{format=%s cards=%d numbers_found=%d valid=%d invalid=%d incomplete=%d distinct=%d warnings=%d}",
		r.Format, r.Cards, r.NumbersFound, r.Valid, r.Invalid, r.Incomplete, len(r.Numbers), len(r.Warnings))
}

// GoString is String, so that %#v leaks no number either.
func (r Report) GoString() string { return r.String() }

// LogValue implements slog.LogValuer: counts only, never the numbers.
func (r Report) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("format", r.Format),
		slog.Int("cards", r.Cards),
		slog.Int("numbers_found", r.NumbersFound),
		slog.Int("valid", r.Valid),
		slog.Int("invalid", r.Invalid),
		slog.Int("incomplete", r.Incomplete),
		slog.Int("distinct", len(r.Numbers)),
		slog.Int("warnings", len(r.Warnings)),
	)
}

// Parse reads a whole address book from r and returns the phone numbers in it, each
// normalized with Normalize(value, opt.Region).
//
// The input may be a vCard file (versions 2.1, 3.0 and 4.0, as exported by Android, iOS,
// Google, Outlook, Evolution, KAddressBook and others) or a CSV export (Google's legacy
// "Phone N - Value" columns, Google's newer "Phone N - Label/Value" header, Outlook's
// "Mobile Phone", "Business Phone", … columns). It may be UTF-8 or UTF-16 (LE or BE, with
// or without a byte order mark); other 8-bit charsets are tolerated in fields other than
// TEL. vCard reading is line-based and tolerant: folded lines (unfolded as bytes, so a
// fold may split a UTF-8 sequence), quoted-printable values with soft line breaks,
// CR LF, LF, CR and CR CR LF line ends, grouped properties (itemN.TEL), bare vCard 2.1
// parameters (TEL;CELL;PREF:) and tel: URIs. A card cut off before END:VCARD is counted
// in Report.Incomplete and its values are ignored; the complete cards are kept.
//
// Parse returns an error with code steward.EINVALID, and no report, if opt.Region is not
// valid, if the input is larger than opt.MaxBytes, if it holds more than opt.MaxNumbers
// phone values, or if it is neither a vCard nor a CSV address book (binary data, a CSV
// file without phone columns). A read error from r is returned wrapped.
func Parse(r io.Reader, opt Options) (*Report, error) {
	if !ValidRegion(opt.Region) {
		return nil, steward.Errorf(steward.EINVALID, "region must be a two-letter country code such as CN or US")
	}
	if opt.MaxBytes <= 0 {
		opt.MaxBytes = DefaultMaxBytes
	}
	if opt.MaxNumbers <= 0 {
		opt.MaxNumbers = DefaultMaxNumbers
	}
	raw, err := io.ReadAll(io.LimitReader(r, opt.MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("contacts: read address book: %w", err)
	}
	if int64(len(raw)) > opt.MaxBytes {
		return nil, steward.Errorf(steward.EINVALID, "address book is larger than %d bytes", opt.MaxBytes)
	}
	data := decodeText(raw)

	p := &parser{opt: opt, rep: &Report{Numbers: []string{}, Warnings: []string{}}, seen: map[string]bool{}}
	switch {
	case len(bytes.TrimSpace(data)) == 0:
		p.rep.Format = FormatVCard
		p.warn("address book is empty: no cards found")
		return p.rep, nil
	case bytes.IndexByte(data, 0) >= 0:
		return nil, errNotAddressBook
	case startsWithBeginVCard(data):
		p.rep.Format = FormatVCard
		err = p.parseVCard(data)
	default:
		if cols, ok := csvPhoneColumns(data); ok {
			p.rep.Format = FormatCSV
			err = p.parseCSV(data, cols)
			break
		}
		i := indexBeginVCard(data)
		if i < 0 || !utf8.Valid(data[:i]) {
			return nil, errNotAddressBook
		}
		p.rep.Format = FormatVCard
		p.warn("text before the first BEGIN:VCARD was ignored")
		err = p.parseVCard(data[i:])
	}
	if err != nil {
		return nil, err
	}
	if p.rep.Format == FormatVCard && p.rep.Cards == 0 && p.rep.Incomplete == 0 {
		p.warn("no cards found")
	}
	if p.dropped > 0 {
		p.rep.Warnings = append(p.rep.Warnings, fmt.Sprintf("%d more warnings not shown", p.dropped))
	}
	for n := range p.seen {
		p.rep.Numbers = append(p.rep.Numbers, n)
	}
	slices.Sort(p.rep.Numbers)
	return p.rep, nil
}

var errNotAddressBook = steward.Errorf(steward.EINVALID, "not a vCard or CSV address book")

// parser accumulates a Report.
type parser struct {
	opt     Options
	rep     *Report
	seen    map[string]bool
	values  int // phone values seen so far, in complete cards or not, for MaxNumbers
	dropped int // warnings left out
}

// count registers one more phone value, before it is known whether its card is complete.
func (p *parser) count() error {
	p.values++
	if p.values > p.opt.MaxNumbers {
		return steward.Errorf(steward.EINVALID, "address book has more than %d phone numbers", p.opt.MaxNumbers)
	}
	return nil
}

// add normalizes one phone value of a complete card or row; where names it for warnings
// ("card 3", "row 2").
func (p *parser) add(where, value string) {
	p.rep.NumbersFound++
	e164, err := Normalize(value, p.opt.Region)
	if err != nil {
		p.rep.Invalid++
		p.warn("%s: TEL value is not a valid phone number", where)
		return
	}
	p.rep.Valid++
	p.seen[e164] = true
}

func (p *parser) warn(format string, args ...any) {
	if len(p.rep.Warnings) >= maxWarnings-1 {
		p.dropped++
		return
	}
	p.rep.Warnings = append(p.rep.Warnings, fmt.Sprintf(format, args...))
}

// decodeText strips a UTF-8 byte order mark and converts UTF-16 (with a BOM, or without
// one when every other byte of the start is NUL, as ASCII-range text in UTF-16 is) to
// UTF-8. Any other input is returned as is: vCard structure is ASCII, so 8-bit charsets
// pass through to the line reader.
func decodeText(b []byte) []byte {
	switch {
	case bytes.HasPrefix(b, []byte{0xEF, 0xBB, 0xBF}):
		return b[3:]
	case bytes.HasPrefix(b, []byte{0xFF, 0xFE}):
		return decodeUTF16(b[2:], false)
	case bytes.HasPrefix(b, []byte{0xFE, 0xFF}):
		return decodeUTF16(b[2:], true)
	}
	n := min(len(b), 512) &^ 1
	if n < 4 {
		return b
	}
	var evenNUL, oddNUL int
	for i := 0; i < n; i += 2 {
		if b[i] == 0 {
			evenNUL++
		}
		if b[i+1] == 0 {
			oddNUL++
		}
	}
	pairs := n / 2
	switch {
	case evenNUL*10 >= pairs*7 && oddNUL*10 < pairs:
		return decodeUTF16(b, true)
	case oddNUL*10 >= pairs*7 && evenNUL*10 < pairs:
		return decodeUTF16(b, false)
	}
	return b
}

// decodeUTF16 decodes UTF-16 to UTF-8; a trailing odd byte is dropped and unpaired
// surrogates become U+FFFD.
func decodeUTF16(b []byte, bigEndian bool) []byte {
	u := make([]uint16, len(b)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	runes := utf16.Decode(u)
	if len(runes) > 0 && runes[0] == '\uFEFF' {
		runes = runes[1:]
	}
	out := make([]byte, 0, len(runes))
	for _, r := range runes {
		out = utf8.AppendRune(out, r)
	}
	return out
}
