package contacts

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding/htmlindex"
)

// The vCard reader is line-based rather than built on github.com/emersion/go-vcard. After
// transcoding, go-vcard reads most of the corpus (the tests use it as an independent count
// of cards and TEL values), but it fails the whole stream on a card cut off before
// END:VCARD, where the complete cards must be kept, and it leaves vCard 2.1
// quoted-printable and CHARSET decoding to the caller. Only BEGIN, END and TEL matter
// here, so a tolerant reader that recovers per card is smaller than wrapping the library.

var beginVCard = []byte("BEGIN:VCARD")

// startsWithBeginVCard reports whether the first non-blank line of data is BEGIN:VCARD.
func startsWithBeginVCard(data []byte) bool {
	data = bytes.TrimLeft(data, " \t\r\n")
	return len(data) >= len(beginVCard) && bytes.EqualFold(data[:len(beginVCard)], beginVCard)
}

// indexBeginVCard returns the offset of the first line that starts with BEGIN:VCARD, or -1.
func indexBeginVCard(data []byte) int {
	for off := 0; off < len(data); {
		line := data[off:]
		if len(line) >= len(beginVCard) && bytes.EqualFold(line[:len(beginVCard)], beginVCard) {
			return off
		}
		i := bytes.IndexAny(line, "\r\n")
		if i < 0 {
			return -1
		}
		off += i + 1
	}
	return -1
}

// physicalLines splits data into lines. A line ends at LF, at CR LF, at CR, or at any run
// of CRs followed by an optional LF (iOS 5 writes CR CR LF).
func physicalLines(data []byte) [][]byte {
	lines := make([][]byte, 0, bytes.Count(data, []byte{'\n'})+1)
	start := 0
	for i := 0; i < len(data); {
		switch data[i] {
		case '\n':
			lines = append(lines, data[start:i])
			i++
			start = i
		case '\r':
			lines = append(lines, data[start:i])
			for i < len(data) && data[i] == '\r' {
				i++
			}
			if i < len(data) && data[i] == '\n' {
				i++
			}
			start = i
		default:
			i++
		}
	}
	if start < len(data) {
		lines = append(lines, data[start:])
	}
	return lines
}

// logicalLines joins physical lines into content lines: a line starting with a space or a
// tab continues the previous one (the fold and one white-space byte are removed, as bytes,
// before any decoding), and a quoted-printable value ending in "=" (a soft line break)
// continues on the next line. Some writers put blank lines inside such a continuation;
// blank lines are skipped there unless the line after them starts a new property.
func logicalLines(phys [][]byte) [][]byte {
	var out [][]byte
	var cur []byte
	blanks := 0
	// qp caches isQuotedPrintable(cur) once cur holds its ":" (the parameters are then
	// known), so a long continuation is not rescanned for every line.
	const qpUnknown, qpNo, qpYes = 0, 1, 2
	qp := qpUnknown
	isQP := func() bool {
		if qp == qpUnknown {
			if bytes.IndexByte(cur, ':') < 0 {
				return false
			}
			qp = qpNo
			if isQuotedPrintable(cur) {
				qp = qpYes
			}
		}
		return qp == qpYes
	}
	flush := func() {
		if cur != nil {
			out = append(out, cur)
			cur = nil
		}
		blanks = 0
		qp = qpUnknown
	}
	for _, l := range phys {
		if cur != nil {
			if bytes.HasSuffix(cur, []byte{'='}) && isQP() {
				if len(l) == 0 {
					blanks++
					continue
				}
				if (blanks == 0 || !looksLikeProperty(l)) && !isCardDelimiter(l) {
					cur = append(cur[:len(cur)-1], l...)
					blanks = 0
					continue
				}
			} else if blanks == 0 && len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
				cur = append(cur, l[1:]...)
				continue
			}
			flush()
		}
		if len(l) == 0 {
			continue
		}
		// A copy, so that appending continuations never writes into the input.
		cur = append(make([]byte, 0, len(l)), l...)
	}
	flush()
	return out
}

// isCardDelimiter reports whether l is BEGIN:VCARD or END:VCARD. A quoted-printable value
// wrongly ending in "=" must not swallow the end of its card.
func isCardDelimiter(l []byte) bool {
	l = bytes.TrimSpace(l)
	return bytes.EqualFold(l, []byte("END:VCARD")) || bytes.EqualFold(l, beginVCard)
}

// looksLikeProperty reports whether l starts like "NAME:", "NAME;" or "group.NAME:".
func looksLikeProperty(l []byte) bool {
	dots := 0
	for i, c := range l {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '.' && i > 0 && dots == 0:
			dots++
		case c == ':' || c == ';':
			return i > 0
		default:
			return false
		}
	}
	return false
}

// isQuotedPrintable reports whether the parameters of content line l declare
// quoted-printable encoding (ENCODING=QUOTED-PRINTABLE, or the bare 2.1 form).
func isQuotedPrintable(l []byte) bool {
	_, params, _, ok := splitProperty(l)
	return ok && bytes.Contains(bytes.ToUpper(params), []byte("QUOTED-PRINTABLE"))
}

