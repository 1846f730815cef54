package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"patientpass/rooms"
)

// shortList is a bank holiday list that ends with 2026.
const shortList = `{"england-and-wales": {"division": "england-and-wales", "events": [
	{"title": "Christmas Day", "date": "2026-12-25", "notes": "", "bunting": true},
	{"title": "Boxing Day", "date": "2026-12-28", "notes": "Substitute day", "bunting": true}]}}`

func writeList(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "bank-holidays.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadCalendar(t *testing.T) {
	t.Run("no path is the embedded list", func(t *testing.T) {
		cal, err := loadCalendar("")
		if err != nil {
			t.Fatalf("loadCalendar(\"\"): %v", err)
		}
		if cal != rooms.DefaultCalendar() {
			t.Error("loadCalendar(\"\") is not the default calendar")
		}
	})
	t.Run("a file replaces it", func(t *testing.T) {
		cal, err := loadCalendar(writeList(t, shortList))
		if err != nil {
			t.Fatalf("loadCalendar: %v", err)
		}
		if cal.LastYear() != 2026 || !cal.IsBankHoliday(time.Date(2026, time.December, 28, 12, 0, 0, 0, rooms.London)) {
			t.Errorf("the loaded list ends in %d and does not have its own Boxing Day substitute", cal.LastYear())
		}
	})
	t.Run("a missing file is refused naming the variable and the path", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "absent.json")
		_, err := loadCalendar(path)
		if err == nil || !strings.Contains(err.Error(), "PATIENTPASS_BANK_HOLIDAYS") || !strings.Contains(err.Error(), path) {
			t.Errorf("loadCalendar(%s) error = %v, want one naming PATIENTPASS_BANK_HOLIDAYS and the path", path, err)
		}
	})
	t.Run("a malformed file is refused saying what is wrong", func(t *testing.T) {
		path := writeList(t, `{"scotland": {"division": "scotland", "events": []}}`)
		_, err := loadCalendar(path)
		if err == nil || !strings.Contains(err.Error(), "PATIENTPASS_BANK_HOLIDAYS "+path) || !strings.Contains(err.Error(), `no "england-and-wales" division`) {
			t.Errorf("loadCalendar error = %v, want the variable, the path and the missing division", err)
		}
	})
}

func TestCalendarWarning(t *testing.T) {
	cal, err := loadCalendar(writeList(t, shortList))
	if err != nil {
		t.Fatal(err)
	}
	utc := func(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, time.UTC) }
	tests := []struct {
		name string
		now  time.Time
		warn bool
	}{
		{"months before the end of the last year, silent", utc(2026, time.June, 1, 12), false},
		{"61 days before the end, silent", utc(2026, time.November, 1, 0), false},
		{"60 days before the end, warns", utc(2026, time.November, 2, 0), true},
		{"on the last day, warns", utc(2026, time.December, 31, 12), true},
		{"past the end, warns", utc(2027, time.February, 1, 9), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msg, warn := calendarWarning(cal, tt.now)
			if warn != tt.warn {
				t.Fatalf("calendarWarning(%s) warns %v, want %v", tt.now.Format(time.RFC3339), warn, tt.warn)
			}
			want := ""
			if tt.warn {
				want = "bank holidays known to 2026; deadlines after that ignore holidays; set PATIENTPASS_BANK_HOLIDAYS to a newer list"
			}
			if msg != want {
				t.Errorf("message %q, want %q", msg, want)
			}
		})
	}
}

// logLines decodes zerolog's JSON lines.
func logLines(t *testing.T, out *bytes.Buffer) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func warnings(lines []map[string]any) []map[string]any {
	var w []map[string]any
	for _, l := range lines {
		if l["level"] == "warn" {
			w = append(w, l)
		}
	}
	return w
}

func TestWatchCalendarChecksAtStart(t *testing.T) {
	cal, err := loadCalendar(writeList(t, shortList))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		now  time.Time
		warn bool
	}{
		{"near the end it warns at once", time.Date(2026, time.December, 1, 9, 0, 0, 0, time.UTC), true},
		{"far from the end it does not", time.Date(2026, time.March, 1, 9, 0, 0, 0, time.UTC), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			ctx, cancel := context.WithCancel(context.Background())
			cancel() // it checks once, then sees ctx has ended and returns
			watchCalendar(ctx, zerolog.New(&out), cal, rooms.NewManualClock(tt.now))
			w := warnings(logLines(t, &out))
			if got := len(w) == 1; got != tt.warn {
				t.Fatalf("%d warnings at %s, want warned %v; log:\n%s", len(w), tt.now.Format(time.RFC3339), tt.warn, out.String())
			}
			if tt.warn {
				if msg, _ := w[0]["message"].(string); !strings.HasPrefix(msg, "bank holidays known to 2026;") {
					t.Errorf("warning %q", msg)
				}
				if w[0]["last_year"] != float64(2026) {
					t.Errorf("warning's last_year = %v, want 2026", w[0]["last_year"])
				}
			}
		})
	}
}

func TestWatchCalendarReturnsWhenContextEnds(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	var out bytes.Buffer // written only by watchCalendar until done closes
	go func() {
		defer close(done)
		watchCalendar(ctx, zerolog.New(&out), rooms.DefaultCalendar(), rooms.NewManualClock(time.Date(2026, time.December, 1, 9, 0, 0, 0, time.UTC)))
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("watchCalendar still running 10 s after its context ended")
	}
	if w := warnings(logLines(t, &out)); len(w) != 0 {
		t.Errorf("the embedded list warned on 1 December 2026: %v", w)
	}
}
