package rooms_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"patientpass/rooms"
)

// snapshotEvent is one event of the embedded file, read here on its own so
// the test does not trust the parser it checks.
type snapshotEvent struct {
	Title   string `json:"title"`
	Date    string `json:"date"`
	Notes   string `json:"notes"`
	Bunting bool   `json:"bunting"`
}

func readSnapshot(t *testing.T) []snapshotEvent {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("holidays", "bank-holidays.json"))
	if err != nil {
		t.Fatalf("read the embedded list: %v", err)
	}
	var file map[string]struct {
		Division string          `json:"division"`
		Events   []snapshotEvent `json:"events"`
	}
	if err := json.Unmarshal(raw, &file); err != nil {
		t.Fatalf("decode the embedded list: %v", err)
	}
	div, ok := file["england-and-wales"]
	if !ok || div.Division != "england-and-wales" {
		t.Fatalf("the embedded list has no england-and-wales division")
	}
	return div.Events
}

func TestDefaultCalendarHasEveryListedDay(t *testing.T) {
	cal := rooms.DefaultCalendar()
	events := readSnapshot(t)
	if len(events) < 11*8 {
		t.Fatalf("the embedded list has %d england-and-wales events, want at least 8 a year for 2018–2028", len(events))
	}
	for _, e := range events {
		t.Run(e.Date+" "+e.Title, func(t *testing.T) {
			day, err := time.ParseInLocation(time.DateOnly, e.Date, rooms.London)
			if err != nil {
				t.Fatalf("date %q: %v", e.Date, err)
			}
			for _, at := range []time.Time{day, day.Add(12 * time.Hour), day.Add(23*time.Hour + 59*time.Minute)} {
				if !cal.IsBankHoliday(at) {
					t.Errorf("IsBankHoliday(%s) = false", at.Format(time.RFC3339))
				}
				if cal.IsWorkingDay(at) {
					t.Errorf("IsWorkingDay(%s) = true", at.Format(time.RFC3339))
				}
			}
		})
	}
}

// TestSnapshotHasTheOfficialEntries checks the embedded file itself: the years
// it must span, and the one-off and substitute days with GOV.UK's own titles
// and notes, so a list rebuilt by hand (or from rules) would be caught.
func TestSnapshotHasTheOfficialEntries(t *testing.T) {
	cal := rooms.DefaultCalendar()
	if cal.FirstYear() > 2018 {
		t.Errorf("the embedded list starts in %d, want 2018 or before", cal.FirstYear())
	}
	if cal.LastYear() < 2028 {
		t.Errorf("the embedded list ends in %d, want 2028 or later", cal.LastYear())
	}
	byDate := map[string]snapshotEvent{}
	for _, e := range readSnapshot(t) {
		byDate[e.Date] = e
	}
	want := []snapshotEvent{
		{"Early May bank holiday (VE day)", "2020-05-08", "", true},
		{"Boxing Day", "2020-12-28", "Substitute day", true},
		{"Christmas Day", "2021-12-27", "Substitute day", true},
		{"Boxing Day", "2021-12-28", "Substitute day", true},
		{"New Year’s Day", "2022-01-03", "Substitute day", true},
		{"Spring bank holiday", "2022-06-02", "", true},
		{"Platinum Jubilee bank holiday", "2022-06-03", "", true},
		{"Bank Holiday for the State Funeral of Queen Elizabeth II", "2022-09-19", "", false},
		{"Christmas Day", "2022-12-27", "Substitute day", true},
		{"New Year’s Day", "2023-01-02", "Substitute day", true},
		{"Bank holiday for the coronation of King Charles III", "2023-05-08", "", true},
		{"Boxing Day", "2026-12-28", "Substitute day", true},
		{"Christmas Day", "2027-12-27", "Substitute day", true},
		{"Boxing Day", "2027-12-28", "Substitute day", true},
		{"New Year’s Day", "2028-01-03", "Substitute day", true},
	}
	for _, w := range want {
		t.Run(w.Date+" "+w.Title, func(t *testing.T) {
			got, ok := byDate[w.Date]
			if !ok {
				t.Fatalf("%s is not in the embedded list", w.Date)
			}
			if got != w {
				t.Errorf("%s is listed as %+v, want %+v", w.Date, got, w)
			}
		})
	}
	for _, moved := range []string{"2020-05-04", "2022-05-30"} {
		if _, ok := byDate[moved]; ok {
			t.Errorf("%s is listed, but its holiday was moved", moved)
		}
	}
}

