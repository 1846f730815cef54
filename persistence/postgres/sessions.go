package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/rooms"
)

// Sessions and credentials are written outside InTx: each method is one
// statement (or, for SetRecoveryCodes, one short transaction of its own), so
// each is atomic on every node.

const sessionColumns = `id, token_hash, user_id, created_at, last_seen_at, client_addr, user_agent`

func scanSession(row pgx.Row) (rooms.Session, error) {
	var s rooms.Session
	err := row.Scan(&s.ID, &s.TokenHash, &s.UserID, &s.CreatedAt, &s.LastSeenAt, &s.ClientAddr, &s.UserAgent)
	s.CreatedAt, s.LastSeenAt = utc(s.CreatedAt), utc(s.LastSeenAt)
	return s, err
}

// CreateSession stores a new session; rooms.ErrDuplicate when its id or
// token hash is taken, rooms.ErrNotFound when its user does not exist.
func (s *Store) CreateSession(ctx context.Context, x rooms.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sessions (`+sessionColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		x.ID, x.TokenHash, x.UserID, micro(x.CreatedAt), micro(x.LastSeenAt), x.ClientAddr, x.UserAgent)
	if err != nil {
		return mapErr(err, fmt.Sprintf("create session %s of user %s", x.ID, x.UserID))
	}
	return nil
}

// TouchSession raises the session's last activity to at; an earlier at
// leaves it as it is.
func (s *Store) TouchSession(ctx context.Context, id string, at time.Time) error {
	tag, err := s.pool.Exec(ctx, `UPDATE sessions SET last_seen_at = GREATEST(last_seen_at, $2) WHERE id = $1`, id, micro(at))
	if err != nil {
		return mapErr(err, "touch session "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("touch session %s: %w", id, rooms.ErrNotFound)
	}
	return nil
}

// DeleteSession ends one session.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	if err != nil {
		return mapErr(err, "delete session "+id)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("delete session %s: %w", id, rooms.ErrNotFound)
	}
	return nil
}

// DeleteUserSessions ends every session of a user and returns how many
// there were.
func (s *Store) DeleteUserSessions(ctx context.Context, userID string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return 0, mapErr(err, "delete sessions of user "+userID)
	}
	return int(tag.RowsAffected()), nil
}

// UserSessions lists a user's sessions, most recently created first.
func (s *Store) UserSessions(ctx context.Context, userID string) ([]rooms.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE user_id = $1
		ORDER BY created_at DESC, id DESC`, userID)
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	xs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, fmt.Errorf("list sessions of user %s: %w", userID, err)
	}
	return xs, nil
}

// DeleteExpiredSessions removes the sessions last seen before idleBefore or
// created before createdBefore, and returns how many.
func (s *Store) DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE last_seen_at < $1 OR created_at < $2`,
		micro(idleBefore), micro(createdBefore))
	if err != nil {
		return 0, mapErr(err, "delete expired sessions")
	}
	return int(tag.RowsAffected()), nil
}

// loginFailureRetention is how long a failed login is kept. Adding a failure
// prunes the key's failures older than this, so a key's rows stay bounded
// by one day's failures; LoginFailures over a longer window undercounts.
const loginFailureRetention = 24 * time.Hour

// AddLoginFailure records a failed login for key and, in the same
// statement, forgets the key's failures older than loginFailureRetention
// before at.
func (s *Store) AddLoginFailure(ctx context.Context, key string, at time.Time) error {
	_, err := s.pool.Exec(ctx, `WITH pruned AS (
			DELETE FROM login_failures WHERE key = $1 AND at < $3
		)
		INSERT INTO login_failures (key, at) VALUES ($1, $2)`,
		key, micro(at), micro(at.Add(-loginFailureRetention)))
	if err != nil {
		// The key is not logged: it holds an email or an address.
		return mapErr(err, "add login failure")
	}
	return nil
}

// LoginFailures counts key's failures at or after since and returns the
// oldest of them, the zero time when there are none.
func (s *Store) LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error) {
	var (
		n      int
		oldest *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(at) FROM login_failures WHERE key = $1 AND at >= $2`,
		key, micro(since)).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count login failures: %w", err)
	}
	if oldest == nil {
		return n, time.Time{}, nil
	}
	return n, utc(*oldest), nil
}

// ClearLoginFailures forgets key's failures.
func (s *Store) ClearLoginFailures(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key); err != nil {
		return mapErr(err, "clear login failures")
	}
	return nil
}

// ClaimTOTPStep raises the user's last used TOTP step to step, and reports
// whether it did: false when that step or a later one was already used. The
// conditional update is atomic, so of concurrent claims of one step exactly
// one succeeds. An unknown user claims nothing: false, with no error.
func (s *Store) ClaimTOTPStep(ctx context.Context, userID string, step int64) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2`, userID, step)
	if err != nil {
		return false, mapErr(err, "claim TOTP step of user "+userID)
	}
	return tag.RowsAffected() == 1, nil
}

// SetRecoveryCodes replaces the user's recovery codes with hashes, in one
// transaction: on error the old codes stand. rooms.ErrNotFound when the
// user does not exist, rooms.ErrDuplicate when hashes repeats itself.
func (s *Store) SetRecoveryCodes(ctx context.Context, userID string, hashes []string) error {
	what := "set recovery codes of user " + userID
	ptx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.ReadCommitted})
	if err != nil {
		return fmt.Errorf("%s: begin transaction: %w", what, err)
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
		_ = ptx.Rollback(rctx) // a no-op after Commit
		cancel()
	}()
	// The user's row lock serialises concurrent replacements, which would
	// otherwise each delete the (same) old codes and leave both new sets.
	// NO KEY UPDATE does not block the foreign-key checks of other
	// transactions inserting sessions or codes for the user.
	var one int
	err = ptx.QueryRow(ctx, `SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE`, userID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, rooms.ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if _, err := ptx.Exec(ctx, `DELETE FROM recovery_codes WHERE user_id = $1`, userID); err != nil {
		return mapErr(err, what)
	}
	if len(hashes) > 0 {
		if _, err := ptx.Exec(ctx, `INSERT INTO recovery_codes (user_id, hash) SELECT $1, unnest($2::text[])`,
			userID, hashes); err != nil {
			return mapErr(err, what)
		}
	}
	if err := ptx.Commit(ctx); err != nil {
		return mapErr(err, what)
	}
	return nil
}

// UseRecoveryCode spends the user's unused code with hash, and reports
// whether there was one. The conditional update is atomic, so a code is
// spent once however many requests race for it.
func (s *Store) UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE recovery_codes SET used_at = $3
		WHERE user_id = $1 AND hash = $2 AND used_at IS NULL`, userID, hash, micro(at))
	if err != nil {
		return false, mapErr(err, "use recovery code of user "+userID)
	}
	return tag.RowsAffected() == 1, nil
}

// RecoveryCodesLeft counts the user's unused recovery codes.
func (s *Store) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count recovery codes of user %s: %w", userID, err)
	}
	return n, nil
}
