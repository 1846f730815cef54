package rooms_test

import (
	"fmt"
	"testing"
	"time"

	"patientpass/rooms"
)

// london is a wall-clock time in Europe/London.
func london(t *testing.T, year int, month time.Month, day, hour, minute int) time.Time {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatalf("load Europe/London: %v", err)
	}
	return time.Date(year, month, day, hour, minute, 0, 0, loc)
}

func utc(year int, month time.Month, day, hour, minute int) time.Time {
	return time.Date(year, month, day, hour, minute, 0, 0, time.UTC)
}

func TestTriageDeadlineRoutine(t *testing.T) {
	policy := rooms.MSCC("RET").Triage
	tests := []struct {
		name      string
		submitted time.Time
		// want is the UTC instant: 12:00 London is 11:00Z in summer time
		// and 12:00Z in winter.
		want time.Time
	}{
		{"Friday 16:00 is due Monday 12:00",
			london(t, 2026, time.June, 12, 16, 0), utc(2026, time.June, 15, 11, 0)},
		{"Tuesday 09:00, before noon, is due Wednesday 12:00 not Tuesday",
			london(t, 2026, time.June, 9, 9, 0), utc(2026, time.June, 10, 11, 0)},
		{"Tuesday 00:00 is due Wednesday 12:00",
			london(t, 2026, time.June, 9, 0, 0), utc(2026, time.June, 10, 11, 0)},
		{"Tuesday 23:59 is due Wednesday 12:00",
			london(t, 2026, time.June, 9, 23, 59), utc(2026, time.June, 10, 11, 0)},
		{"Saturday is due Monday 12:00",
			london(t, 2026, time.June, 13, 10, 0), utc(2026, time.June, 15, 11, 0)},
		{"23:30Z on a Monday in summer is already Tuesday in London, so due Wednesday",
			utc(2026, time.June, 1, 23, 30), utc(2026, time.June, 3, 11, 0)},
		{"23:30Z on a Thursday in winter is still Thursday in London, so due Friday",
			utc(2026, time.November, 5, 23, 30), utc(2026, time.November, 6, 12, 0)},

		{"Friday evening before the spring bank holiday is due Tuesday 12:00",
			london(t, 2026, time.May, 22, 19, 0), utc(2026, time.May, 26, 11, 0)},
		{"Sunday evening before the spring bank holiday is due Tuesday 12:00",
			london(t, 2026, time.May, 24, 20, 0), utc(2026, time.May, 26, 11, 0)},
		{"on the spring bank holiday itself is due Tuesday 12:00",
			london(t, 2026, time.May, 25, 10, 0), utc(2026, time.May, 26, 11, 0)},

		{"Friday before the summer bank holiday 2026 is due Tuesday 1 September",
			london(t, 2026, time.August, 28, 16, 0), utc(2026, time.September, 1, 11, 0)},
		{"Maundy Thursday 2026 skips Good Friday and Easter Monday",
			london(t, 2026, time.April, 2, 15, 0), utc(2026, time.April, 7, 11, 0)},
		{"Good Friday 2026 is due the Tuesday after Easter Monday",
			london(t, 2026, time.April, 3, 9, 0), utc(2026, time.April, 7, 11, 0)},
		{"Maundy Thursday 2027 in winter time is due Tuesday in summer time",
			london(t, 2027, time.March, 25, 15, 0), utc(2027, time.March, 30, 11, 0)},
		{"Maundy Thursday 2028 skips Good Friday and Easter Monday",
			london(t, 2028, time.April, 13, 16, 0), utc(2028, time.April, 18, 11, 0)},

		{"Christmas Eve 2026 skips Christmas Friday and the Boxing Day substitute Monday 28th",
			london(t, 2026, time.December, 24, 10, 0), utc(2026, time.December, 29, 12, 0)},
		{"Christmas Eve 2027 skips the substitutes Monday 27th and Tuesday 28th",
			london(t, 2027, time.December, 24, 10, 0), utc(2027, time.December, 29, 12, 0)},
		{"30 December 2027 is due 31 December, a working Friday",
			london(t, 2027, time.December, 30, 16, 0), utc(2027, time.December, 31, 12, 0)},
		{"New Year's Eve 2027 skips the New Year substitute Monday 3 January 2028",
			london(t, 2027, time.December, 31, 10, 0), utc(2028, time.January, 4, 12, 0)},

		{"Friday before 4 May 2020 is due that Monday, whose holiday moved to VE Day",
			london(t, 2020, time.May, 1, 16, 0), utc(2020, time.May, 4, 11, 0)},
		{"the day before VE Day 2020 is due the Monday after",
			london(t, 2020, time.May, 7, 16, 0), utc(2020, time.May, 11, 11, 0)},
		{"Friday before 30 May 2022 is due that Monday, whose holiday moved to 2 June",
			london(t, 2022, time.May, 27, 16, 0), utc(2022, time.May, 30, 11, 0)},
		{"1 June 2022 skips the Spring and Platinum Jubilee holidays",
			london(t, 2022, time.June, 1, 10, 0), utc(2022, time.June, 6, 11, 0)},
		{"Friday before the State Funeral of 19 September 2022 is due Tuesday",
			london(t, 2022, time.September, 16, 10, 0), utc(2022, time.September, 20, 11, 0)},
		{"Friday before the Coronation holiday of 8 May 2023 is due Tuesday",
			london(t, 2023, time.May, 5, 10, 0), utc(2023, time.May, 9, 11, 0)},
		{"Christmas Eve 2021 skips the substitutes Monday 27th and Tuesday 28th",
			london(t, 2021, time.December, 24, 10, 0), utc(2021, time.December, 29, 12, 0)},
		{"New Year's Eve 2021 skips the New Year substitute Monday 3 January 2022",
			london(t, 2021, time.December, 31, 10, 0), utc(2022, time.January, 4, 12, 0)},

		{"Friday before clocks go forward is due Monday 12:00 BST (11:00Z)",
			london(t, 2026, time.March, 27, 16, 0), utc(2026, time.March, 30, 11, 0)},
		{"Friday before clocks go back is due Monday 12:00 GMT (12:00Z)",
			london(t, 2026, time.October, 23, 16, 0), utc(2026, time.October, 26, 12, 0)},
		{"01:30 BST in the repeated hour as clocks go back is due Monday 12:00 GMT",
			utc(2026, time.October, 25, 0, 30), utc(2026, time.October, 26, 12, 0)},
		{"01:30 GMT in the repeated hour as clocks go back is due Monday 12:00 GMT",
			utc(2026, time.October, 25, 1, 30), utc(2026, time.October, 26, 12, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := rooms.TriageDeadline(policy, rooms.PriorityRoutine, tt.submitted)
			if !got.Equal(tt.want) {
				t.Errorf("TriageDeadline(routine, %s) = %s (%s London), want %s (%s London)",
					tt.submitted.Format(time.RFC3339), got.UTC().Format(time.RFC3339), got.In(rooms.London).Format(time.RFC3339),
					tt.want.Format(time.RFC3339), tt.want.In(rooms.London).Format(time.RFC3339))
			}
			if byDefault := rooms.DefaultCalendar().TriageDeadline(policy, rooms.PriorityRoutine, tt.submitted); !byDefault.Equal(got) {
				t.Errorf("DefaultCalendar().TriageDeadline = %s, but TriageDeadline = %s", byDefault.Format(time.RFC3339), got.Format(time.RFC3339))
			}
			var none *rooms.Calendar
			if byNil := none.TriageDeadline(policy, rooms.PriorityRoutine, tt.submitted); !byNil.Equal(got) {
				t.Errorf("a nil Calendar's TriageDeadline = %s, want the default's %s", byNil.Format(time.RFC3339), got.Format(time.RFC3339))
			}
		})
	}
}