func TestCalendarCovers(t *testing.T) {
	cal := rooms.DefaultCalendar()
	last, first := cal.LastYear(), cal.FirstYear()
	tests := []struct {
		name string
		at   time.Time
		want bool
	}{
		{"a day in 2018", london(t, 2018, time.June, 1, 12, 0), true},
		{"today's year", london(t, 2026, time.December, 1, 12, 0), true},
		{"the last minute of the last year", london(t, last, time.December, 31, 23, 59), true},
		{"the first minute after the last year", london(t, last+1, time.January, 1, 0, 0), false},
		{"years after the last", london(t, last+5, time.July, 1, 12, 0), false},
		{"the year before the first", london(t, first-1, time.July, 1, 12, 0), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cal.Covers(tt.at); got != tt.want {
				t.Errorf("Covers(%s) = %v, want %v (list %d–%d)", tt.at.Format(time.RFC3339), got, tt.want, first, last)
			}
		})
	}
	if want := time.Date(last+1, time.January, 1, 0, 0, 0, 0, rooms.London); !cal.End().Equal(want) {
		t.Errorf("End() = %s, want %s", cal.End(), want)
	}
}

// TestBeyondTheSnapshot shows that past the list's last year every weekday is
// a working day: what would be a holiday is not known, so none is assumed.
func TestBeyondTheSnapshot(t *testing.T) {
	cal := rooms.DefaultCalendar()
	year := cal.LastYear() + 1
	for _, day := range []time.Time{
		london(t, year, time.January, 1, 12, 0),   // New Year's Day, or a weekend
		london(t, year, time.December, 25, 12, 0), // Christmas Day, or a weekend
		london(t, year, time.December, 26, 12, 0), // Boxing Day, or a weekend
		london(t, year, time.May, 1, 12, 0),       // perhaps the early May holiday
	} {
		weekend := day.Weekday() == time.Saturday || day.Weekday() == time.Sunday
		t.Run(day.Format("Mon 2 January 2006"), func(t *testing.T) {
			if cal.IsBankHoliday(day) {
				t.Errorf("IsBankHoliday(%s) = true beyond the list", day.Format(time.DateOnly))
			}
			if got := cal.IsWorkingDay(day); got != !weekend {
				t.Errorf("IsWorkingDay(%s) = %v, want %v", day.Format(time.DateOnly), got, !weekend)
			}
		})
	}

	// A list that ends in 2026 knows nothing of Easter 2027.
	short := parseCalendar(t, officialList(
		event("Good Friday", "2026-04-03"),
		event("Easter Monday", "2026-04-06"),
	))
	policy := rooms.MSCC("RET").Triage
	thursday := london(t, 2027, time.March, 25, 15, 0)
	if got, want := short.TriageDeadline(policy, rooms.PriorityRoutine, thursday), utc(2027, time.March, 26, 12, 0); !got.Equal(want) {
		t.Errorf("beyond a list ending in 2026, Maundy Thursday 2027 is due %s, want Good Friday %s", got, want)
	}
	if got, want := short.TriageDeadline(policy, rooms.PriorityRoutine, london(t, 2026, time.April, 2, 15, 0)), utc(2026, time.April, 7, 11, 0); !got.Equal(want) {
		t.Errorf("within the list, Maundy Thursday 2026 is due %s, want Tuesday %s", got, want)
	}
}

func TestNilCalendarIsTheDefault(t *testing.T) {
	var none *rooms.Calendar
	def := rooms.DefaultCalendar()
	if none.LastYear() != def.LastYear() || none.FirstYear() != def.FirstYear() {
		t.Errorf("nil calendar spans %d–%d, the default %d–%d", none.FirstYear(), none.LastYear(), def.FirstYear(), def.LastYear())
	}
	day := london(t, 2026, time.August, 31, 12, 0)
	if !none.IsBankHoliday(day) || none.IsWorkingDay(day) {
		t.Error("nil calendar does not know the summer bank holiday 2026")
	}
	if !none.Covers(day) {
		t.Error("nil calendar does not cover 2026")
	}
	if rooms.DefaultCalendar() != def {
		t.Error("DefaultCalendar returned a different calendar the second time")
	}
}

