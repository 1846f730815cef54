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
// have been triaged under policy, by the default calendar: see
// [Calendar.TriageDeadline].
func TriageDeadline(policy TriagePolicy, priority Priority, submitted time.Time) time.Time {
	return DefaultCalendar().TriageDeadline(policy, priority, submitted)
}

// TriageDeadline is when a referral of priority submitted at submitted must
// have been triaged under policy: a fixed window for emergency and urgent
// referrals, any day; for routine ones, RoutineHour on the next working day in
// Europe/London (Monday to Friday, not an England and Wales bank holiday on
// c). A day beyond the years c covers counts as no holiday.
func (c *Calendar) TriageDeadline(policy TriagePolicy, priority Priority, submitted time.Time) time.Time {
	switch priority {
	case PriorityEmergency:
		return submitted.Add(policy.Emergency).UTC()
	case PriorityUrgent:
		return submitted.Add(policy.Urgent).UTC()
	}
	c = c.orDefault()
	local := submitted.In(London)
	day := time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, London)
	for {
		day = day.AddDate(0, 0, 1)
		if c.IsWorkingDay(day) {
			break
		}
	}
	return time.Date(day.Year(), day.Month(), day.Day(), policy.RoutineHour, 0, 0, 0, London).UTC()
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