func TestTriageDeadlineWindows(t *testing.T) {
	policy := rooms.MSCC("RET").Triage
	tests := []struct {
		name      string
		submitted time.Time
	}{
		{"on a weekday afternoon", london(t, 2026, time.June, 10, 15, 0)},
		{"on a Saturday night", london(t, 2026, time.May, 23, 22, 30)},
		{"on a Sunday", london(t, 2026, time.June, 14, 9, 0)},
		{"on a bank holiday", london(t, 2026, time.May, 25, 10, 0)},
		{"on Christmas Day", london(t, 2026, time.December, 25, 10, 0)},
		{"on Good Friday", london(t, 2027, time.March, 26, 23, 45)},
		{"just before clocks go forward", utc(2026, time.March, 29, 0, 30)},
		{"just before clocks go back", utc(2026, time.October, 24, 23, 0)},
	}
	for _, tt := range tests {
		for _, w := range []struct {
			priority rooms.Priority
			window   time.Duration
		}{{rooms.PriorityEmergency, time.Hour}, {rooms.PriorityUrgent, 4 * time.Hour}} {
			t.Run(fmt.Sprintf("%s is due %s later %s", w.priority, w.window, tt.name), func(t *testing.T) {
				got := rooms.TriageDeadline(policy, w.priority, tt.submitted)
				if elapsed := got.Sub(tt.submitted); elapsed != w.window {
					t.Errorf("TriageDeadline(%s, %s) = %s, %s later; want %s later",
						w.priority, tt.submitted.Format(time.RFC3339), got.Format(time.RFC3339), elapsed, w.window)
				}
			})
		}
	}

	t.Run("the pathway's own policy sets the windows and the routine hour", func(t *testing.T) {
		custom := rooms.TriagePolicy{Emergency: 30 * time.Minute, Urgent: 2 * time.Hour, RoutineHour: 17}
		submitted := london(t, 2026, time.June, 12, 16, 0) // Friday
		if got, want := rooms.TriageDeadline(custom, rooms.PriorityEmergency, submitted), submitted.Add(30*time.Minute); !got.Equal(want) {
			t.Errorf("emergency due %s, want %s", got, want)
		}
		if got, want := rooms.TriageDeadline(custom, rooms.PriorityUrgent, submitted), submitted.Add(2*time.Hour); !got.Equal(want) {
			t.Errorf("urgent due %s, want %s", got, want)
		}
		if got, want := rooms.TriageDeadline(custom, rooms.PriorityRoutine, submitted), utc(2026, time.June, 15, 16, 0); !got.Equal(want) {
			t.Errorf("routine due %s, want %s (17:00 BST Monday)", got, want)
		}
	})
}