func TestOverrideFileReplacesTheEmbeddedList(t *testing.T) {
	// An imagined list: a one-off Wednesday holiday, and no summer bank
	// holiday, so a calendar that merged with the embedded one would fail.
	path := filepath.Join(t.TempDir(), "bank-holidays.json")
	list := officialList(
		event("New Year’s Day", "2026-01-01"),
		event("Extra bank holiday", "2026-06-10"),
		event("Christmas Day", "2026-12-25"),
		event("Boxing Day", "2026-12-28"),
		event("New Year’s Day", "2027-01-01"),
	)
	if err := os.WriteFile(path, []byte(list), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cal, err := rooms.ParseCalendar(f)
	if err != nil {
		t.Fatalf("ParseCalendar(%s): %v", path, err)
	}
	if cal.FirstYear() != 2026 || cal.LastYear() != 2027 {
		t.Errorf("the override spans %d–%d, want 2026–2027", cal.FirstYear(), cal.LastYear())
	}
	tests := []struct {
		name    string
		at      time.Time
		holiday bool
	}{
		{"its own one-off is a holiday", london(t, 2026, time.June, 10, 12, 0), true},
		{"the embedded summer bank holiday is not", london(t, 2026, time.August, 31, 12, 0), false},
		{"the embedded Good Friday is not", london(t, 2026, time.April, 3, 12, 0), false},
		{"its Boxing Day substitute is", london(t, 2026, time.December, 28, 12, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cal.IsBankHoliday(tt.at); got != tt.holiday {
				t.Errorf("IsBankHoliday(%s) = %v, want %v", tt.at.Format(time.DateOnly), got, tt.holiday)
			}
		})
	}
	policy := rooms.MSCC("RET").Triage
	if got, want := cal.TriageDeadline(policy, rooms.PriorityRoutine, london(t, 2026, time.June, 9, 16, 0)), utc(2026, time.June, 11, 11, 0); !got.Equal(want) {
		t.Errorf("Tuesday before the override's Wednesday holiday is due %s, want Thursday %s", got, want)
	}
	if got, want := cal.TriageDeadline(policy, rooms.PriorityRoutine, london(t, 2026, time.August, 28, 16, 0)), utc(2026, time.August, 31, 11, 0); !got.Equal(want) {
		t.Errorf("under the override, Friday 28 August is due %s, want Monday 31 August %s", got, want)
	}
}

func TestParseCalendarRefusesMalformedFiles(t *testing.T) {
	tests := []struct {
		name string
		file string
		want string // part of the error that names what is wrong
	}{
		{"an empty file", "", "not valid JSON"},
		{"not JSON", "bank holidays: 1 Jan", "not valid JSON"},
		{"truncated JSON", `{"england-and-wales": {"division": "england-and-wales", "events": [`, "not valid JSON"},
		{"a bare list of events", `[{"title": "Christmas Day", "date": "2026-12-25"}]`, "the file is a JSON array"},
		{"an empty object", `{}`, `no "england-and-wales" division; the file is an empty object`},
		{"only the other divisions", `{"scotland": {"division": "scotland", "events": []}, "northern-ireland": {"division": "northern-ireland", "events": []}}`,
			`no "england-and-wales" division (found "northern-ireland", "scotland")`},
		{"a division that is not an object", `{"england-and-wales": ["2026-12-25"]}`, `division "england-and-wales" is not {"division"`},
		{"events that are not a list", `{"england-and-wales": {"division": "england-and-wales", "events": {"date": "2026-12-25"}}}`, `division "england-and-wales" is not`},
		{"another division's list under the name", `{"england-and-wales": {"division": "scotland", "events": [{"title": "St Andrew’s Day", "date": "2026-11-30"}]}}`,
			`the "england-and-wales" entry names its division "scotland"`},
		{"no events", `{"england-and-wales": {"division": "england-and-wales", "events": []}}`, `division "england-and-wales" lists no events`},
		{"no events key", `{"england-and-wales": {"division": "england-and-wales"}}`, `division "england-and-wales" lists no events`},
		{"a day-first date", officialList(event("Christmas Day", "25/12/2026")), `events[0] ("Christmas Day"): date "25/12/2026" is not a day written YYYY-MM-DD`},
		{"a thirteenth month", officialList(event("Christmas Day", "2026-12-25"), event("Odd", "2026-13-01")), `events[1] ("Odd"): date "2026-13-01" is not a day`},
		{"30 February", officialList(event("Odd", "2026-02-30")), `date "2026-02-30" is not a day`},
		{"an unpadded date", officialList(event("New Year’s Day", "2026-1-1")), `date "2026-1-1" is not a day`},
		{"a date with a time", officialList(event("Christmas Day", "2026-12-25T00:00:00Z")), `date "2026-12-25T00:00:00Z" is not a day`},
		{"no date", `{"england-and-wales": {"division": "england-and-wales", "events": [{"title": "Christmas Day"}]}}`, `events[0] ("Christmas Day"): date "" is not a day`},
		{"a day listed twice", officialList(event("Christmas Day", "2026-12-25"), event("Boxing Day", "2026-12-25")),
			`events[1] ("Boxing Day"): 2026-12-25 is listed twice (also as "Christmas Day")`},
		{"a year missing in the middle", officialList(event("Christmas Day", "2025-12-25"), event("Christmas Day", "2027-12-27")),
			"lists nothing in 2026, between 2025 and 2027"},
		{"a file far larger than the list", `{"england-and-wales": ` + strings.Repeat(" ", 5<<20) + `}`, "larger than 4 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cal, err := rooms.ParseCalendar(strings.NewReader(tt.file))
			if err == nil {
				t.Fatalf("ParseCalendar accepted it (spanning %d–%d)", cal.FirstYear(), cal.LastYear())
			}
			if !strings.HasPrefix(err.Error(), "bank holidays: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to start \"bank holidays: \" and say %q", err, tt.want)
			}
		})
	}

	t.Run("the official shape with extra fields and divisions is accepted", func(t *testing.T) {
		file := `{"_comment": "kept by hand", "scotland": {"division": "scotland", "events": []},
			"england-and-wales": {"division": "england-and-wales", "extra": 1,
			"events": [{"title": "Christmas Day", "date": "2026-12-25", "notes": "", "bunting": true, "colour": "red"}]}}`
		cal, err := rooms.ParseCalendar(strings.NewReader(file))
		if err != nil {
			t.Fatalf("ParseCalendar: %v", err)
		}
		if !cal.IsBankHoliday(london(t, 2026, time.December, 25, 12, 0)) {
			t.Error("Christmas Day 2026 is not a holiday")
		}
	})
}

