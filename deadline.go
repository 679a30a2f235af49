package steward

import (
	"encoding/json"
	"fmt"
	"time"
)

// DeadlineRule says how long Steward has to answer a rights request: Days calendar
// days, or Days working days when WorkingDays is set, counted on civil dates in the
// legal time zone Location. The seed policy promises a reply within 15 days (policy
// §6, and §10 for complaints); GB/T 35273-2020 §8.7 allows 30 days or the period
// set by law; the declaration chooses. JSON form:
// {"days":15,"working_days":false,"zone":"Asia/Shanghai"}.
type DeadlineRule struct {
	Days        int
	WorkingDays bool
	Location    *time.Location
}

type deadlineRuleJSON struct {
	Days        int    `json:"days"`
	WorkingDays bool   `json:"working_days"`
	Zone        string `json:"zone"`
}

// MarshalJSON encodes the rule with its zone as an IANA name.
func (r DeadlineRule) MarshalJSON() ([]byte, error) {
	j := deadlineRuleJSON{Days: r.Days, WorkingDays: r.WorkingDays}
	if r.Location != nil {
		j.Zone = r.Location.String()
	}
	return json.Marshal(j)
}

// UnmarshalJSON decodes the rule; an unknown zone is EINVALID.
func (r *DeadlineRule) UnmarshalJSON(b []byte) error {
	var j deadlineRuleJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return WrapError(EINVALID, "A deadline rule must be {\"days\":N,\"working_days\":bool,\"zone\":\"Area/City\"}.", err)
	}
	loc, err := time.LoadLocation(j.Zone)
	if err != nil || j.Zone == "" {
		return WrapError(EINVALID, "A deadline rule needs a known IANA time zone.", err)
	}
	*r = DeadlineRule{Days: j.Days, WorkingDays: j.WorkingDays, Location: loc}
	return nil
}

// Validate returns EINVALID unless the rule has at least one day and a location.
func (r DeadlineRule) Validate() error {
	if r.Days < 1 {
		return Errorf(EINVALID, "A deadline must be at least one day, not %d.", r.Days)
	}
	if r.Location == nil {
		return Errorf(EINVALID, "A deadline needs the legal time zone it is counted in.")
	}
	return nil
}

// DueDate returns the day a request received at the instant received must be
// answered by, and the last instant of that day in the rule's zone (23:59:59.999999
// local time). The due date is fixed at receipt: received is converted to the legal
// zone, its civil date taken, and rule.Days calendar days added, or, for a
// working-day rule, the rule.Days-th working day after that date found in cal
// (weekends and holidays skipped, make-up working days counted). The day of receipt
// never counts. Calendar-day deadlines ignore cal and do not move when the zone
// changes to or from daylight saving time.
//
// It returns EINVALID for an invalid rule, a working-day rule without a calendar, a
// calendar kept in another zone than the rule's, or a count that runs past the dates
// the calendar covers.
func DueDate(received time.Time, rule DeadlineRule, cal *Calendar) (Date, time.Time, error) {
	if err := rule.Validate(); err != nil {
		return Date{}, time.Time{}, err
	}
	return addDeadlineDays(DateOf(received.In(rule.Location)), rule, cal)
}

// ExtendDue returns the new due date and its last instant when a deadline that fell
// on due is extended by ext: ext.Days calendar or working days counted from due,
// with the same errors as DueDate. Whether an extension is allowed at all is the
// declaration's choice (the seed policy states none); Request.Extend allows one.
func ExtendDue(due Date, ext DeadlineRule, cal *Calendar) (Date, time.Time, error) {
	if err := ext.Validate(); err != nil {
		return Date{}, time.Time{}, err
	}
	if due.IsZero() {
		return Date{}, time.Time{}, Errorf(EINVALID, "There is no due date to extend.")
	}
	return addDeadlineDays(due, ext, cal)
}

func addDeadlineDays(start Date, rule DeadlineRule, cal *Calendar) (Date, time.Time, error) {
	if !rule.WorkingDays {
		due := start.AddDays(rule.Days)
		return due, due.End(rule.Location), nil
	}
	if cal == nil {
		return Date{}, time.Time{}, Errorf(EINVALID, "A deadline in working days needs a working-day calendar.")
	}
	if cal.Zone != rule.Location.String() {
		return Date{}, time.Time{}, Errorf(EINVALID, "Calendar %s is kept in %s but the deadline is counted in %s.", cal.Name, cal.Zone, rule.Location)
	}
	d := start
	for n := 0; n < rule.Days; {
		d = d.AddDays(1)
		if !cal.Covers(d) {
			return Date{}, time.Time{}, Errorf(EINVALID, "Calendar %s does not cover %s; load the calendar for that year.", cal.Name, d)
		}
		if cal.IsWorkingDay(d) {
			n++
		}
	}
	return d, d.End(rule.Location), nil
}

// Overdue reports whether now is past due, the last instant of the due day as
// returned by DueDate. A zero due (no deadline yet) is never overdue.
func Overdue(due, now time.Time) bool {
	return !due.IsZero() && now.After(due)
}

// DueSoon reports whether a deadline that is not yet overdue falls within the
// duration within from now (due - now <= within), so the request queue can warn
// staff before the promised reply date (policy §6: 15 days).
func DueSoon(due, now time.Time, within time.Duration) bool {
	return !due.IsZero() && !Overdue(due, now) && due.Sub(now) <= within
}

// String returns the rule as "15 calendar days in Asia/Shanghai".
func (r DeadlineRule) String() string {
	kind := "calendar"
	if r.WorkingDays {
		kind = "working"
	}
	zone := "no zone"
	if r.Location != nil {
		zone = r.Location.String()
	}
	return fmt.Sprintf("%d %s days in %s", r.Days, kind, zone)
}
