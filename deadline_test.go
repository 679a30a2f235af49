package steward

import (
	"encoding/json"
	"testing"
	"time"
	_ "time/tzdata" // zone rules in the test binary, so results never depend on the host

	"github.com/google/go-cmp/cmp"
)

func TestDeadlineDueDate(t *testing.T) {
	shanghai := mustLoc(t, "Asia/Shanghai")
	berlin := mustLoc(t, "Europe/Berlin")
	cn, err := BuiltinCalendar("cn-2026")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		received time.Time
		rule     DeadlineRule
		wantDate string
		wantEnd  time.Time // the last instant of the due day, in UTC
	}{
		{
			// 00:30 on 1 May in Shanghai is still 30 April in UTC; the legal zone's
			// date counts, so 1 May + 15 days.
			name:     "Shanghai 15 calendar days, received just after local midnight",
			received: time.Date(2026, 4, 30, 16, 30, 0, 0, time.UTC),
			rule:     DeadlineRule{Days: 15, Location: shanghai},
			wantDate: "2026-05-16",
			wantEnd:  time.Date(2026, 5, 16, 15, 59, 59, 999999000, time.UTC),
		},
		{
			// Berlin leaves summer time on 2026-10-25. Adding 15×24h to the instant
			// would land on 3 November 23:30 CET; civil-date arithmetic gives 4 November.
			name:     "Berlin 15 calendar days across the end of summer time",
			received: time.Date(2026, 10, 20, 0, 30, 0, 0, time.FixedZone("CEST", 2*3600)),
			rule:     DeadlineRule{Days: 15, Location: berlin},
			wantDate: "2026-11-04",
			wantEnd:  time.Date(2026, 11, 4, 22, 59, 59, 999999000, time.UTC), // 23:59:59.999999 CET (UTC+1)
		},
		{
			// Received 2026-09-30 00:30 Shanghai (still 29 September in UTC).
			// Counted by hand from cn-2026.json, receipt day excluded:
			// 1–7 Oct National Day holiday; Oct 8 (Thu) 1, 9 (Fri) 2,
			// 10 (Sat, make-up working day) 3, 11 (Sun) no, 12–16 (Mon–Fri) 4–8,
			// 17–18 weekend, 19–23 9–13, 24–25 weekend, 26 (Mon) 14, 27 (Tue) 15.
			name:     "Shanghai 15 working days over National Day",
			received: time.Date(2026, 9, 29, 16, 30, 0, 0, time.UTC),
			rule:     DeadlineRule{Days: 15, WorkingDays: true, Location: shanghai},
			wantDate: "2026-10-27",
			wantEnd:  time.Date(2026, 10, 27, 15, 59, 59, 999999000, time.UTC),
		},
		{
			// Received Fri 2026-09-18 10:00 Shanghai. By hand: 19 (Sat) no,
			// 20 (Sun, make-up) 1, 21–24 2–5, 25–27 Mid-Autumn holiday, 28–30 6–8,
			// 1–7 Oct holiday, 8 9, 9 10, 10 (Sat, make-up) 11, 12–15 12–15.
			name:     "Shanghai 15 working days over Mid-Autumn and National Day",
			received: time.Date(2026, 9, 18, 2, 0, 0, 0, time.UTC),
			rule:     DeadlineRule{Days: 15, WorkingDays: true, Location: shanghai},
			wantDate: "2026-10-15",
			wantEnd:  time.Date(2026, 10, 15, 15, 59, 59, 999999000, time.UTC),
		},
		{
			// Received Fri 2026-02-13. By hand: 14 (Sat, make-up) 1,
			// 15–23 Spring Festival, 24 (Tue) 2, 25 (Wed) 3.
			name:     "Shanghai 3 working days over Spring Festival",
			received: time.Date(2026, 2, 13, 1, 0, 0, 0, time.UTC),
			rule:     DeadlineRule{Days: 3, WorkingDays: true, Location: shanghai},
			wantDate: "2026-02-25",
			wantEnd:  time.Date(2026, 2, 25, 15, 59, 59, 999999000, time.UTC),
		},
		{
			name:     "calendar days ignore holidays",
			received: time.Date(2026, 9, 29, 16, 30, 0, 0, time.UTC),
			rule:     DeadlineRule{Days: 15, Location: shanghai},
			wantDate: "2026-10-15",
			wantEnd:  time.Date(2026, 10, 15, 15, 59, 59, 999999000, time.UTC),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotDate, gotEnd, err := DueDate(tt.received, tt.rule, cn)
			if err != nil {
				t.Fatal(err)
			}
			if gotDate.String() != tt.wantDate {
				t.Errorf("due date %s, want %s", gotDate, tt.wantDate)
			}
			if !gotEnd.Equal(tt.wantEnd) {
				t.Errorf("due end %s, want %s", gotEnd.UTC(), tt.wantEnd)
			}
			if gotEnd.Location() != tt.rule.Location {
				t.Errorf("due end in %s, want the legal zone %s", gotEnd.Location(), tt.rule.Location)
			}
		})
	}
}

