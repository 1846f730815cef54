package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/rs/zerolog"

	"patientpass/rooms"
)

// calendarWarnAhead is how long before the bank holiday list runs out the log
// starts warning: two months to ship or configure a newer list before the
// first routine deadline that would ignore a holiday.
const calendarWarnAhead = 60 * 24 * time.Hour

// calendarCheckEvery is how often watchCalendar looks again, so a running
// node warns once a day, not once a deploy.
const calendarCheckEvery = 24 * time.Hour

// loadCalendar returns the bank holidays of the file at path
// (PATIENTPASS_BANK_HOLIDAYS, in the GOV.UK JSON shape), or the embedded
// snapshot when path is empty.
func loadCalendar(path string) (*rooms.Calendar, error) {
	if path == "" {
		return rooms.DefaultCalendar(), nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("PATIENTPASS_BANK_HOLIDAYS: %w", err)
	}
	defer f.Close()
	cal, err := rooms.ParseCalendar(f)
	if err != nil {
		return nil, fmt.Errorf("PATIENTPASS_BANK_HOLIDAYS %s: %w", path, err)
	}
	return cal, nil
}

// watchCalendar warns, at start and then once a day until ctx ends, while
// cal's list has run out or will within calendarWarnAhead: deadlines past it
// are computed as if no holiday fell, which is degraded, not broken, so
// /readyz stays 200.
func watchCalendar(ctx context.Context, log zerolog.Logger, cal *rooms.Calendar, clock rooms.Clock) {
	log.Info().Int("first_year", cal.FirstYear()).Int("last_year", cal.LastYear()).Msg("bank holidays loaded")
	tick := time.NewTicker(calendarCheckEvery)
	defer tick.Stop()
	for {
		if msg, warn := calendarWarning(cal, clock.Now()); warn {
			log.Warn().Int("last_year", cal.LastYear()).Time("list_ends", cal.End()).Msg(msg)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// calendarWarning is the warning to log at now about cal's list, and whether
// to log it.
func calendarWarning(cal *rooms.Calendar, now time.Time) (msg string, warn bool) {
	if !cal.RunsOutWithin(now, calendarWarnAhead) {
		return "", false
	}
	return fmt.Sprintf("bank holidays known to %d; deadlines after that ignore holidays; set PATIENTPASS_BANK_HOLIDAYS to a newer list", cal.LastYear()), true
}