// splitProperty splits a content line into its name (group removed, upper case), its
// parameters (the text between the name and the value, without the leading ";") and its
// value. The value starts after the first ":" outside a double-quoted parameter value.
func splitProperty(l []byte) (name string, params, value []byte, ok bool) {
	inQuote := false
	colon := -1
	for i, c := range l {
		if c == '"' {
			inQuote = !inQuote
		} else if c == ':' && !inQuote {
			colon = i
			break
		}
	}
	if colon <= 0 {
		return "", nil, nil, false
	}
	head := l[:colon]
	n := head
	if i := bytes.IndexByte(head, ';'); i >= 0 {
		n, params = head[:i], head[i+1:]
	}
	if i := bytes.LastIndexByte(n, '.'); i >= 0 {
		n = n[i+1:]
	}
	return strings.ToUpper(string(bytes.TrimSpace(n))), params, l[colon+1:], true
}

// parseVCard reads the cards of a vCard stream.
func (p *parser) parseVCard(data []byte) error {
	var (
		inCard  bool
		cardNo  int
		pending []string
	)
	lines := logicalLines(physicalLines(data))
	for _, l := range lines {
		name, params, value, ok := splitProperty(l)
		if !ok {
			continue
		}
		switch name {
		case "BEGIN":
			if !strings.EqualFold(strings.TrimSpace(string(value)), "VCARD") {
				continue
			}
			if inCard {
				p.rep.Incomplete++
				p.warn("card %d: no END:VCARD before the next card; its %d phone numbers were ignored", cardNo, len(pending))
			}
			inCard = true
			cardNo++
			pending = pending[:0]
		case "END":
			if !strings.EqualFold(strings.TrimSpace(string(value)), "VCARD") {
				continue
			}
			if !inCard {
				p.warn("END:VCARD without BEGIN:VCARD was ignored")
				continue
			}
			inCard = false
			p.rep.Cards++
			where := fmt.Sprintf("card %d", cardNo)
			for _, v := range pending {
				p.add(where, v)
			}
			pending = pending[:0]
		case "TEL":
			if !inCard {
				continue
			}
			v := telValue(params, value)
			if v == "" {
				continue
			}
			if err := p.count(); err != nil {
				return err
			}
			pending = append(pending, v)
		}
	}
	if inCard {
		p.rep.Incomplete++
		p.warn("card %d: cut off before END:VCARD; its %d phone numbers were ignored", cardNo, len(pending))
	}
	return nil
}

// telValue decodes a TEL value as its parameters say (quoted-printable or base64
// encoding, a CHARSET other than UTF-8), removes vCard backslash escapes and surrounding
// white space.
func telValue(params, value []byte) string {
	var qp, b64 bool
	charset := ""
	for _, prm := range bytes.Split(params, []byte{';'}) {
		k, v, hasValue := bytes.Cut(bytes.TrimSpace(prm), []byte{'='})
		key := strings.ToUpper(string(k))
		val := strings.ToUpper(strings.Trim(string(v), `"`))
		switch {
		case !hasValue && key == "QUOTED-PRINTABLE", key == "ENCODING" && val == "QUOTED-PRINTABLE":
			qp = true
		case !hasValue && key == "BASE64", key == "ENCODING" && (val == "B" || val == "BASE64"):
			b64 = true
		case key == "CHARSET":
			charset = val
		}
	}
	switch {
	case qp:
		value = decodeQuotedPrintable(value)
	case b64:
		if d, err := base64.StdEncoding.DecodeString(string(bytes.TrimSpace(value))); err == nil {
			value = d
		}
	}
	if charset != "" && charset != "UTF-8" && charset != "US-ASCII" && !utf8.Valid(value) {
		if enc, err := htmlindex.Get(charset); err == nil {
			if d, err := enc.NewDecoder().Bytes(value); err == nil {
				value = d
			}
		}
	}
	return strings.TrimSpace(unescape(string(value)))
}

// decodeQuotedPrintable decodes "=XX" escapes; a malformed escape is kept as it is and a
// trailing "=" (a soft break at the end of a cut-off file) is dropped.
func decodeQuotedPrintable(v []byte) []byte {
	out := make([]byte, 0, len(v))
	for i := 0; i < len(v); i++ {
		if v[i] == '=' {
			if i+2 < len(v) && isHex(v[i+1]) && isHex(v[i+2]) {
				out = append(out, unhex(v[i+1])<<4|unhex(v[i+2]))
				i += 2
				continue
			}
			if i == len(v)-1 {
				break
			}
		}
		out = append(out, v[i])
	}
	return out
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// unescape removes vCard 3.0/4.0 backslash escapes ("\,", "\;", "\\", "\n").
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' || s[i] == 'N' {
				b.WriteByte('\n')
			} else {
				b.WriteByte(s[i])
			}
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
