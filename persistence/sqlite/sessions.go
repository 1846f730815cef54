package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"patientpass/rooms"
)

// Sessions and credentials are written outside InTx, but through the same
// single writer connection and BEGIN IMMEDIATE (see begin), so they queue
// behind running transactions instead of failing with SQLITE_BUSY. Like
// InTx, they must not be called from inside an InTx function: they would
// wait for the writer it holds.

// writeTx runs fn in a write transaction of its own and commits it when fn
// returns nil.
func (s *Store) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// exec runs one statement on the writer and returns how many rows it
// changed.
func (s *Store) exec(ctx context.Context, query string, args ...any) (int64, error) {
	var n int64
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, query, args...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	return n, err
}

// isForeignKey reports whether err is a violated foreign key: a row refers
// to one that does not exist.
func isForeignKey(err error) bool {
	var se *sqlite.Error
	return errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY
}

const sessionColumns = `id, token_hash, user_id, created_at, last_seen_at, client_addr, user_agent`

func scanSession(row interface{ Scan(...any) error }) (rooms.Session, error) {
	var (
		x                 rooms.Session
		created, lastSeen int64
	)
	if err := row.Scan(&x.ID, &x.TokenHash, &x.UserID, &created, &lastSeen, &x.ClientAddr, &x.UserAgent); err != nil {
		return rooms.Session{}, err
	}
	x.CreatedAt, x.LastSeenAt = fromMicros(created), fromMicros(lastSeen)
	return x, nil
}

// CreateSession stores a new session; rooms.ErrDuplicate when its id or
// token hash is taken, rooms.ErrNotFound when its user does not exist.
func (s *Store) CreateSession(ctx context.Context, x rooms.Session) error {
	_, err := s.exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		x.ID, x.TokenHash, x.UserID, micros(x.CreatedAt), micros(x.LastSeenAt), x.ClientAddr, x.UserAgent)
	if isForeignKey(err) {
		return fmt.Errorf("create session %s of user %s: %w", x.ID, x.UserID, rooms.ErrNotFound)
	}
	return mapWrite(err, "create session %s of user %s", x.ID, x.UserID)
}

