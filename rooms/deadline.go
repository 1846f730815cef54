package rooms

import (
	"time"
	_ "time/tzdata" // Europe/London must resolve on machines without a zoneinfo database.
)

// London is the time zone triage deadlines are reckoned in.
var London = mustLoad("Europe/London")

func mustLoad(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("load time zone " + name + ": " + err.Error())
	}
	return loc
}

// TriageDeadline is when a referral of priority submitted at submitted must
// have been triaged under policy: a fixed window for emergency and urgent
// referrals, any day; for routine ones, RoutineHour on the next working day in
// Europe/London (Monday to Friday, not an England and Wales bank holiday).
func TriageDeadline(policy TriagePolicy, priority Priority, submitted time.Time) time.Time {
	switch priority {
	case PriorityEmergency:
		return submitted.Add(policy.Emergency).UTC()
	case PriorityUrgent:
		return submitted.Add(policy.Urgent).UTC()
	}
	local := submitted.In(London)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, London)
	for {
		day = day.AddDate(0, 0, 1)
		if IsWorkingDay(day) {
			break
		}
	}
	return time.Date(day.Year(), day.Month(), day.Day(), policy.RoutineHour, 0, 0, 0, London).UTC()
}

// IsWorkingDay reports whether the calendar day of t (in t's location) is a
// weekday that is not an England and Wales bank holiday.
func IsWorkingDay(t time.Time) bool {
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	return !IsBankHoliday(t.Year(), t.Month(), t.Day())
}

type date struct {
	m time.Month
	d int
}

// specialBankHolidays are one-off England and Wales bank holidays proclaimed
// for a year, and moved ones (the key's regular day is dropped).
var specialBankHolidays = map[int]struct {
	add  []date
	drop []date
}{
	2020: {add: []date{{time.May, 8}}, drop: []date{{time.May, 4}}},                                         // VE Day moved the early May holiday
	2022: {add: []date{{time.June, 2}, {time.June, 3}, {time.September, 19}}, drop: []date{{time.May, 30}}}, // Jubilee; State Funeral
	2023: {add: []date{{time.May, 8}}},                                                                      // Coronation
}

// IsBankHoliday reports whether the date is a bank holiday in England and
// Wales. The regular holidays are computed (with substitute days when
// Christmas, Boxing Day or New Year's Day fall at a weekend); one-off holidays
// are listed in specialBankHolidays and must be added when proclaimed.
func IsBankHoliday(year int, month time.Month, day int) bool {
	want := date{month, day}
	special := specialBankHolidays[year]
	for _, d := range special.add {
		if d == want {
			return true
		}
	}
	for _, d := range special.drop {
		if d == want {
			return false
		}
	}
	for _, d := range regularBankHolidays(year) {
		if d == want {
			return true
		}
	}
	return false
}

func regularBankHolidays(year int) []date {
	easter := easterSunday(year)
	goodFriday := easter.AddDate(0, 0, -2)
	easterMonday := easter.AddDate(0, 0, 1)
	ds := []date{
		substitute(year, time.January, 1),
		{goodFriday.Month(), goodFriday.Day()},
		{easterMonday.Month(), easterMonday.Day()},
		{time.May, firstMonday(year, time.May)},
		{time.May, lastMonday(year, time.May)},
		{time.August, lastMonday(year, time.August)},
	}
	// Christmas and Boxing Day: a weekend day moves to the next weekday not
	// already taken.
	christmas := time.Date(year, time.December, 25, 0, 0, 0, 0, time.UTC)
	switch christmas.Weekday() {
	case time.Friday: // Boxing Day on Saturday moves to Monday 28th.
		ds = append(ds, date{time.December, 25}, date{time.December, 28})
	case time.Saturday:
		ds = append(ds, date{time.December, 27}, date{time.December, 28})
	case time.Sunday:
		ds = append(ds, date{time.December, 26}, date{time.December, 27})
	default:
		ds = append(ds, date{time.December, 25}, date{time.December, 26})
	}
	return ds
}

// substitute moves a fixed holiday falling at a weekend to the Monday after.
func substitute(year int, m time.Month, d int) date {
	t := time.Date(year, m, d, 0, 0, 0, 0, time.UTC)
	switch t.Weekday() {
	case time.Saturday:
		t = t.AddDate(0, 0, 2)
	case time.Sunday:
		t = t.AddDate(0, 0, 1)
	}
	return date{t.Month(), t.Day()}
}

func firstMonday(year int, m time.Month) int {
	t := time.Date(year, m, 1, 0, 0, 0, 0, time.UTC)
	return 1 + (int(time.Monday)-int(t.Weekday())+7)%7
}

func lastMonday(year int, m time.Month) int {
	t := time.Date(year, m+1, 0, 0, 0, 0, 0, time.UTC) // last day of m
	return t.Day() - (int(t.Weekday())-int(time.Monday)+7)%7
}

// easterSunday is the Western Easter date (anonymous Gregorian algorithm).
func easterSunday(year int) time.Time {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, time.UTC)
}

// DueStatus tells how a referral on the triage clock stands against its
// deadline at now: due soon from 75% of the window, overdue past it.
func DueStatus(submitted, due, now time.Time) (dueSoon, overdue bool) {
	if now.After(due) || now.Equal(due) {
		return false, true
	}
	threshold := submitted.Add(due.Sub(submitted) * 3 / 4)
	return !now.Before(threshold), false
}
