package rooms

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"
)

// englandAndWales is the division of the official list whose holidays count
// for triage deadlines; the others (scotland, northern-ireland) are ignored.
const englandAndWales = "england-and-wales"

// maxCalendarBytes bounds an override file: the official list is about
// 60 KB, so anything far larger is the wrong file (or /dev/zero), not a list.
const maxCalendarBytes = 4 << 20

// embeddedBankHolidays is the committed snapshot of GOV.UK's list; where it
// came from and how to refresh it is in holidays/README.md.
//
//go:embed holidays/bank-holidays.json
var embeddedBankHolidays []byte

// Calendar is the England and Wales bank holidays of one list in the shape
// GOV.UK publishes at https://www.gov.uk/bank-holidays.json. It knows the
// years from its first listed holiday to its last; outside them no day is a
// bank holiday, so a deadline there is computed as if none fell.
//
// A Calendar is immutable and safe for concurrent use. A nil *Calendar is
// DefaultCalendar().
type Calendar struct {
	holidays  map[civilDate]string // official title by day
	firstYear int
	lastYear  int
}

// civilDate is a day on the calendar, in no time zone.
type civilDate struct {
	year  int
	month time.Month
	day   int
}

func dateOf(t time.Time) civilDate {
	y, m, d := t.Date()
	return civilDate{y, m, d}
}

var defaultCalendar = sync.OnceValue(func() *Calendar {
	c, err := ParseCalendar(bytes.NewReader(embeddedBankHolidays))
	if err != nil {
		panic("parse the embedded bank holidays: " + err.Error())
	}
	return c
})

// DefaultCalendar returns the calendar of the embedded snapshot of the
// official list, parsed once.
func DefaultCalendar() *Calendar { return defaultCalendar() }

// officialDivision is one division of the GOV.UK file.
type officialDivision struct {
	Division string          `json:"division"`
	Events   []officialEvent `json:"events"`
}

// officialEvent is one bank holiday of the GOV.UK file. Notes ("Substitute
// day") and bunting are kept in the file for people; the calendar needs only
// the date and the title.
type officialEvent struct {
	Title string `json:"title"`
	Date  string `json:"date"`
}

// ParseCalendar reads a list in the official GOV.UK JSON shape and keeps its
// "england-and-wales" division. It refuses a file that is not that shape, has
// no such division or no events in it, has a date that is not YYYY-MM-DD or
// lists a day twice, or skips a whole year between its first and last (every
// year has bank holidays, so a missing one means a truncated list).
func ParseCalendar(r io.Reader) (*Calendar, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxCalendarBytes+1))
	if err != nil {
		return nil, fmt.Errorf("bank holidays: read: %w", err)
	}
	if len(raw) > maxCalendarBytes {
		return nil, fmt.Errorf("bank holidays: larger than %d MiB; the official list is about 60 KB", maxCalendarBytes>>20)
	}
	var divisions map[string]json.RawMessage
	if err := json.Unmarshal(raw, &divisions); err != nil {
		if te := (*json.UnmarshalTypeError)(nil); errors.As(err, &te) {
			return nil, fmt.Errorf("bank holidays: the file is a JSON %s; want the GOV.UK shape, an object of divisions: {%q: {\"division\": …, \"events\": […]}, …}", te.Value, englandAndWales)
		}
		return nil, fmt.Errorf("bank holidays: not valid JSON: %w", err)
	}
	body, ok := divisions[englandAndWales]
	if !ok {
		found := make([]string, 0, len(divisions))
		for name := range divisions {
			found = append(found, fmt.Sprintf("%q", name))
		}
		slices.Sort(found)
		if len(found) == 0 {
			return nil, fmt.Errorf("bank holidays: no %q division; the file is an empty object", englandAndWales)
		}
		return nil, fmt.Errorf("bank holidays: no %q division (found %s)", englandAndWales, strings.Join(found, ", "))
	}
	var div officialDivision
	if err := json.Unmarshal(body, &div); err != nil {
		return nil, fmt.Errorf("bank holidays: division %q is not {\"division\": …, \"events\": [{\"title\", \"date\", …}]}: %w", englandAndWales, err)
	}
	if div.Division != englandAndWales {
		return nil, fmt.Errorf("bank holidays: the %q entry names its division %q", englandAndWales, div.Division)
	}
	if len(div.Events) == 0 {
		return nil, fmt.Errorf("bank holidays: division %q lists no events", englandAndWales)
	}
	c := &Calendar{holidays: make(map[civilDate]string, len(div.Events))}
	for i, e := range div.Events {
		day, err := time.Parse(time.DateOnly, e.Date)
		if err != nil {
			return nil, fmt.Errorf("bank holidays: %s events[%d] (%q): date %q is not a day written YYYY-MM-DD", englandAndWales, i, e.Title, e.Date)
		}
		d := dateOf(day)
		if first, dup := c.holidays[d]; dup {
			return nil, fmt.Errorf("bank holidays: %s events[%d] (%q): %s is listed twice (also as %q)", englandAndWales, i, e.Title, e.Date, first)
		}
		c.holidays[d] = e.Title
		if i == 0 || d.year < c.firstYear {
			c.firstYear = d.year
		}
		if i == 0 || d.year > c.lastYear {
			c.lastYear = d.year
		}
	}
	years := make(map[int]bool, c.lastYear-c.firstYear+1)
	for d := range c.holidays {
		years[d.year] = true
	}
	for y := c.firstYear; y <= c.lastYear; y++ {
		if !years[y] {
			return nil, fmt.Errorf("bank holidays: %s lists nothing in %d, between %d and %d; every year has bank holidays, so the list is incomplete", englandAndWales, y, c.firstYear, c.lastYear)
		}
	}
	return c, nil
}

func (c *Calendar) orDefault() *Calendar {
	if c == nil {
		return DefaultCalendar()
	}
	return c
}

// IsBankHoliday reports whether the calendar day of t, in t's location, is an
// England and Wales bank holiday on the list. No day outside the list's years
// is.
func (c *Calendar) IsBankHoliday(t time.Time) bool {
	_, ok := c.orDefault().holidays[dateOf(t)]
	return ok
}

// IsWorkingDay reports whether the calendar day of t, in t's location, is a
// weekday that is not an England and Wales bank holiday.
func (c *Calendar) IsWorkingDay(t time.Time) bool {
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		return false
	}
	return !c.IsBankHoliday(t)
}

// FirstYear is the year of the list's earliest holiday.
func (c *Calendar) FirstYear() int { return c.orDefault().firstYear }

// LastYear is the year of the list's latest holiday: the last year whose
// holidays are known.
func (c *Calendar) LastYear() int { return c.orDefault().lastYear }

// Covers reports whether the year of t, in t's location, is one the list
// knows the holidays of. A day it does not cover counts as no holiday.
func (c *Calendar) Covers(t time.Time) bool {
	c = c.orDefault()
	y := t.Year()
	return y >= c.firstYear && y <= c.lastYear
}

// End is the first instant the list no longer covers: midnight in Europe/London
// as the year after LastYear begins.
func (c *Calendar) End() time.Time {
	return time.Date(c.LastYear()+1, time.January, 1, 0, 0, 0, 0, London)
}

// RunsOutWithin reports whether, at now, the list ends within ahead or has
// already ended: the time to ship a newer one before deadlines ignore
// holidays.
func (c *Calendar) RunsOutWithin(now time.Time, ahead time.Duration) bool {
	return !now.Add(ahead).Before(c.End())
}