// SessionByTokenHash returns the session whose token hashes to tokenHash.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash string) (rooms.Session, error) {
	x, err := scanSession(s.read.QueryRowContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ?`, tokenHash))
	if err != nil {
		// The hash is not logged: it is as good as a session id to an
		// attacker reading logs, and means nothing to anyone else.
		return rooms.Session{}, notFound(err, "get session by token")
	}
	return x, nil
}

// TouchSession raises the session's last activity to at; an earlier at
// leaves it as it is.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	n, err := s.exec(ctx, `UPDATE sessions SET last_seen_at = max(last_seen_at, ?) WHERE id = ?`, micros(at), id)
	if err != nil {
		return mapWrite(err, "touch session %s", id)
	}
	if n == 0 {
		return fmt.Errorf("touch session %s: %w", id, rooms.ErrNotFound)
	}
	return nil
}

// DeleteSession ends one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	n, err := s.exec(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	if err != nil {
		return mapWrite(err, "delete session %s", id)
	}
	if n == 0 {
		return fmt.Errorf("delete session %s: %w", id, rooms.ErrNotFound)
	}
	return nil
}

// DeleteUserSessions ends every session of a user and returns how many
// there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	n, err := s.exec(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return 0, mapWrite(err, "delete sessions of user %s", userID)
	}
	return int(n), nil
}

// UserSessions lists a user's sessions, most recently created first.
func (s *Store) UserSessions(ctx context.Context, userID string) ([]rooms.Session, error) {
	rows, err := s.read.QueryContext(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE user_id = ?
		ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	defer rows.Close()
	var out []rooms.Session
	for rows.Next() {
		x, err := scanSession(rows)
		if err != nil {
			return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
		}
		out = append(out, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	return out, nil
}

// DeleteExpiredSessions removes the sessions last seen before idleBefore or
// created before createdBefore, and returns how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int, error) {
	n, err := s.exec(ctx, `DELETE FROM sessions WHERE last_seen_at < ? OR created_at < ?`,
		micros(idleBefore), micros(createdBefore))
	if err != nil {
		return 0, mapWrite(err, "delete expired sessions")
	}
	return int(n), nil
}

// loginFailureRetention is how long a failed login is kept. Adding a failure
// prunes the key's failures older than this, so a key's rows stay bounded
// by one day's failures; LoginFailures over a longer window undercounts.
const loginFailureRetention = 24 * time.Hour

// AddLoginFailure records a failed login for key and, in the same
// transaction, forgets the key's failures older than loginFailureRetention
// before at.
func (s *Store) AddLoginFailure(ctx context.Context, key string, at time.Time) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ? AND at < ?`,
			key, micros(at.Add(-loginFailureRetention))); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO login_failures (key, at) VALUES (?, ?)`, key, micros(at))
		return err
	})
	// The key is not logged: it holds an email or an address.
	return mapWrite(err, "add login failure")
}

// LoginFailures counts key's failures at or after since and returns the
// oldest of them, the zero time when there are none.
func (s *Store) LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error) {
	var (
		n      int
		oldest sql.NullInt64
	)
	err := s.read.QueryRowContext(ctx, `SELECT count(*), min(at) FROM login_failures WHERE key = ? AND at >= ?`,
		key, micros(since)).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count login failures: %w", err)
	}
	if !oldest.Valid {
		return n, time.Time{}, nil
	}
	return n, fromMicros(oldest.Int64), nil
}

// ClearLoginFailures forgets key's failures.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	_, err := s.exec(ctx, `DELETE FROM login_failures WHERE key = ?`, key)
	return mapWrite(err, "clear login failures")
}

// ClaimTOTPStep raises the user's last used TOTP step to step, and reports
// whether it did: false when that step or a later one was already used.
// Writes take turns on the writer, so of concurrent claims of one step
// exactly one succeeds. An unknown user claims nothing: false, with no
// error.
func (s *Store) ClaimTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	n, err := s.exec(ctx, `UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?`, step, userID, step)
	if err != nil {
		return false, mapWrite(err, "claim TOTP step of user %s", userID)
	}
	return n == 1, nil
}

// SetRecoveryCodes replaces the user's recovery codes with hashes, in one
// transaction: on error the old codes stand. rooms.ErrNotFound when the
// user does not exist, rooms.ErrDuplicate when hashes repeats itself.
func (s *Store) SetRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		var one int
		if err := tx.QueryRowContext(ctx, `SELECT 1 FROM users WHERE id = ?`, userID).Scan(&one); err != nil {
			return notFound(err, "find user")
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM recovery_codes WHERE user_id = ?`, userID); err != nil {
			return err
		}
		for _, h := range hashes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO recovery_codes (user_id, hash, used_at) VALUES (?, ?, NULL)`,
				userID, h); err != nil {
				return err
			}
		}
		return nil
	})
	return mapWrite(err, "set recovery codes of user %s", userID)
}

// UseRecoveryCode spends the user's unused code with hash, and reports
// whether there was one. The conditional update runs on the single writer,
// so a code is spent once however many requests race for it.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) (bool, error) {
	n, err := s.exec(ctx, `UPDATE recovery_codes SET used_at = ?
		WHERE user_id = ? AND hash = ? AND used_at IS NULL`, micros(at), userID, hash)
	if err != nil {
		return false, mapWrite(err, "use recovery code of user %s", userID)
	}
	return n == 1, nil
}

// RecoveryCodesLeft counts the user's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.read.QueryRowContext(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = ? AND used_at IS NULL`,
		userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count recovery codes of user %s: %w", userID, err)
	}
	return n, nil
}
