package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"time"

	"patientpass/rooms"
)

// ReserveAttempts counts an attempt against every key of limits, or against
// none when any key already has its Max attempts less than window old. See
// rooms.AttemptStore. The counts and the insert run in one BEGIN IMMEDIATE
// transaction on the writer, which serialises them against every other
// write in this process and in any other process on the file.
func (s *Store) ReserveAttempts(ctx context.Context, limits []rooms.Limit, window time.Duration, now time.Time) (rooms.Reservation, error) {
	if err := rooms.CheckLimits(limits, window); err != nil {
		return rooms.Reservation{}, err
	}
	nowUS := micros(now)
	// An attempt counts while it is less than window old; times are kept
	// in microseconds, so the oldest time still inside is a microsecond
	// after now - window.
	since := micros(now.Add(-window)) + 1
	prune := micros(now.Add(-max(loginFailureRetention, window)))
	id := rooms.NewID()
	r := rooms.Reservation{Allowed: true, ID: id}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		for _, l := range limits {
			// The Max-th newest attempt in the window is the one whose
			// ageing out makes room; when there is one, the key is full.
			var nth int64
			err := tx.QueryRowContext(ctx, `SELECT at FROM login_failures
				WHERE key = ? AND at >= ? ORDER BY at DESC LIMIT 1 OFFSET ?`,
				l.Key, since, l.Max-1).Scan(&nth)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return err
			}
			r = refuse(r, l.Key, time.Duration(nth+int64(window/time.Microsecond)-nowUS)*time.Microsecond)
		}
		keys := make([]any, len(limits))
		for i, l := range limits {
			keys[i] = l.Key
		}
		in := strings.Repeat("?, ", len(keys)-1) + "?"
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE key IN (`+in+`) AND at < ?`,
			append(keys, prune)...); err != nil {
			return err
		}
		if !r.Allowed {
			return nil
		}
		for _, l := range limits {
			if _, err := tx.ExecContext(ctx, `INSERT INTO login_failures (key, at, id) VALUES (?, ?, ?)`,
				l.Key, nowUS, id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		// The key is not in the error: it holds an email or an address.
		return rooms.Reservation{}, mapWrite(err, "reserve attempt")
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
	_, err := s.exec(ctx, `DELETE FROM login_failures WHERE id = ?`, id)
	return mapWrite(err, "forgive attempt")
}
