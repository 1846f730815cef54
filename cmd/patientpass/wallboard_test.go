package main

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// counter runs one counting query of the test's own, written directly in
// the store's SQL.
type counter struct {
	query func(q string, args ...any) float64
	// dialect: the SQL for a time parameter compared with a time column,
	// minutes between two time columns, and a JSON text field.
	time    func(t time.Time) any
	minutes string
	bedType string
}

// TestWallboardMatchesSQLCounts seeds the demo day on each store and checks
// every wallboard figure against the same figure counted directly in SQL.
func TestWallboardMatchesSQLCounts(t *testing.T) {
	now := time.Date(2026, time.July, 14, 14, 5, 0, 0, time.UTC)
	t.Run("embedded", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "patientpass.db")
		store, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		checkWallboard(t, store, now, counter{
			query: func(q string, args ...any) float64 {
				var v sql.NullFloat64
				if err := db.QueryRow(q, args...).Scan(&v); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				return v.Float64
			},
			time:    func(t time.Time) any { return t.UnixMicro() },
			minutes: "(triaged_at - submitted_at) / 60000000.0",
			bedType: "json_extract(outcomes, '$.accepted.bed_type')",
		})
	})
	t.Run("postgres", func(t *testing.T) {
		url := pgtest.URL(t)
		store, err := postgres.Open(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		conn, err := pgx.Connect(context.Background(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(context.Background())
		checkWallboard(t, store, now, counter{
			query: func(q string, args ...any) float64 {
				// $1, $2 … in place of ?.
				for i := 1; strings.Contains(q, "?"); i++ {
					q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
				}
				var v *float64
				if err := conn.QueryRow(context.Background(), q, args...).Scan(&v); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
				if v == nil {
					return 0
				}
				return *v
			},
			time:    func(t time.Time) any { return t },
			minutes: "EXTRACT(EPOCH FROM (triaged_at - submitted_at)) / 60.0",
			bedType: "outcomes->'accepted'->>'bed_type'",
		})
	})
}

func checkWallboard(t *testing.T, store rooms.Store, now time.Time, c counter) {
	ctx := context.Background()
	svc := rooms.NewService(rooms.Config{Store: store, Clock: rooms.NewManualClock(now), Node: "test"})
	a := &app{stdout: io.Discard, stderr: io.Discard}
	if err := a.seedDemo(ctx, svc, store, config{Node: "test", DemoPassword: "demo-password-for-tests"}); err != nil {
		t.Fatal(err)
	}
	bm, err := store.UserByEmail(ctx, "bedmanager@demo.test")
	if err != nil {
		t.Fatal(err)
	}
	w, err := svc.Wallboard(ctx, rooms.Caller{User: bm})
	if err != nil {
		t.Fatal(err)
	}
	today, week, at := c.time(rooms.StartOfDay(now)), c.time(now.Add(-7*24*time.Hour)), c.time(now)
	count := func(where string, args ...any) int {
		return int(c.query("SELECT CAST(count(*) AS REAL) FROM referrals WHERE receiving_organisation = 'RET' AND "+where, args...))
	}
	// median of the minutes to triage of the referrals triaged since a
	// time, by row numbers (both SQLs have window functions).
	median := func(since any) *float64 {
		if count("triaged_at IS NOT NULL AND submitted_at IS NOT NULL AND triaged_at >= ?", since) == 0 {
			return nil
		}
		m := c.query(`SELECT avg(m) FROM (
			SELECT m, row_number() OVER (ORDER BY m) AS rn, count(*) OVER () AS n FROM (
				SELECT `+c.minutes+` AS m FROM referrals
				WHERE receiving_organisation = 'RET' AND triaged_at IS NOT NULL AND submitted_at IS NOT NULL AND triaged_at >= ?) x) y
			WHERE rn IN ((n + 1) / 2, (n + 2) / 2)`, since)
		m = math.Round(m*10) / 10
		return &m
	}
	figures := []struct {
		name      string
		got, want int
	}{
		{"awaiting_triage.emergency", w.AwaitingTriage.Emergency, count("status = 'submitted' AND priority = 'emergency'")},
		{"awaiting_triage.urgent", w.AwaitingTriage.Urgent, count("status = 'submitted' AND priority = 'urgent'")},
		{"awaiting_triage.routine", w.AwaitingTriage.Routine, count("status = 'submitted' AND priority = 'routine'")},
		{"awaiting_triage.overdue", w.AwaitingTriage.Overdue, count("status IN ('submitted', 'in_triage') AND triage_due_at <= ?", at)},
		{"in_triage", w.InTriage, count("status = 'in_triage'")},
		{"more_info_needed", w.MoreInfoNeeded, count("status = 'more_info_needed'")},
		{"transfers_booked", w.TransfersBooked, count("status = 'transfer_booked'")},
		{"transferred_today", w.TransferredToday, count("status = 'transferred' AND status_changed_at >= ?", today)},
		{"managed_remotely_today", w.ManagedRemotelyToday, count("status = 'managed_remotely' AND status_changed_at >= ?", today)},
		{"managed_remotely_7d", w.ManagedRemotely7d, count("status = 'managed_remotely' AND status_changed_at >= ?", week)},
		{"breaches_today", w.BreachesToday, count(`submitted_at IS NOT NULL AND triage_due_at >= ? AND triage_due_at <= ?
			AND ((triaged_at IS NULL AND status IN ('submitted', 'in_triage')) OR triaged_at > triage_due_at)`, today, at)},
	}
	for _, bed := range []string{"neurosurgical", "spinal", "oncology"} {
		figures = append(figures, struct {
			name      string
			got, want int
		}{"awaiting_bed." + bed, w.AwaitingBed[bed], count("status = 'accepted' AND "+c.bedType+" = ?", bed)})
	}
	nonZero := 0
	for _, f := range figures {
		if f.got != f.want {
			t.Errorf("%s: wallboard %d, SQL %d", f.name, f.got, f.want)
		}
		if f.got > 0 {
			nonZero++
		}
	}
	if nonZero != len(figures) {
		t.Errorf("only %d of %d figures are non-zero on the demo day; the demo should fill the wallboard", nonZero, len(figures))
	}
	for _, m := range []struct {
		name string
		got  *float64
		want *float64
	}{{"median_minutes_to_triage.today", w.MedianMinutesToTriage.Today, median(today)}, {"median_minutes_to_triage.7d", w.MedianMinutesToTriage.Week, median(week)}} {
		if (m.got == nil) != (m.want == nil) || m.got != nil && *m.got != *m.want {
			t.Errorf("%s: wallboard %v, SQL %v", m.name, deref(m.got), deref(m.want))
		}
	}
	if w.OPEL == nil || w.OPEL.Level != 3 {
		t.Errorf("OPEL %+v; want the demo's level 3", w.OPEL)
	}
	t.Logf("demo wallboard: %+v", w)
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}
