package contacts

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"regexp"
	"strings"

	"github.com/stewardhq/steward"
)

// googlePhoneValue matches the phone value columns of both Google Contacts CSV headers:
// the legacy "Phone 1 - Type"/"Phone 1 - Value" and the newer "Phone 1 - Label"/
// "Phone 1 - Value".
var googlePhoneValue = regexp.MustCompile(`(?i)^phone \d+ - value$`)

// outlookPhoneColumns are the phone columns of an Outlook CSV export (English headers),
// lower case.
var outlookPhoneColumns = map[string]bool{
	"assistant's phone": true, "business fax": true, "business phone": true,
	"business phone 2": true, "callback": true, "car phone": true,
	"company main phone": true, "home fax": true, "home phone": true, "home phone 2": true,
	"isdn": true, "mobile phone": true, "other fax": true, "other phone": true,
	"pager": true, "primary phone": true, "radio phone": true, "tty/tdd phone": true,
	"telex": true,
}

// csvDelimiter picks the delimiter of the header line: Outlook writes ";" in locales
// where "," is the decimal separator.
func csvDelimiter(data []byte) rune {
	line := data
	if i := bytes.IndexAny(data, "\r\n"); i >= 0 {
		line = data[:i]
	}
	best, n := ',', bytes.Count(line, []byte{','})
	for _, d := range []rune{';', '\t'} {
		if c := bytes.Count(line, []byte(string(d))); c > n {
			best, n = d, c
		}
	}
	return best
}

func newCSVReader(data []byte) *csv.Reader {
	r := csv.NewReader(bytes.NewReader(data))
	r.Comma = csvDelimiter(data)
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	return r
}

// csvPhoneColumns reads the header of a CSV address book and returns the indexes of its
// phone value columns; ok is false if data is not CSV or has no phone column.
func csvPhoneColumns(data []byte) (cols []int, ok bool) {
	header, err := newCSVReader(data).Read()
	if err != nil || len(header) < 2 {
		return nil, false
	}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\uFEFF")))
		if googlePhoneValue.MatchString(h) || outlookPhoneColumns[h] {
			cols = append(cols, i)
		}
	}
	return cols, len(cols) > 0
}

// parseCSV reads the data rows of a CSV address book. Google joins several numbers of one
// type into one cell with " ::: "; each counts as a value.
func (p *parser) parseCSV(data []byte, cols []int) error {
	r := newCSVReader(data)
	if _, err := r.Read(); err != nil {
		return errNotAddressBook
	}
	for row := 1; ; row++ {
		rec, err := r.Read()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return steward.Errorf(steward.EINVALID, "CSV address book is malformed at row %d", row)
		}
		if isEmptyRecord(rec) {
			row--
			continue
		}
		p.rep.Cards++
		var values []string
		for _, c := range cols {
			if c >= len(rec) {
				continue
			}
			for _, v := range strings.Split(rec[c], ":::") {
				if v = strings.TrimSpace(v); v != "" {
					if err := p.count(); err != nil {
						return err
					}
					values = append(values, v)
				}
			}
		}
		where := fmt.Sprintf("row %d", row)
		for _, v := range values {
			p.add(where, v)
		}
	}
}

func isEmptyRecord(rec []string) bool {
	for _, f := range rec {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}
