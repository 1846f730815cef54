package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/rooms"
)

// reserveAttempts counts an attempt against every wanted key unless one of
// them is full, and returns the full ones. A key is full when it has lim
// attempts in the window; the lim-th newest of them is the one whose ageing
// out makes room, so it is returned to say how long to wait. All parts of
// the statement see one snapshot, taken after the caller holds the keys'
// locks, so the count and the insert cannot be split by another
// reservation.
const reserveAttempts = `WITH wanted AS (
		SELECT key, lim FROM unnest($1::text[], $2::integer[]) AS w (key, lim)
	), refused AS (
		SELECT w.key, nth.at FROM wanted w
		CROSS JOIN LATERAL (
			SELECT f.at FROM login_failures f
			WHERE f.key = w.key AND f.at >= $3
			ORDER BY f.at DESC OFFSET w.lim - 1 LIMIT 1
		) nth
	), pruned AS (
		DELETE FROM login_failures f USING wanted w WHERE f.key = w.key AND f.at < $6
	), counted AS (
		INSERT INTO login_failures (key, at, id)
		SELECT key, $4, $5 FROM wanted WHERE NOT EXISTS (SELECT FROM refused)
	)
	SELECT key, at FROM refused`

// lockAttemptKeys takes a transaction-scoped advisory lock per key, which is
// what serialises reservations for one key across every node. The locks are
// taken in the order of their numbers so that two reservations sharing keys
// (one account, one address) cannot deadlock. Two keys whose hashes collide
// only wait for each other.
const lockAttemptKeys = `SELECT pg_advisory_xact_lock(h) FROM (
		SELECT DISTINCT hashtextextended('patientpass.attempt.' || k, 0) AS h
		FROM unnest($1::text[]) AS k ORDER BY h
	) AS locks`

// ReserveAttempts counts an attempt against every key of limits, or against
// none when any key already has its Max attempts less than window old. See
// rooms.AttemptStore.
func (s *Store) ReserveAttempts(ctx context.Context, limits []rooms.Limit, window time.Duration, now time.Time) (rooms.Reservation, error) {
	if err := rooms.CheckLimits(limits, window); err != nil {
		return rooms.Reservation{}, err
	}
	keys := make([]string, len(limits))
	maxes := make([]int32, len(limits))
	for i, l := range limits {
		keys[i], maxes[i] = l.Key, int32(min(l.Max, 1<<31-1))
	}
	now = micro(now)
	// An attempt counts while it is less than window old; times are kept
	// in microseconds, so the oldest time still inside is a microsecond
	// after now - window.
	since := micro(now.Add(-window)).Add(time.Microsecond)
	prune := now.Add(-max(loginFailureRetention, window))
	id := rooms.NewID()

	// The key is never in an error: it holds an email or an address.
	const what = "reserve attempt"
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return rooms.Reservation{}, fmt.Errorf("%s: begin transaction: %w", what, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = ptx.Rollback(rctx) // a no-op after Commit
		cancel()
	}()
	if _, err := ptx.Exec(ctx, lockAttemptKeys, keys); err != nil {
		return rooms.Reservation{}, mapErr(err, what)
	}
	rows, err := ptx.Query(ctx, reserveAttempts, keys, maxes, since, now, id, prune)
	if err != nil {
		return rooms.Reservation{}, mapErr(err, what)
	}
	var (
		r   = rooms.Reservation{Allowed: true, ID: id}
		key string
		nth time.Time
	)
	_, err = pgx.ForEachRow(rows, []any{&key, &nth}, func() error {
		r = refuse(r, key, nth.Add(window).Sub(now))
		return nil
	})
	if err != nil {
		return rooms.Reservation{}, mapErr(err, what)
	}
	if err := ptx.Commit(ctx); err != nil {
		return rooms.Reservation{}, mapErr(err, what)
	}
	return r, nil
}

// refuse folds a full key into r: the reservation is refused, and waits for
// the key that needs longest.
func refuse(r rooms.Reservation, key string, wait time.Duration) rooms.Reservation {
	wait = max(wait, time.Microsecond)
	if r.Allowed || wait > r.RetryAfter {
		return rooms.Reservation{RetryAfter: wait, RefusedBy: key}
	}
	return r
}

// ForgiveAttempt removes the reserved attempt id from every key it was
// counted on.
func (s *Store) ForgiveAttempt(ctx context.Context, id string) error {
	if id == "" {
		return nil // a refused reservation counted nothing
	}
	if _, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE id = $1`, id); err != nil {
		return mapErr(err, "forgive attempt")
	}
	return nil
}
