package steward

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"
)

// Date is a civil date (year, month, day) with no time of day and no zone. Deadlines
// and holidays are civil dates in the legal time zone; a Date never shifts when a
// zone changes its UTC offset (daylight saving). Its text and JSON form is ISO 8601
// "2026-05-16"; the zero Date is encoded as JSON null.
type Date struct {
	Year  int
	Month time.Month
	Day   int
}

// DateOf returns the civil date of t in t's own location. Convert first
// (t.In(loc)) to take the date in another zone.
func DateOf(t time.Time) Date {
	y, m, d := t.Date()
	return Date{Year: y, Month: m, Day: d}
}

// ParseDate parses an ISO 8601 calendar date "YYYY-MM-DD". It returns EINVALID for
// any other shape and for dates that do not exist (2026-02-30).
func ParseDate(s string) (Date, error) {
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return Date{}, WrapError(EINVALID, fmt.Sprintf("%q is not a date of the form YYYY-MM-DD.", s), err)
	}
	return DateOf(t), nil
}

// String returns the date as "YYYY-MM-DD", or "" for the zero Date.
func (d Date) String() string {
	if d.IsZero() {
		return ""
	}
	return fmt.Sprintf("%04d-%02d-%02d", d.Year, d.Month, d.Day)
}

// IsZero reports whether d is the zero Date (no date set).
func (d Date) IsZero() bool { return d == Date{} }

// AddDays returns the date n calendar days after d (before d if n is negative).
func (d Date) AddDays(n int) Date {
	return DateOf(time.Date(d.Year, d.Month, d.Day+n, 12, 0, 0, 0, time.UTC))
}

// Weekday returns the day of the week of d.
func (d Date) Weekday() time.Weekday {
	return time.Date(d.Year, d.Month, d.Day, 12, 0, 0, 0, time.UTC).Weekday()
}

// Compare returns -1 if d is before e, 0 if they are the same day and +1 if d is after e.
func (d Date) Compare(e Date) int {
	switch {
	case d.Year != e.Year:
		return cmpInt(d.Year, e.Year)
	case d.Month != e.Month:
		return cmpInt(int(d.Month), int(e.Month))
	default:
		return cmpInt(d.Day, e.Day)
	}
}

