package rooms

import (
	"context"
	"time"
)

// Session is a signed-in browser. The cookie carries a random token; the
// store keeps only the token's hash, so a copy of the database does not
// yield live sessions.
type Session struct {
	// ID is the session's public id, shown in the user's list of sessions.
	ID         string    `json:"id"`
	TokenHash  string    `json:"-"`
	UserID     string    `json:"user_id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ClientAddr string    `json:"client_addr"`
	UserAgent  string    `json:"user_agent"`
}

// SessionStore keeps sessions server-side. Lookups return an error wrapping
// ErrNotFound when the session does not exist.
type SessionStore interface {
	CreateSession(ctx context.Context, s Session) error
	SessionByTokenHash(ctx context.Context, tokenHash string) (Session, error)
	// TouchSession records activity; it never moves LastSeenAt backwards.
	TouchSession(ctx context.Context, id string, at time.Time) error
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions ends every session of a user and returns how many
	// there were.
	DeleteUserSessions(ctx context.Context, userID string) (int, error)
	// UserSessions lists a user's sessions, most recently created first.
	UserSessions(ctx context.Context, userID string) ([]Session, error)
	// DeleteExpiredSessions removes sessions idle since before idleBefore or
	// created before createdBefore, and returns how many.
	DeleteExpiredSessions(ctx context.Context, idleBefore, createdBefore time.Time) (int, error)
}

// CredentialStore keeps the state of login throttling and second factors.
// Each method is atomic on its own, on every node.
type CredentialStore interface {
	// AddLoginFailure records a failed login for key ("account:<email>",
	// "addr:<ip>").
	AddLoginFailure(ctx context.Context, key string, at time.Time) error
	// LoginFailures counts key's failures at or after since, and returns the
	// oldest of them (zero when none).
	LoginFailures(ctx context.Context, key string, since time.Time) (count int, oldest time.Time, err error)
	// ClearLoginFailures forgets key's failures (after a successful login).
	ClearLoginFailures(ctx context.Context, key string) error

	// ClaimTOTPStep records that the user has used the TOTP code of time
	// step; it returns false when that step or a later one was already used,
	// so each code works once.
	ClaimTOTPStep(ctx context.Context, userID string, step int64) (bool, error)
	// SetRecoveryCodes replaces the user's recovery codes (their hashes).
	SetRecoveryCodes(ctx context.Context, userID string, hashes []string) error
	// UseRecoveryCode spends one unused recovery code; false when the user
	// has no unused code with that hash.
	UseRecoveryCode(ctx context.Context, userID, hash string, at time.Time) (bool, error)
	// RecoveryCodesLeft counts the user's unused recovery codes.
	RecoveryCodesLeft(ctx context.Context, userID string) (int, error)
}