// officialBankHolidays are the England and Wales bank holidays as published
// on GOV.UK, including substitute days and one-off holidays, typed in by hand
// so the embedded snapshot is checked against a second copy.
var officialBankHolidays = map[int][]string{
	2018: {"01-01", "03-30", "04-02", "05-07", "05-28", "08-27", "12-25", "12-26"},
	2019: {"01-01", "04-19", "04-22", "05-06", "05-27", "08-26", "12-25", "12-26"},
	2020: {"01-01", "04-10", "04-13", "05-08", "05-25", "08-31", "12-25", "12-28"},
	2021: {"01-01", "04-02", "04-05", "05-03", "05-31", "08-30", "12-27", "12-28"},
	2022: {"01-03", "04-15", "04-18", "05-02", "06-02", "06-03", "08-29", "09-19", "12-26", "12-27"},
	2023: {"01-02", "04-07", "04-10", "05-01", "05-08", "05-29", "08-28", "12-25", "12-26"},
	2024: {"01-01", "03-29", "04-01", "05-06", "05-27", "08-26", "12-25", "12-26"},
	2025: {"01-01", "04-18", "04-21", "05-05", "05-26", "08-25", "12-25", "12-26"},
	2026: {"01-01", "04-03", "04-06", "05-04", "05-25", "08-31", "12-25", "12-28"},
	2027: {"01-01", "03-26", "03-29", "05-03", "05-31", "08-30", "12-27", "12-28"},
	2028: {"01-03", "04-14", "04-17", "05-01", "05-29", "08-28", "12-25", "12-26"},
}

// TestDefaultCalendarMatchesOfficialLists checks every day of each year, so a
// missing holiday and an extra one both fail.
func TestDefaultCalendarMatchesOfficialLists(t *testing.T) {
	cal := rooms.DefaultCalendar()
	for year, days := range officialBankHolidays {
		t.Run(fmt.Sprint(year), func(t *testing.T) {
			want := make(map[string]bool, len(days))
			for _, d := range days {
				want[d] = true
			}
			found := 0
			for d := time.Date(year, time.January, 1, 0, 0, 0, 0, time.UTC); d.Year() == year; d = d.AddDate(0, 0, 1) {
				key := d.Format("01-02")
				got := cal.IsBankHoliday(d)
				if got != want[key] {
					t.Errorf("IsBankHoliday(%s) = %v, want %v", d.Format(time.DateOnly), got, want[key])
				}
				if got {
					found++
				}
			}
			if found != len(days) {
				t.Errorf("%d bank holidays found in %d, want %d", found, year, len(days))
			}
		})
	}
}

