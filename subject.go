package steward

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/jpeg" // image.DecodeConfig for photos
	_ "image/png"
	"log/slog"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Subject states.
const (
	SubjectActive    = "active"
	SubjectCancelled = "cancelled" // a tombstone: no PI, no keys, no sessions
)

// Subject is one account: the person the PI is about. It holds no PI itself; the
// fields are sealed under the subject's data key and stored apart.
type Subject struct {
	ID          string    `json:"id"`
	Status      string    `json:"status"`
	Region      string    `json:"region"`
	KeyID       string    `json:"key_id,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	CancelledAt time.Time `json:"cancelled_at,omitzero"`
}

// FieldValues maps declared field names to their values as JSON: a string for
// string, phone, date and enum kinds, an array of strings for list, an object for
// location and bytes. It holds PI, so it never prints its values.
type FieldValues map[string]json.RawMessage

// String lists the field names only.
func (v FieldValues) String() string { return "FieldValues" + fmt.Sprint(v.Names()) }

// LogValue logs the field names only.
func (v FieldValues) LogValue() slog.Value { return slog.AnyValue(v.Names()) }

// Names returns the field names in declaration-independent sorted order.
func (v FieldValues) Names() []string {
	names := make([]string, 0, len(v))
	for k := range v {
		names = append(names, k)
	}
	slices.Sort(names)
	return names
}

// Photo is the value of a bytes field.
type Photo struct {
	ContentType string `json:"content_type"`
	Data        []byte `json:"data"` // base64 in JSON
}

// Location is the value of a location field, already reduced to the declared precision.
type Location struct {
	Latitude  float64   `json:"latitude"`
	Longitude float64   `json:"longitude"`
	At        time.Time `json:"at"`
}

// ParseBirthday parses a birthday, a calendar date "YYYY-MM-DD". A date that does not exist, such
// as 2009-02-29, is EINVALID.
func ParseBirthday(s string) (time.Time, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return time.Time{}, Errorf(EINVALID, "birthday must be a real calendar date written YYYY-MM-DD")
	}
	return t, nil
}

// Age returns the completed years between birthday (a calendar date) and the
// instant now, counted in the legal time zone loc: the day of the year in loc is
// what the law counts (policy §7, PIPL Art. 28 and 31). A person born on 29 February
// completes a year on 1 March in years without 29 February.
func Age(birthday time.Time, now time.Time, loc *time.Location) int {
	n := now.In(loc)
	by, bm, bd := birthday.Date()
	ny, nm, nd := n.Date()
	age := ny - by
	if nm < bm || (nm == bm && nd < bd) {
		age--
	}
	return age
}

// CheckAge returns EFORBIDDEN when the person born on birthday is younger than min
// years at now in loc (policy §7: minors may not register), and EINVALID for a
// birthday in the future.
func CheckAge(birthday time.Time, now time.Time, loc *time.Location, min int) error {
	n := now.In(loc)
	today := time.Date(n.Year(), n.Month(), n.Day(), 0, 0, 0, 0, time.UTC)
	if birthday.After(today) {
		return Errorf(EINVALID, "birthday is in the future")
	}
	if birthday.Year() < 1900 {
		return Errorf(EINVALID, "birthday must be in 1900 or later")
	}
	if age := Age(birthday, now, loc); age < min {
		return Errorf(EFORBIDDEN, "the service is open from age %d (minors may not register); the birthday given makes the person %d", min, age)
	}
	return nil
}

// NormalizeFieldValue checks raw against field f's declared kind and returns its
// canonical JSON form, ready to seal. Phone values are normalized by normPhone
// with region. Errors are EINVALID and name the field, never the value.
func NormalizeFieldValue(f *Field, raw json.RawMessage, region string, normPhone func(raw, region string) (string, error)) (json.RawMessage, error) {
	bad := func(format string, args ...any) error {
		return Errorf(EINVALID, "field %s: "+format, append([]any{f.Name}, args...)...)
	}
	switch f.Kind {
	case KindString, KindPhone, KindDate, KindEnum:
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, bad("must be a string")
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return nil, bad("must not be empty")
		}
		switch f.Kind {
		case KindString:
			if !utf8.ValidString(s) {
				return nil, bad("must be UTF-8 text")
			}
			if hasControl(s) {
				return nil, bad("must not contain control or bidirectional formatting characters")
			}
			if f.MaxLength > 0 && utf8.RuneCountInString(s) > f.MaxLength {
				return nil, bad("must be at most %d characters", f.MaxLength)
			}
		case KindPhone:
			e164, err := normPhone(s, region)
			if err != nil {
				return nil, bad("is not a valid phone number")
			}
			s = e164
		case KindDate:
			if _, err := time.Parse(time.DateOnly, s); err != nil {
				return nil, bad("must be a real calendar date written YYYY-MM-DD")
			}
		case KindEnum:
			ok := false
			for _, v := range f.Values {
				ok = ok || v == s
			}
			if !ok {
				return nil, bad("must be one of %s", strings.Join(f.Values, ", "))
			}
		}
		return json.Marshal(s)
	case KindList:
		var l []string
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, bad("must be an array of strings")
		}
		if f.MaxItems > 0 && len(l) > f.MaxItems {
			return nil, bad("must have at most %d items", f.MaxItems)
		}
		for _, s := range l {
			if f.MaxLength > 0 && utf8.RuneCountInString(s) > f.MaxLength {
				return nil, bad("items must be at most %d characters", f.MaxLength)
			}
		}
		return json.Marshal(l)
	case KindBytes:
		var p Photo
		if err := json.Unmarshal(raw, &p); err != nil || len(p.Data) == 0 {
			return nil, bad("must be an object with content_type and base64 data")
		}
		if f.MaxBytes > 0 && len(p.Data) > f.MaxBytes {
			return nil, &Error{Code: ETOOLARGE, Message: fmt.Sprintf("field %s: at most %d bytes", f.Name, f.MaxBytes)}
		}
		sniffed := SniffImage(p.Data)
		allowed := false
		for _, ct := range f.ContentTypes {
			allowed = allowed || ct == sniffed
		}
		if !allowed {
			return nil, &Error{Code: EUNSUPPORTED, Message: fmt.Sprintf("field %s: content must be one of %s", f.Name, strings.Join(f.ContentTypes, ", "))}
		}
		if err := checkImage(sniffed, p.Data); err != nil {
			return nil, &Error{Code: EINVALID, Message: fmt.Sprintf("field %s: the image cannot be read: %v", f.Name, err)}
		}
		p.ContentType = sniffed
		return json.Marshal(p)
	case KindLocation:
		var l Location
		if err := json.Unmarshal(raw, &l); err != nil {
			return nil, bad("must be an object with latitude and longitude")
		}
		if l.Latitude < -90 || l.Latitude > 90 || l.Longitude < -180 || l.Longitude > 180 {
			return nil, bad("latitude must be within ±90 and longitude within ±180")
		}
		l.Latitude, l.Longitude = roundTo(l.Latitude, f.Precision), roundTo(l.Longitude, f.Precision)
		return json.Marshal(l)
	default:
		return nil, bad("is kept by Steward and cannot be written directly")
	}
}

// SniffImage returns the media type of an image from its first bytes
// ("image/jpeg", "image/png", "image/webp", "image/gif"), or "" if unknown. The
// declared type of an upload is never trusted.
func SniffImage(b []byte) string {
	switch {
	case len(b) >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF:
		return "image/jpeg"
	case len(b) >= 8 && string(b[:8]) == "\x89PNG\r\n\x1a\n":
		return "image/png"
	case len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP":
		return "image/webp"
	case len(b) >= 6 && (string(b[:6]) == "GIF87a" || string(b[:6]) == "GIF89a"):
		return "image/gif"
	}
	return ""
}

func roundTo(v float64, places int) float64 {
	p := 1.0
	for range places {
		p *= 10
	}
	x := v * p
	if x < 0 {
		return -float64(int64(-x+0.5)) / p
	}
	return float64(int64(x+0.5)) / p
}

// hasControl reports whether s holds C0/C1 control characters (NUL, ESC…) or
// bidirectional formatting characters (U+202A–U+202E, U+2066–U+2069), which let a
// stored name display as something else.
func hasControl(s string) bool {
	for _, r := range s {
		switch {
		case r < 0x20 || (r >= 0x7f && r < 0xa0):
			return true
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e, r == 0x200f:
			return true
		}
	}
	return false
}

// checkImage decodes the header of a JPEG or PNG (its dimensions), so that a few
// magic bytes are not taken for a photo. WebP and GIF are checked by their header.
func checkImage(contentType string, b []byte) error {
	switch contentType {
	case "image/jpeg", "image/png":
		cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
		if err != nil {
			return errors.New("not a complete image")
		}
		if cfg.Width <= 0 || cfg.Height <= 0 || cfg.Width > 20000 || cfg.Height > 20000 {
			return errors.New("image dimensions out of range")
		}
	case "image/webp":
		if len(b) < 30 || string(b[12:15]) != "VP8" {
			return errors.New("not a complete WebP image")
		}
	}
	return nil
}