func TestDeadlineErrors(t *testing.T) {
	shanghai := mustLoc(t, "Asia/Shanghai")
	cn, err := BuiltinCalendar("cn-2026")
	if err != nil {
		t.Fatal(err)
	}
	recv := time.Date(2026, 6, 1, 2, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		received time.Time
		rule     DeadlineRule
		cal      *Calendar
	}{
		{"zero days", recv, DeadlineRule{Days: 0, Location: shanghai}, nil},
		{"negative days", recv, DeadlineRule{Days: -3, Location: shanghai}, nil},
		{"no zone", recv, DeadlineRule{Days: 15}, nil},
		{"working days without calendar", recv, DeadlineRule{Days: 15, WorkingDays: true, Location: shanghai}, nil},
		{"calendar of another zone", recv, DeadlineRule{Days: 15, WorkingDays: true, Location: mustLoc(t, "Europe/Berlin")}, cn},
		{"count runs past the calendar", time.Date(2026, 12, 20, 2, 0, 0, 0, time.UTC), DeadlineRule{Days: 15, WorkingDays: true, Location: shanghai}, cn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := DueDate(tt.received, tt.rule, tt.cal)
			if got := ErrorCode(err); got != EINVALID {
				t.Errorf("error code %q (%v), want EINVALID", got, err)
			}
		})
	}
}

func TestDeadlineExtendDue(t *testing.T) {
	shanghai := mustLoc(t, "Asia/Shanghai")
	cn, err := BuiltinCalendar("cn-2026")
	if err != nil {
		t.Fatal(err)
	}
	// From 30 Sep, 5 working days: Oct 8, 9, 10 (make-up), 12, 13.
	got, end, err := ExtendDue(Date{2026, time.September, 30}, DeadlineRule{Days: 5, WorkingDays: true, Location: shanghai}, cn)
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != "2026-10-13" || !end.Equal(time.Date(2026, 10, 13, 15, 59, 59, 999999000, time.UTC)) {
		t.Errorf("ExtendDue = %s, %s; want 2026-10-13 end of day Shanghai", got, end)
	}
	if _, _, err := ExtendDue(Date{}, DeadlineRule{Days: 5, Location: shanghai}, nil); ErrorCode(err) != EINVALID {
		t.Errorf("extending no date: %v, want EINVALID", err)
	}
}

func TestDeadlineDueSoonOverdue(t *testing.T) {
	due := time.Date(2026, 5, 16, 15, 59, 59, 999999000, time.UTC)
	tests := []struct {
		name              string
		now               time.Time
		within            time.Duration
		wantSoon, wantDue bool
	}{
		{"days ahead", due.Add(-72 * time.Hour), 48 * time.Hour, false, false},
		{"inside the warning window", due.Add(-24 * time.Hour), 48 * time.Hour, true, false},
		{"exactly at the window edge", due.Add(-48 * time.Hour), 48 * time.Hour, true, false},
		{"last instant of the due day", due, 48 * time.Hour, true, false},
		{"one microsecond later", due.Add(time.Microsecond), 48 * time.Hour, false, true},
		{"long after", due.Add(30 * 24 * time.Hour), 48 * time.Hour, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DueSoon(due, tt.now, tt.within); got != tt.wantSoon {
				t.Errorf("DueSoon = %v, want %v", got, tt.wantSoon)
			}
			if got := Overdue(due, tt.now); got != tt.wantDue {
				t.Errorf("Overdue = %v, want %v", got, tt.wantDue)
			}
		})
	}
	if Overdue(time.Time{}, due) || DueSoon(time.Time{}, due, time.Hour) {
		t.Error("a zero deadline is neither due soon nor overdue")
	}
}

func TestDeadlineRuleJSON(t *testing.T) {
	rule := DeadlineRule{Days: 15, WorkingDays: true, Location: mustLoc(t, "Asia/Shanghai")}
	b, err := json.Marshal(rule)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"days":15,"working_days":true,"zone":"Asia/Shanghai"}`; got != want {
		t.Errorf("JSON %s, want %s", got, want)
	}
	var back DeadlineRule
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Days != 15 || !back.WorkingDays || back.Location.String() != "Asia/Shanghai" {
		t.Errorf("round trip = %v", back)
	}
	for _, bad := range []string{`{"days":15,"zone":"Mars/Olympus"}`, `{"days":15}`, `[]`} {
		if err := json.Unmarshal([]byte(bad), &back); ErrorCode(err) != EINVALID {
			t.Errorf("Unmarshal(%s) = %v, want EINVALID", bad, err)
		}
	}
}

func TestDeadlineDate(t *testing.T) {
	d := Date{2026, time.December, 31}
	if got := d.AddDays(1).String(); got != "2027-01-01" {
		t.Errorf("AddDays(1) = %s", got)
	}
	if got := (Date{2028, time.February, 28}).AddDays(1).String(); got != "2028-02-29" {
		t.Errorf("leap day = %s", got)
	}
	if got := d.Weekday(); got != time.Thursday {
		t.Errorf("2026-12-31 is a %s, want Thursday", got)
	}
	type wrap struct {
		Due  Date `json:"due"`
		None Date `json:"none"`
	}
	b, err := json.Marshal(wrap{Due: d})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), `{"due":"2026-12-31","none":null}`; got != want {
		t.Errorf("JSON %s, want %s", got, want)
	}
	var back wrap
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(wrap{Due: d}, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, bad := range []string{"2026-02-30", "2026-5-1", "16/05/2026", ""} {
		if _, err := ParseDate(bad); ErrorCode(err) != EINVALID {
			t.Errorf("ParseDate(%q) = %v, want EINVALID", bad, err)
		}
	}
	if err := json.Unmarshal([]byte(`{"due":20261231}`), &back); ErrorCode(err) != EINVALID {
		t.Errorf("numeric date: %v, want EINVALID", err)
	}
}