func TestCalendarIsBankHoliday(t *testing.T) {
	tests := []struct {
		name  string
		year  int
		month time.Month
		day   int
		want  bool
	}{
		{"New Year's Day 2028 falls on Saturday so is not itself the holiday", 2028, time.January, 1, false},
		{"New Year's Day 2028 is substituted on Monday 3 January", 2028, time.January, 3, true},
		{"Boxing Day 2026 falls on Saturday so is not itself the holiday", 2026, time.December, 26, false},
		{"Boxing Day 2026 is substituted on Monday 28 December", 2026, time.December, 28, true},
		{"Christmas Day 2027 falls on Saturday so is not itself the holiday", 2027, time.December, 25, false},
		{"Christmas 2027 is substituted on Monday 27 December", 2027, time.December, 27, true},
		{"Boxing Day 2027 is substituted on Tuesday 28 December", 2027, time.December, 28, true},
		{"the spring holiday of 30 May 2022 moved to 2 June", 2022, time.May, 30, false},
		{"the early May holiday of 4 May 2020 moved to VE Day", 2020, time.May, 4, false},
		{"Good Friday 2028", 2028, time.April, 14, true},
		{"Easter Monday 2028", 2028, time.April, 17, true},
		{"Easter Sunday is not a bank holiday", 2026, time.April, 5, false},
		{"the Platinum Jubilee holiday of 3 June 2022", 2022, time.June, 3, true},
		{"the State Funeral of 19 September 2022", 2022, time.September, 19, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Midday London on the day; the same day in UTC must agree.
			at := london(t, tt.year, tt.month, tt.day, 12, 0)
			if got := rooms.DefaultCalendar().IsBankHoliday(at); got != tt.want {
				t.Errorf("IsBankHoliday(%s) = %v, want %v", at.Format(time.DateOnly), got, tt.want)
			}
			if got := rooms.DefaultCalendar().IsBankHoliday(at.UTC()); got != tt.want {
				t.Errorf("IsBankHoliday(%s UTC) = %v, want %v", at.UTC().Format(time.DateOnly), got, tt.want)
			}
		})
	}
}

func TestCalendarIsWorkingDay(t *testing.T) {
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"a Wednesday", london(t, 2026, time.June, 10, 12, 0), true},
		{"a Saturday", london(t, 2026, time.June, 13, 12, 0), false},
		{"a Sunday", london(t, 2026, time.June, 14, 12, 0), false},
		{"a bank holiday Monday", london(t, 2026, time.May, 25, 12, 0), false},
		{"the Boxing Day substitute Monday", london(t, 2026, time.December, 28, 12, 0), false},
		{"the Monday after a bank holiday weekend ends", london(t, 2026, time.June, 1, 0, 0), true},
		{"23:30Z on a Sunday is Sunday in UTC", utc(2026, time.June, 7, 23, 30), false},
		{"the same instant is Monday in London", utc(2026, time.June, 7, 23, 30).In(rooms.London), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rooms.DefaultCalendar().IsWorkingDay(tt.at); got != tt.want {
				t.Errorf("IsWorkingDay(%s) = %v, want %v", tt.at.Format(time.RFC3339), got, tt.want)
			}
		})
	}
}

func TestDueStatus(t *testing.T) {
	windows := []struct {
		name      string
		submitted time.Time
		due       time.Time
	}{
		{"urgent, a 4-hour window", utc(2026, time.June, 10, 9, 0), utc(2026, time.June, 10, 13, 0)},
		{"emergency, a 1-hour window", utc(2026, time.June, 10, 9, 0), utc(2026, time.June, 10, 10, 0)},
		{"routine from Friday 16:00 to Monday 12:00", london(t, 2026, time.June, 12, 16, 0), utc(2026, time.June, 15, 11, 0)},
	}
	points := []struct {
		name                  string
		percent               int64
		wantSoon, wantOverdue bool
	}{
		{"just submitted is neither due soon nor overdue", 0, false, false},
		{"at 74% is not yet due soon", 74, false, false},
		{"at 75% is due soon", 75, true, false},
		{"at 99% is due soon", 99, true, false},
		{"at 100% is overdue", 100, false, true},
		{"at 150% is overdue", 150, false, true},
	}
	for _, w := range windows {
		for _, p := range points {
			t.Run(w.name+" "+p.name, func(t *testing.T) {
				now := w.submitted.Add(w.due.Sub(w.submitted) * time.Duration(p.percent) / 100)
				soon, overdue := rooms.DueStatus(w.submitted, w.due, now)
				if soon != p.wantSoon || overdue != p.wantOverdue {
					t.Errorf("DueStatus at %d%% (%s) = soon %v, overdue %v; want soon %v, overdue %v",
						p.percent, now.Format(time.RFC3339), soon, overdue, p.wantSoon, p.wantOverdue)
				}
			})
		}
	}
	t.Run("a nanosecond before 75% is not yet due soon", func(t *testing.T) {
		submitted, due := utc(2026, time.June, 10, 9, 0), utc(2026, time.June, 10, 13, 0)
		if soon, _ := rooms.DueStatus(submitted, due, utc(2026, time.June, 10, 12, 0).Add(-time.Nanosecond)); soon {
			t.Error("due soon a nanosecond before 75% of the window")
		}
	})
	t.Run("a nanosecond before the deadline is not overdue", func(t *testing.T) {
		submitted, due := utc(2026, time.June, 10, 9, 0), utc(2026, time.June, 10, 13, 0)
		if soon, overdue := rooms.DueStatus(submitted, due, due.Add(-time.Nanosecond)); overdue || !soon {
			t.Errorf("DueStatus a nanosecond before the deadline = soon %v, overdue %v; want soon, not overdue", soon, overdue)
		}
	})
}
