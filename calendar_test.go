package steward

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCalendarBuiltinCN2026 checks the shipped calendar against the State Council's
// 2026 arrangement (国务院办公厅关于2026年部分节假日安排的通知, 2025-11-04),
// written out here by hand.
func TestCalendarBuiltinCN2026(t *testing.T) {
	c, err := BuiltinCalendar("cn-2026")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "cn-2026" || c.Zone != "Asia/Shanghai" || c.Location().String() != "Asia/Shanghai" {
		t.Errorf("calendar %q in %q", c.Name, c.Zone)
	}
	ds := func(ss ...string) []Date {
		var out []Date
		for _, s := range ss {
			d, err := ParseDate(s)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, d)
		}
		return out
	}
	wantHolidays := ds(
		"2026-01-01", "2026-01-02", "2026-01-03", // New Year
		"2026-02-15", "2026-02-16", "2026-02-17", "2026-02-18", "2026-02-19", "2026-02-20", "2026-02-21", "2026-02-22", "2026-02-23", // Spring Festival
		"2026-04-04", "2026-04-05", "2026-04-06", // Qingming
		"2026-05-01", "2026-05-02", "2026-05-03", "2026-05-04", "2026-05-05", // Labour Day
		"2026-06-19", "2026-06-20", "2026-06-21", // Dragon Boat
		"2026-09-25", "2026-09-26", "2026-09-27", // Mid-Autumn
		"2026-10-01", "2026-10-02", "2026-10-03", "2026-10-04", "2026-10-05", "2026-10-06", "2026-10-07", // National Day
	)
	wantWorking := ds("2026-01-04", "2026-02-14", "2026-02-28", "2026-05-09", "2026-09-20", "2026-10-10")
	if diff := cmp.Diff(wantHolidays, c.Holidays()); diff != "" {
		t.Errorf("holidays (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantWorking, c.WorkingDays()); diff != "" {
		t.Errorf("make-up working days (-want +got):\n%s", diff)
	}
	tests := []struct {
		date string
		want bool
	}{
		{"2026-01-01", false}, // holiday, Thursday
		{"2026-01-04", true},  // make-up working day, Sunday
		{"2026-01-05", true},  // ordinary Monday
		{"2026-01-10", false}, // ordinary Saturday
		{"2026-02-14", true},  // make-up Saturday before Spring Festival
		{"2026-02-23", false}, // last day of Spring Festival, Monday
		{"2026-02-24", true},
		{"2026-09-20", true},  // make-up Sunday
		{"2026-10-07", false}, // National Day, Wednesday
		{"2026-10-08", true},
		{"2026-10-10", true},  // make-up Saturday
		{"2026-10-11", false}, // Sunday
	}
	for _, tt := range tests {
		d, _ := ParseDate(tt.date)
		if got := c.IsWorkingDay(d); got != tt.want {
			t.Errorf("IsWorkingDay(%s) = %v, want %v", tt.date, got, tt.want)
		}
	}
	if !c.Covers(Date{2026, time.January, 1}) || !c.Covers(Date{2026, time.December, 31}) || c.Covers(Date{2027, time.January, 1}) {
		t.Errorf("coverage %s..%s, want the year 2026", c.From, c.To)
	}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadCalendar(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("reloading the marshalled calendar: %v", err)
	}
	if diff := cmp.Diff(c.Holidays(), back.Holidays()); diff != "" || back.Name != c.Name || back.To != c.To {
		t.Errorf("JSON round trip changed the calendar:\n%s", diff)
	}
	if diff := cmp.Diff([]string{"cn-2026"}, BuiltinCalendarNames()); diff != "" {
		t.Errorf("BuiltinCalendarNames (-want +got):\n%s", diff)
	}
}

func TestCalendarBuiltinUnknown(t *testing.T) {
	for _, name := range []string{"", "cn-2099", "../calendars/cn-2026", "cn-2026.json"} {
		if _, err := BuiltinCalendar(name); ErrorCode(err) != ENOTFOUND {
			t.Errorf("BuiltinCalendar(%q) = %v, want ENOTFOUND", name, err)
		}
	}
}

func TestCalendarLoad(t *testing.T) {
	const good = `{"name":"x","zone":"Asia/Shanghai","from":"2026-01-01","to":"2026-12-31",
		"holidays":["2026-10-01/2026-10-07","2026-12-25"],"working_days":["2026-10-10"]}`
	c, err := LoadCalendar(strings.NewReader(good))
	if err != nil {
		t.Fatalf("valid calendar: %v", err)
	}
	if got := len(c.Holidays()); got != 8 {
		t.Errorf("%d holidays, want 8 (a 7-day range and one date)", got)
	}
	tests := []struct {
		name string
		json string
	}{
		{"not JSON", `holidays: []`},
		{"empty", ``},
		{"trailing data", good + `{}`},
		{"unknown key", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holiday":[]}`},
		{"no name", `{"zone":"UTC","from":"2026-01-01","to":"2026-12-31"}`},
		{"no zone", `{"name":"x","from":"2026-01-01","to":"2026-12-31"}`},
		{"unknown zone", `{"name":"x","zone":"Asia/Atlantis","from":"2026-01-01","to":"2026-12-31"}`},
		{"no from", `{"name":"x","zone":"UTC","to":"2026-12-31"}`},
		{"to before from", `{"name":"x","zone":"UTC","from":"2026-12-31","to":"2026-01-01"}`},
		{"bad date", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2026-02-30"]}`},
		{"wrong date shape", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["1/10/2026"]}`},
		{"number as date", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":[20261001]}`},
		{"backwards range", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2026-10-07/2026-10-01"]}`},
		{"half range", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2026-10-01/"]}`},
		{"outside coverage", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2027-01-01"]}`},
		{"range leaves coverage", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2026-12-30/2027-01-02"]}`},
		{"listed twice", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2026-10-01/2026-10-07","2026-10-03"]}`},
		{"holiday and working day", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","holidays":["2026-10-10"],"working_days":["2026-10-10"]}`},
		{"make-up day on a weekday", `{"name":"x","zone":"UTC","from":"2026-01-01","to":"2026-12-31","working_days":["2026-10-12"]}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadCalendar(strings.NewReader(tt.json))
			if got := ErrorCode(err); got != EINVALID {
				t.Errorf("error code %q (%v), want EINVALID", got, err)
			}
		})
	}
}