func cmpInt(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Start returns the first instant of d in loc (00:00, or the first instant that exists
// if the zone skips midnight).
func (d Date) Start(loc *time.Location) time.Time {
	return time.Date(d.Year, d.Month, d.Day, 0, 0, 0, 0, loc)
}

// End returns the last instant of d in loc at the microsecond precision Steward
// stores timestamps with: 23:59:59.999999 local time. It is computed from the start
// of the following day, so it stays correct on days with 23 or 25 hours.
func (d Date) End(loc *time.Location) time.Time {
	return d.AddDays(1).Start(loc).Add(-time.Microsecond)
}

// MarshalText encodes d as "YYYY-MM-DD".
func (d Date) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText decodes "YYYY-MM-DD"; the empty string gives the zero Date.
func (d *Date) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*d = Date{}
		return nil
	}
	v, err := ParseDate(string(b))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalJSON encodes d as the JSON string "YYYY-MM-DD", or null for the zero Date.
func (d Date) MarshalJSON() ([]byte, error) {
	if d.IsZero() {
		return []byte("null"), nil
	}
	return json.Marshal(d.String())
}

// UnmarshalJSON decodes a JSON string "YYYY-MM-DD"; null or "" give the zero Date.
func (d *Date) UnmarshalJSON(b []byte) error {
	if bytes.Equal(b, []byte("null")) {
		*d = Date{}
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return WrapError(EINVALID, "A date must be a string of the form YYYY-MM-DD.", err)
	}
	return d.UnmarshalText([]byte(s))
}

// Calendar says which civil dates are working days in one jurisdiction, for
// deadlines counted in working days (GB/T 35273-2020 §8.7 allows "the period set by
// laws and regulations"; some declarations promise working days). A date is a
// working day when it is listed in WorkingDays (a make-up working day, 调休), or
// when it is a Monday to Friday not listed in Holidays. A Calendar only answers for
// dates between From and To; outside them it cannot tell, and deadline functions
// return EINVALID rather than guess.
//
// The file format read by LoadCalendar is one JSON object, unknown keys rejected:
//
//	{
//	  "name": "cn-2026",                     // required, the name BuiltinCalendar takes
//	  "zone": "Asia/Shanghai",               // required, IANA zone the dates are civil dates in
//	  "source": "State Council notice ...",  // optional, where the dates come from
//	  "from": "2026-01-01",                  // required, first date covered
//	  "to": "2026-12-31",                    // required, last date covered (inclusive)
//	  "holidays": ["2026-01-01/2026-01-03", "2026-04-04"],
//	  "working_days": ["2026-01-04"]
//	}
//
// Each entry of holidays and working_days is a date "YYYY-MM-DD" or an inclusive
// range "YYYY-MM-DD/YYYY-MM-DD" (ISO 8601 interval). Every date must lie within
// from..to, no date may be both a holiday and a working day, and a make-up working
// day must fall on a Saturday or Sunday (a weekday is a working day already).
// Holidays may include weekend days, so a holiday range can be copied whole from the
// official notice.
type Calendar struct {
	Name     string // e.g. "cn-2026"
	Zone     string // IANA zone name, e.g. "Asia/Shanghai"
	Source   string // where the dates come from, for operators
	From, To Date   // dates covered, inclusive

	loc      *time.Location
	holidays map[Date]bool
	working  map[Date]bool
}

// calendarFile is the JSON form of a Calendar.
type calendarFile struct {
	Name        string   `json:"name"`
	Zone        string   `json:"zone"`
	Source      string   `json:"source,omitempty"`
	From        string   `json:"from"`
	To          string   `json:"to"`
	Holidays    []string `json:"holidays"`
	WorkingDays []string `json:"working_days"`
}

// maxCalendarBytes bounds a calendar file; a real one is well under 4 KiB.
const maxCalendarBytes = 1 << 20

// LoadCalendar reads a calendar in the JSON format documented on Calendar. It
// returns EINVALID for malformed JSON, unknown keys, a missing name, zone, from or
// to, an unknown zone, a bad date or range, a date outside from..to, a date listed
// both as holiday and working day, or a make-up working day on a weekday.
func LoadCalendar(r io.Reader) (*Calendar, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxCalendarBytes+1))
	if err != nil {
		return nil, WrapError(EINVALID, "The calendar could not be read.", err)
	}
	if len(data) > maxCalendarBytes {
		return nil, Errorf(EINVALID, "The calendar is larger than %d bytes.", maxCalendarBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f calendarFile
	if err := dec.Decode(&f); err != nil {
		return nil, WrapError(EINVALID, "The calendar is not valid JSON in the calendar format.", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, Errorf(EINVALID, "The calendar has data after its JSON object.")
	}
	return f.calendar()
}

func (f calendarFile) calendar() (*Calendar, error) {
	if strings.TrimSpace(f.Name) == "" {
		return nil, Errorf(EINVALID, "The calendar has no name.")
	}
	if f.Zone == "" {
		return nil, Errorf(EINVALID, "Calendar %s has no zone.", f.Name)
	}
	loc, err := time.LoadLocation(f.Zone)
	if err != nil {
		return nil, WrapError(EINVALID, fmt.Sprintf("Calendar %s names an unknown time zone.", f.Name), err)
	}
	from, err := ParseDate(f.From)
	if err != nil {
		return nil, WrapError(EINVALID, fmt.Sprintf("Calendar %s: \"from\" must be a date YYYY-MM-DD.", f.Name), err)
	}
	to, err := ParseDate(f.To)
	if err != nil {
		return nil, WrapError(EINVALID, fmt.Sprintf("Calendar %s: \"to\" must be a date YYYY-MM-DD.", f.Name), err)
	}
	if to.Compare(from) < 0 {
		return nil, Errorf(EINVALID, "Calendar %s ends (%s) before it starts (%s).", f.Name, to, from)
	}
	c := &Calendar{
		Name: f.Name, Zone: f.Zone, Source: f.Source, From: from, To: to,
		loc: loc, holidays: map[Date]bool{}, working: map[Date]bool{},
	}
	if err := c.addDates(f.Holidays, "holidays", c.holidays); err != nil {
		return nil, err
	}
	if err := c.addDates(f.WorkingDays, "working_days", c.working); err != nil {
		return nil, err
	}
	for d := range c.working {
		if c.holidays[d] {
			return nil, Errorf(EINVALID, "Calendar %s lists %s both as a holiday and as a working day.", c.Name, d)
		}
		if wd := d.Weekday(); wd != time.Saturday && wd != time.Sunday {
			return nil, Errorf(EINVALID, "Calendar %s lists %s (a %s) as a make-up working day; only a Saturday or Sunday can be one.", c.Name, d, wd)
		}
	}
	return c, nil
}

// maxRangeDays bounds one holiday range, so a typo cannot allocate years of dates.
const maxRangeDays = 366

func (c *Calendar) addDates(entries []string, key string, into map[Date]bool) error {
	for _, e := range entries {
		first, last, isRange := strings.Cut(e, "/")
		start, err := ParseDate(first)
		if err != nil {
			return WrapError(EINVALID, fmt.Sprintf("Calendar %s: %s entry %q is not a date or a range.", c.Name, key, e), err)
		}
		end := start
		if isRange {
			if end, err = ParseDate(last); err != nil {
				return WrapError(EINVALID, fmt.Sprintf("Calendar %s: %s entry %q is not a date or a range.", c.Name, key, e), err)
			}
			if end.Compare(start) < 0 {
				return Errorf(EINVALID, "Calendar %s: %s range %q ends before it starts.", c.Name, key, e)
			}
		}
		if start.Compare(c.From) < 0 || end.Compare(c.To) > 0 {
			return Errorf(EINVALID, "Calendar %s: %s entry %q lies outside %s..%s.", c.Name, key, e, c.From, c.To)
		}
		for d, n := start, 0; d.Compare(end) <= 0; d, n = d.AddDays(1), n+1 {
			if n >= maxRangeDays {
				return Errorf(EINVALID, "Calendar %s: %s range %q is longer than %d days.", c.Name, key, e, maxRangeDays)
			}
			if into[d] {
				return Errorf(EINVALID, "Calendar %s lists %s twice in %s.", c.Name, d, key)
			}
			into[d] = true
		}
	}
	return nil
}

// MarshalJSON encodes the calendar in the file format LoadCalendar reads, with
// each holiday and working day listed as a single date.
func (c *Calendar) MarshalJSON() ([]byte, error) {
	f := calendarFile{Name: c.Name, Zone: c.Zone, Source: c.Source, From: c.From.String(), To: c.To.String(),
		Holidays: []string{}, WorkingDays: []string{}}
	for _, d := range c.Holidays() {
		f.Holidays = append(f.Holidays, d.String())
	}
	for _, d := range c.WorkingDays() {
		f.WorkingDays = append(f.WorkingDays, d.String())
	}
	return json.Marshal(f)
}

// Location returns the time zone the calendar's dates are civil dates in.
func (c *Calendar) Location() *time.Location { return c.loc }

// Covers reports whether the calendar answers for d (From <= d <= To).
func (c *Calendar) Covers(d Date) bool {
	return d.Compare(c.From) >= 0 && d.Compare(c.To) <= 0
}

// IsWorkingDay reports whether d is a working day: a listed make-up working day, or
// a Monday to Friday that is not a listed holiday. For a date the calendar does not
// cover it falls back to Monday to Friday; use Covers, or the deadline functions
// that check coverage, when that matters.
func (c *Calendar) IsWorkingDay(d Date) bool {
	if c.working[d] {
		return true
	}
	if c.holidays[d] {
		return false
	}
	wd := d.Weekday()
	return wd != time.Saturday && wd != time.Sunday
}

// Holidays returns the listed holiday dates in order.
func (c *Calendar) Holidays() []Date { return sortedDates(c.holidays) }

// WorkingDays returns the listed make-up working days in order.
func (c *Calendar) WorkingDays() []Date { return sortedDates(c.working) }

func sortedDates(m map[Date]bool) []Date {
	out := make([]Date, 0, len(m))
	for d := range m {
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Compare(out[j]) < 0 })
	return out
}

// builtinCalendars holds the calendars shipped with Steward, one JSON file each,
// named <name>.json. It is read-only.
//
//go:embed calendars/*.json
var builtinCalendars embed.FS

// BuiltinCalendarNames returns the names of the calendars shipped with Steward, sorted.
func BuiltinCalendarNames() []string {
	entries, err := builtinCalendars.ReadDir("calendars")
	if err != nil {
		return nil
	}
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".json"); ok {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

// BuiltinCalendar returns the shipped calendar with the given name, such as
// "cn-2026" (the State Council's 2026 holiday arrangement for mainland China). It
// returns ENOTFOUND for an unknown name.
func BuiltinCalendar(name string) (*Calendar, error) {
	if name == "" || strings.ContainsAny(name, `/\.`) {
		return nil, Errorf(ENOTFOUND, "There is no built-in calendar named %q.", name)
	}
	data, err := builtinCalendars.ReadFile(path.Join("calendars", name+".json"))
	if err != nil {
		return nil, WrapError(ENOTFOUND, fmt.Sprintf("There is no built-in calendar named %q.", name), err)
	}
	c, err := LoadCalendar(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("steward: built-in calendar %s: %w", name, err)
	}
	if c.Name != name {
		return nil, WrapError(EINTERNAL, "A built-in calendar is misnamed.", fmt.Errorf("file %s.json names itself %q", name, c.Name))
	}
	return c, nil
}
