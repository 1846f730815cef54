package sqlite_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// The notice put in place of another clears it as its poster, at its time;
// the history is kept.
func TestSystemNoticeHistory(t *testing.T) {
	s, path := openTemp(t)
	at := time.Date(2025, time.March, 4, 9, 30, 0, 123456000, time.UTC)
	put := func(id, by string, when time.Time) {
		t.Helper()
		n := rooms.SystemNotice{ID: id, Level: "info", Message: "m", PostedBy: rooms.Author{ID: by, Name: "Admin " + by}, PostedAt: when}
		if err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.PutSystemNotice(t.Context(), n) }); err != nil {
			t.Fatalf("put notice %s: %v", id, err)
		}
	}
	put("sn-1", "u-a", at)
	put("sn-2", "u-b", at.Add(time.Minute))
	if err := s.InTx(t.Context(), func(tx rooms.Tx) error {
		return tx.ClearSystemNotice(t.Context(), "u-c", at.Add(2*time.Minute))
	}); err != nil {
		t.Fatalf("clear: %v", err)
	}
	put("sn-3", "u-d", at.Add(3*time.Minute))

	rows, err := rawDB(t, path).QueryContext(t.Context(), `SELECT id, posted_by->>'$.id', posted_at, coalesce(cleared_at, 0), coalesce(cleared_by, '')
		FROM system_notices ORDER BY posted_at`)
	if err != nil {
		t.Fatalf("read history: %v", err)
	}
	defer rows.Close()
	type entry struct {
		id, by          string
		posted, cleared int64
		clearedBy       string
	}
	us := func(d time.Duration) int64 { return at.Add(d).UnixMicro() }
	want := []entry{
		{"sn-1", "u-a", us(0), us(time.Minute), "u-b"},
		{"sn-2", "u-b", us(time.Minute), us(2 * time.Minute), "u-c"},
		{"sn-3", "u-d", us(3 * time.Minute), 0, ""},
	}
	var got []entry
	for rows.Next() {
		var e entry
		if err := rows.Scan(&e.id, &e.by, &e.posted, &e.cleared, &e.clearedBy); err != nil {
			t.Fatalf("read history: %v", err)
		}
		got = append(got, e)
	}
	if len(got) != len(want) {
		t.Fatalf("history %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("history entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Two paths to one file are one database: one scheduler.
func TestSchedulerLockFollowsSymlinks(t *testing.T) {
	a, path := openTemp(t)
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(filepath.Dir(path), link); err != nil {
		t.Skipf("symbolic links: %v", err)
	}
	b, err := sqlite.Open(t.Context(), filepath.Join(link, filepath.Base(path)))
	if err != nil {
		t.Fatalf("open through the link: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	if held, err := a.HoldSchedulerLock(t.Context()); err != nil || !held {
		t.Fatalf("a: %v, %v; want the free lock", held, err)
	}
	if held, err := b.HoldSchedulerLock(t.Context()); err != nil || held {
		t.Errorf("b, on the same file through a link: %v, %v; want the lock held by a", held, err)
	}
}
