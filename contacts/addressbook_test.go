package contacts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/emersion/go-vcard"
	"github.com/google/go-cmp/cmp"

	"github.com/stewardhq/steward"
)

// testdata is the shared address-book corpus; SOURCES.md there describes every file.
const testdata = "../../shared/testdata/addressbooks"

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdata, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// corpusFiles lists every address book in testdata (not SOURCES.md, not .gitattributes).
func corpusFiles(t testing.TB) []string {
	t.Helper()
	var names []string
	for _, pattern := range []string{"*.vcf", "*.csv"} {
		m, err := filepath.Glob(filepath.Join(testdata, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range m {
			names = append(names, filepath.Base(p))
		}
	}
	return names
}

// TestParseCorpus pins the counts for every file in the corpus. The expected values were
// read off the bytes (cat -A, xxd), not copied from Parse's output; the comment on each
// row says where they come from. Region is what a user of that address book would have:
// CN by default; US for the North-American exports (iOS, Outlook, Gmail), whose numbers
// have no country code; DE for the German Outlook file (its numbers carry +49, so the
// region does not change the result). Some files appear twice to show what the region
// does to numbers without a country code.
func TestParseCorpus(t *testing.T) {
	tests := []struct {
		file, region string
		want         Report // Numbers is checked only if non-nil; Warnings not at all here
	}{
		// TEL;X-NEC-*: values 9 … 20 in three cards: never a phone number.
		{"android-2.1-nec-types-3cards.vcf", "CN", Report{Format: "vcard", Cards: 3, NumbersFound: 12, Invalid: 12}},
		// 6 cards, cards 1-2 without TEL; 123456789, 123456, 234567, 3456789, 45678901,
		// 123456 ×3, 55556666: all too short for China (and for anywhere with no country code).
		{"android-2.1-qp-utf8-photo-6cards.vcf", "CN", Report{Format: "vcard", Cards: 6, NumbersFound: 9, Invalid: 9, Numbers: []string{}}},
		// TEL 0300000000: not a Chinese number, and not a valid Tokyo number (03 0000 0000) either.
		{"android-2.1-shiftjis-8bit.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 1, Invalid: 1}},
		{"android-2.1-shiftjis-8bit.vcf", "JP", Report{Format: "vcard", Cards: 1, NumbersFound: 1, Invalid: 1}},
		// TEL:p1234p5678w9: a dial string with pause and wait, rejected.
		{"android-3.0-pause-wait-dialstring.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 1, Invalid: 1, Numbers: []string{}}},
		// UTF-16BE without BOM, one card, no TEL.
		{"apple-3.0-utf16be-nobom.vcf", "CN", Report{Format: "vcard", Cards: 1}},
		// BEGIN:VCARD, no END:VCARD, no TEL.
		{"broken-2.1-truncated-no-end.vcf", "CN", Report{Format: "vcard", Incomplete: 1}},
		// EF BB BF and nothing else.
		{"broken-bom-only-empty.vcf", "CN", Report{Format: "vcard"}},
		// 95508 is a short code; 020-95508 is valid to phonenumbers (CN fixed-line metadata
		// includes 95xxx behind an area code); 4008308003 is a 400 number.
		{"cn-cgb-bank-3.0-shortcode-400.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 3, Valid: 2, Invalid: 1,
			Numbers: []string{"+862095508", "+864008308003"}}},
		// Six landlines with area codes.
		{"cn-tencent-3.0-landlines-photo.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 6, Valid: 6, Numbers: []string{
			"+861062671188", "+862081167888", "+862154569595", "+862885225111", "+8675583765566", "+8675586013388"}}},
		// The same numbers read as dialled in the US: none is valid.
		{"cn-tencent-3.0-landlines-photo.vcf", "US", Report{Format: "vcard", Cards: 1, NumbersFound: 6, Invalid: 6, Numbers: []string{}}},
		// +49 1234 56788 (no German number starts 12) and +1-800-MYFAX (letters).
		{"davx5-3.0-allfields-vanity-tel.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 2, Invalid: 2, Numbers: []string{}}},
		// 16 cards; 4 TEL values that are words ("business 1" …).
		{"evolution-2.1-16cards-stress.vcf", "CN", Report{Format: "vcard", Cards: 16, NumbersFound: 4, Invalid: 4}},
		// 11 values 5555551111 … 5555551121: area code 555 does not exist in the US.
		{"gmail-3.0-grouped-custom-labels.vcf", "US", Report{Format: "vcard", Cards: 1, NumbersFound: 11, Invalid: 11, Numbers: []string{}}},
		// Read as Chinese numbers the same digits are valid Ma'anshan (0555) landlines:
		// why the region must be the user's, not a fixed default.
		{"gmail-3.0-grouped-custom-labels.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 11, Valid: 11}},
		// One row, 7 phone cells holding placeholders (pager, mainphone, …).
		{"google-contacts-legacy-export.csv", "CN", Report{Format: "csv", Cards: 1, NumbersFound: 7, Invalid: 7, Numbers: []string{}}},
		// 7 values 905-NNN-1234; 905-111-1234 is invalid (a NANP exchange never starts with 1).
		{"ios5-3.0-crcrlf-grouped-photo.vcf", "US", Report{Format: "vcard", Cards: 1, NumbersFound: 7, Valid: 6, Invalid: 1, Numbers: []string{
			"+19052221234", "+19055551234", "+19056661234", "+19057771234", "+19058881234", "+19059991234"}}},
		{"ios5-3.0-crcrlf-grouped-photo.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 7, Invalid: 7}},
		// tel: URIs with +44; the ;ext=5555 is stripped. Region does not matter.
		{"kaddressbook-4.0-tel-uri-ext.vcf", "CN", Report{Format: "vcard", Cards: 1, NumbersFound: 3, Valid: 3, Numbers: []string{
			"+445555555555", "+445555556666", "+445555557777"}}},
		// +49 (0611) 123456 - 11 … - 14: the trunk 0 and the extensions are dropped, so four
		// valid values are one distinct number (the PBX line).
		{"outlook-2.1-de-plus49-trunk0-ext.vcf", "DE", Report{Format: "vcard", Cards: 1, NumbersFound: 4, Valid: 4, Numbers: []string{"+49611123456"}}},
		// (905) 555-1234 and (905) 666-1234.
		{"outlook-2.1-photo-long-lines.vcf", "US", Report{Format: "vcard", Cards: 1, NumbersFound: 2, Valid: 2, Numbers: []string{"+19055551234", "+19056661234"}}},
		// One card, no TEL.
		{"owncloud-3.0-fold-splits-utf8.vcf", "CN", Report{Format: "vcard", Cards: 1}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file+"/"+tt.region, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(readTestdata(t, tt.file)), Options{Region: tt.region})
			if err != nil {
				t.Fatal(err)
			}
			counts := func(r Report) Report {
				r.Numbers, r.Warnings = nil, nil
				return r
			}
			if diff := cmp.Diff(counts(tt.want), counts(*got)); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if tt.want.Numbers != nil {
				if diff := cmp.Diff(tt.want.Numbers, got.Numbers); diff != "" {
					t.Errorf("numbers (-want +got):\n%s", diff)
				}
			}
			if len(got.Numbers) > got.Valid {
				t.Errorf("%d distinct numbers > %d valid values", len(got.Numbers), got.Valid)
			}
		})
	}
	for _, name := range corpusFiles(t) {
		if !covered[name] {
			t.Errorf("%s has no row in TestParseCorpus", name)
		}
	}
}

// TestParseTELCountMatchesGoVCard uses github.com/emersion/go-vcard as an independent
// count of TEL values on every vCard file it can read after transcoding.
func TestParseTELCountMatchesGoVCard(t *testing.T) {
	for _, name := range corpusFiles(t) {
		if !strings.HasSuffix(name, ".vcf") {
			continue
		}
		data := readTestdata(t, name)
		dec := vcard.NewDecoder(bytes.NewReader(decodeText(data)))
		cards, tels := 0, 0
		var err error
		for {
			var c vcard.Card
			if c, err = dec.Decode(); err != nil {
				break
			}
			cards++
			tels += len(c[vcard.FieldTelephone])
		}
		if err != io.EOF {
			continue // the truncated file: go-vcard gives up on the whole stream
		}
		got, err := Parse(bytes.NewReader(data), Options{Region: "CN"})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got.Cards != cards || got.NumbersFound != tels {
			t.Errorf("%s: cards %d, TEL %d; go-vcard: %d, %d", name, got.Cards, got.NumbersFound, cards, tels)
		}
	}
}

func TestParseWarnings(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"broken-bom-only-empty.vcf", []string{"address book is empty: no cards found"}},
		{"broken-2.1-truncated-no-end.vcf", []string{"card 1: cut off before END:VCARD; its 0 phone numbers were ignored"}},
		{"cn-cgb-bank-3.0-shortcode-400.vcf", []string{"card 1: TEL value is not a valid phone number"}},
		{"android-3.0-pause-wait-dialstring.vcf", []string{"card 1: TEL value is not a valid phone number"}},
		{"owncloud-3.0-fold-splits-utf8.vcf", []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(readTestdata(t, tt.file)), Options{Region: "CN"})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Warnings); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// card wraps TEL lines in a vCard 3.0 card with CRLF line ends.
func card(lines ...string) string {
	return "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:X\r\n" + strings.Join(lines, "\r\n") + "\r\nEND:VCARD\r\n"
}

func utf16Bytes(s string, bigEndian, bom bool) []byte {
	var out []byte
	u := utf16.Encode([]rune(s))
	if bom {
		u = append([]uint16{0xFEFF}, u...)
	}
	for _, c := range u {
		if bigEndian {
			out = append(out, byte(c>>8), byte(c))
		} else {
			out = append(out, byte(c), byte(c>>8))
		}
	}
	return out
}

// TestParseSynthetic covers the forms the corpus lacks, each with a hand-made input.
func TestParseSynthetic(t *testing.T) {
	mobile := []string{"+8613800138000"}
	tests := []struct {
		name       string
		in         []byte
		want       Report
		wantNumber []string
	}{
		{"2.1 bare types", []byte("BEGIN:VCARD\r\nVERSION:2.1\r\nTEL;CELL;PREF:13800138000\r\nEND:VCARD\r\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"grouped, lower case", []byte("begin:vcard\nversion:3.0\nitem1.tel;type=cell:+86 138 0013 8000\nitem1.X-ABLabel:x\nend:vcard\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"fold inside the number", []byte(card("TEL;TYPE=CELL:138 0013\r\n  8000")),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"quoted-printable with charset", []byte("BEGIN:VCARD\r\nVERSION:2.1\r\nTEL;CELL;CHARSET=UTF-8;ENCODING=QUOTED-PRINTABLE:=EF=BC=91=EF=BC=93=EF=BC=98=\r\n00138000\r\nEND:VCARD\r\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"soft break splits an escape", []byte("BEGIN:VCARD\r\nVERSION:2.1\r\nTEL;QUOTED-PRINTABLE:+86=2=\r\n0138=200013=208000\r\nEND:VCARD\r\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"fold splits UTF-8", []byte(card("TEL:\xef\xbc\x91\xef\r\n \xbc\x93\xef\xbc\x98 0013 8000")),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"CR CR LF", []byte("BEGIN:VCARD\r\r\nVERSION:3.0\r\r\nTEL:13800138000\r\r\nEND:VCARD\r\r\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"CR only", []byte("BEGIN:VCARD\rVERSION:3.0\rTEL:13800138000\rEND:VCARD\r"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"tel URI", []byte(card("TEL;VALUE=uri:tel:+86-138-0013-8000;ext=12")),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"UTF-16LE with BOM", utf16Bytes(card("TEL:13800138000"), false, true),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"UTF-16LE without BOM", utf16Bytes(card("TEL:13800138000"), false, false),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"UTF-16BE with BOM", utf16Bytes(card("TEL:13800138000"), true, true),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"UTF-16 BOM only", []byte{0xFF, 0xFE},
			Report{Format: "vcard"}, []string{}},
		{"duplicates count as values", []byte(card("TEL:13800138000", "TEL:+86 138 0013 8000", "TEL:95508")),
			Report{Format: "vcard", Cards: 1, NumbersFound: 3, Valid: 2, Invalid: 1}, mobile},
		{"empty TEL is not a value", []byte(card("TEL:", "TEL;TYPE=CELL: ")),
			Report{Format: "vcard", Cards: 1}, []string{}},
		{"cut-off second card", []byte(card("TEL:13800138000") + "BEGIN:VCARD\r\nVERSION:3.0\r\nTEL:13900139000\r\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1, Incomplete: 1}, mobile},
		{"missing END before next card", []byte("BEGIN:VCARD\r\nTEL:13900139000\r\n" + card("TEL:13800138000")),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1, Incomplete: 1}, mobile},
		{"QP value ending in = before END", []byte("BEGIN:VCARD\r\nVERSION:2.1\r\nTEL:13800138000\r\nNOTE;ENCODING=QUOTED-PRINTABLE:a=\r\nEND:VCARD\r\n"),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"text before the first card", []byte("exported by X\r\n" + card("TEL:13800138000")),
			Report{Format: "vcard", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
		{"new Google CSV", []byte("First Name,Last Name,Phone 1 - Label,Phone 1 - Value,Phone 2 - Label,Phone 2 - Value\n" +
			"A,B,Mobile,+86 138 0013 8000 ::: 139 0013 9000,Work,95508\n,,,,,\nC,D,Home,,,\n"),
			Report{Format: "csv", Cards: 2, NumbersFound: 3, Valid: 2, Invalid: 1}, []string{"+8613800138000", "+8613900139000"}},
		{"Outlook CSV", []byte("\xef\xbb\xbf\"First Name\",\"Last Name\",\"Business Phone\",\"Mobile Phone\",\"Home Fax\"\r\n" +
			"\"A\",\"B\",\"010-62671188\",\"13800138000\",\"\"\r\n"),
			Report{Format: "csv", Cards: 1, NumbersFound: 2, Valid: 2}, []string{"+861062671188", "+8613800138000"}},
		{"Outlook CSV with semicolons", []byte("First Name;Mobile Phone\r\nA;13800138000\r\n"),
			Report{Format: "csv", Cards: 1, NumbersFound: 1, Valid: 1}, mobile},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(tt.in), Options{Region: "CN"})
			if err != nil {
				t.Fatal(err)
			}
			numbers := got.Numbers
			c := *got
			c.Numbers, c.Warnings = nil, nil
			if diff := cmp.Diff(tt.want, c); diff != "" {
				t.Errorf("counts (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantNumber, numbers); diff != "" {
				t.Errorf("numbers (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	many := "BEGIN:VCARD\r\n" + strings.Repeat("TEL:13800138000\r\n", 11) + "END:VCARD\r\n"
	tests := []struct {
		name    string
		in      []byte
		opt     Options
		message string
	}{
		{"too large", []byte(card("TEL:13800138000")), Options{Region: "CN", MaxBytes: 10}, "address book is larger than 10 bytes"},
		{"too many numbers", []byte(many), Options{Region: "CN", MaxNumbers: 10}, "address book has more than 10 phone numbers"},
		{"too many numbers in a cut-off card", []byte(strings.TrimSuffix(many, "END:VCARD\r\n")), Options{Region: "CN", MaxNumbers: 10}, "address book has more than 10 phone numbers"},
		{"binary", []byte{0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 0x0D, 'I', 'H', 'D', 'R', 0xff, 0x00}, Options{Region: "CN"}, "not a vCard or CSV address book"},
		{"text", []byte("Dear John,\nhere are the numbers.\n"), Options{Region: "CN"}, "not a vCard or CSV address book"},
		{"CSV without phone columns", []byte("Name,E-mail\nA,a@example.com\n"), Options{Region: "CN"}, "not a vCard or CSV address book"},
		{"no region", []byte(card("TEL:13800138000")), Options{}, "region must be a two-letter country code such as CN or US"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(bytes.NewReader(tt.in), tt.opt)
			if err == nil {
				t.Fatalf("Parse = %v, want error", got)
			}
			if got != nil {
				t.Errorf("Parse returned a partial report %v", got)
			}
			if code := steward.ErrorCode(err); code != steward.EINVALID {
				t.Errorf("code = %s, want EINVALID", code)
			}
			if msg := steward.ErrorMessage(err); msg != tt.message {
				t.Errorf("message = %q, want %q", msg, tt.message)
			}
		})
	}
}

func TestParseDefaultMaxBytes(t *testing.T) {
	in := io.MultiReader(strings.NewReader(card("TEL:13800138000")), bytes.NewReader(make([]byte, DefaultMaxBytes)))
	_, err := Parse(in, Options{Region: "CN"})
	if msg := steward.ErrorMessage(err); msg != fmt.Sprintf("address book is larger than %d bytes", DefaultMaxBytes) {
		t.Errorf("message = %q", msg)
	}
}

func TestParseWarningsAreCapped(t *testing.T) {
	in := strings.Repeat(card("TEL:1"), 150)
	got, err := Parse(strings.NewReader(in), Options{Region: "CN"})
	if err != nil {
		t.Fatal(err)
	}
	if got.Invalid != 150 || len(got.Warnings) != maxWarnings {
		t.Fatalf("invalid %d, %d warnings", got.Invalid, len(got.Warnings))
	}
	if last := got.Warnings[len(got.Warnings)-1]; last != "51 more warnings not shown" {
		t.Errorf("last warning %q", last)
	}
}

// TestReportLeaksNoNumber checks that logging or printing a Report shows counts only,
// while its JSON (for the owner of the address book) holds the numbers.
func TestReportLeaksNoNumber(t *testing.T) {
	rep, err := Parse(bytes.NewReader(readTestdata(t, "cn-tencent-3.0-landlines-photo.vcf")), Options{Region: "CN"})
	if err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("imported", "report", rep)
	for _, s := range []string{logged.String(), fmt.Sprint(rep), fmt.Sprintf("%v %+v %#v", *rep, *rep, *rep)} {
		if strings.Contains(s, "0755") || strings.Contains(s, "+86") {
			t.Errorf("number leaked: %s", s)
		}
	}
	if !strings.Contains(logged.String(), `"report":{"format":"vcard","cards":1,"numbers_found":6,"valid":6,"invalid":0,"incomplete":0,"distinct":6,"warnings":0}`) {
		t.Errorf("log line: %s", logged.String())
	}
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"format":"vcard","cards":1,"numbers_found":6,"valid":6,"invalid":0,"incomplete":0,` +
		`"numbers":["+861062671188","+862081167888","+862154569595","+862885225111","+8675583765566","+8675586013388"],"warnings":[]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func FuzzParse(f *testing.F) {
	for _, name := range corpusFiles(f) {
		f.Add(readTestdata(f, name))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(bytes.NewReader(data), Options{Region: "CN", MaxBytes: 1 << 20})
		if err != nil {
			if code := steward.ErrorCode(err); code != steward.EINVALID {
				t.Fatalf("code %s: %v", code, err)
			}
			return
		}
		if rep.Valid+rep.Invalid != rep.NumbersFound {
			t.Fatalf("valid %d + invalid %d != found %d", rep.Valid, rep.Invalid, rep.NumbersFound)
		}
		if len(rep.Numbers) > rep.Valid {
			t.Fatalf("%d distinct > %d valid", len(rep.Numbers), rep.Valid)
		}
		for _, n := range rep.Numbers {
			if !strings.HasPrefix(n, "+") {
				t.Fatalf("%q is not E.164", n)
			}
			if again, err := Normalize(n, "CN"); err != nil || again != n {
				t.Fatalf("Normalize(%q) = %q, %v", n, again, err)
			}
		}
	})
}

func BenchmarkParse(b *testing.B) {
	// The largest file of the corpus: 46 KB, most of it a folded photo.
	data := readTestdata(b, "ios5-3.0-crcrlf-grouped-photo.vcf")
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Parse(bytes.NewReader(data), Options{Region: "US"}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestParseLongContinuation guards against quadratic time on a quoted-printable value
// continued over many lines and on a long fold.
func TestParseLongContinuation(t *testing.T) {
	qp := "BEGIN:VCARD\r\nVERSION:2.1\r\nNOTE;ENCODING=QUOTED-PRINTABLE:" + strings.Repeat("=41=\r\n", 150000) + "\r\nTEL:13800138000\r\nEND:VCARD\r\n"
	fold := "BEGIN:VCARD\r\nVERSION:3.0\r\nNOTE:" + strings.Repeat("a\r\n ", 300000) + "\r\nTEL:13800138000\r\nEND:VCARD\r\n"
	for _, in := range []string{qp, fold} {
		got, err := Parse(strings.NewReader(in), Options{Region: "CN"})
		if err != nil {
			t.Fatal(err)
		}
		if got.Valid != 1 {
			t.Errorf("valid %d, want 1", got.Valid)
		}
	}
}