func TestCalendarRunsOutWithin(t *testing.T) {
	// This list ends with 2026, so it covers nothing from midnight GMT on
	// 1 January 2027.
	cal := parseCalendar(t, officialList(event("Christmas Day", "2026-12-25")))
	const ahead = 60 * 24 * time.Hour
	tests := []struct {
		name string
		now  time.Time
		want bool
	}{
		{"in midsummer of the last year", utc(2026, time.July, 1, 12, 0), false},
		{"just over 60 days before the end", utc(2026, time.November, 1, 23, 59), false},
		{"exactly 60 days before the end", utc(2026, time.November, 2, 0, 0), true},
		{"on the last day", utc(2026, time.December, 31, 23, 59), true},
		{"as the list ends", utc(2027, time.January, 1, 0, 0), true},
		{"a year after", utc(2028, time.March, 1, 9, 0), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := cal.RunsOutWithin(tt.now, ahead); got != tt.want {
				t.Errorf("RunsOutWithin(%s, 60 days) = %v, want %v (end %s)", tt.now.Format(time.RFC3339), got, tt.want, cal.End().Format(time.RFC3339))
			}
		})
	}
	t.Run("the embedded list does not run out within 60 days of today, 1 December 2026", func(t *testing.T) {
		if rooms.DefaultCalendar().RunsOutWithin(utc(2026, time.December, 1, 12, 0), ahead) {
			t.Errorf("the embedded list ends %s", rooms.DefaultCalendar().End())
		}
	})
}

func event(title, date string) string {
	return fmt.Sprintf(`{"title": %q, "date": %q, "notes": "", "bunting": true}`, title, date)
}

// officialList is a file in the GOV.UK shape whose england-and-wales division
// has events.
func officialList(events ...string) string {
	return `{"england-and-wales": {"division": "england-and-wales", "events": [` + strings.Join(events, ", ") +
		`]}, "scotland": {"division": "scotland", "events": []}}`
}

func parseCalendar(t *testing.T, file string) *rooms.Calendar {
	t.Helper()
	cal, err := rooms.ParseCalendar(strings.NewReader(file))
	if err != nil {
		t.Fatalf("ParseCalendar: %v", err)
	}
	return cal
}
