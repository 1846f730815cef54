package postgres_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// terminateSchedulerLockHolder ends, from the server's side, the session
// holding the scheduler's lock of admin's schema, as the server does when
// the machine of the node holding it dies, and returns how many it ended.
func terminateSchedulerLockHolder(t *testing.T, admin *pgxpool.Pool) int {
	t.Helper()
	var n int
	// A bigint advisory key is kept as its high and low halves.
	err := admin.QueryRow(t.Context(), `SELECT count(pg_terminate_backend(l.pid)) FROM pg_locks l
		WHERE l.locktype = 'advisory' AND l.granted
			AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
			AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtextextended('patientpass.scheduler.' || current_schema(), 0)`).Scan(&n)
	if err != nil {
		t.Fatalf("terminate the scheduler lock's session: %v", err)
	}
	return n
}

func hold(t *testing.T, what string, s rooms.Store) bool {
	t.Helper()
	held, err := s.HoldSchedulerLock(t.Context())
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	return held
}

// A node whose connection dies without a word (its machine lost power, its
// network was cut) loses the lock once the server ends its session: the
// other node takes it, and the first, finding its connection dead, stops
// holding it.
func TestSchedulerLockPassesOnWhenTheHoldersConnectionDies(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a, b := openStore(t, url), openStore(t, url)
	admin := pgtest.Admin(t, url)
	if !hold(t, "a takes the free lock", a) {
		t.Fatalf("a did not get the free lock")
	}
	if hold(t, "b tries while a holds it", b) {
		t.Fatalf("b got the lock while a held it")
	}
	if n := terminateSchedulerLockHolder(t, admin); n != 1 {
		t.Fatalf("%d sessions hold the scheduler lock, want 1", n)
	}
	// The server frees the lock when the terminated session has ended,
	// which takes a moment.
	deadline := time.Now().Add(10 * time.Second)
	for !hold(t, "b tries after a's session ended", b) {
		if time.Now().After(deadline) {
			t.Fatalf("b did not get the lock within 10 s of a's session ending")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if hold(t, "a confirms its lock on a dead connection", a) {
		t.Fatalf("a still reports the lock after its connection died")
	}
	if hold(t, "a tries while b holds it", a) {
		t.Fatalf("a took the lock back while b held it")
	}
	if err := b.ReleaseSchedulerLock(t.Context()); err != nil {
		t.Fatalf("b releases: %v", err)
	}
	if !hold(t, "a tries after b released", a) {
		t.Fatalf("a, on a new connection, did not get the released lock")
	}
}

// Installations in two schemas of one database each have a scheduler.
func TestSchedulerLockIsPerSchema(t *testing.T) {
	t.Parallel()
	a, b := openStore(t, pgtest.URL(t)), openStore(t, pgtest.URL(t))
	if !hold(t, "a", a) || !hold(t, "b", b) {
		t.Fatalf("stores on two schemas do not both hold their scheduler lock")
	}
}

// The notice put in place of another clears it as its poster, at its time;
// the history is kept.
func TestSystemNoticeHistory(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := openStore(t, url)
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

	rows, err := pgtest.Admin(t, url).Query(context.Background(), `SELECT id, posted_by->>'id', posted_at, cleared_at, coalesce(cleared_by, '')
		FROM system_notices ORDER BY posted_at`)
	if err != nil {
		t.Fatalf("read history: %v", err)
	}
	defer rows.Close()
	type entry struct {
		id, by    string
		posted    time.Time
		cleared   *time.Time
		clearedBy string
	}
	want := []entry{
		{"sn-1", "u-a", at, ptr(at.Add(time.Minute)), "u-b"},
		{"sn-2", "u-b", at.Add(time.Minute), ptr(at.Add(2 * time.Minute)), "u-c"},
		{"sn-3", "u-d", at.Add(3 * time.Minute), nil, ""},
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
		g, w := got[i], want[i]
		if g.id != w.id || g.by != w.by || !g.posted.Equal(w.posted) || g.clearedBy != w.clearedBy ||
			(g.cleared == nil) != (w.cleared == nil) || (g.cleared != nil && !g.cleared.Equal(*w.cleared)) {
			t.Errorf("history entry %d: %+v, want %+v", i, g, w)
		}
	}
}

func ptr(t time.Time) *time.Time { return &t }
