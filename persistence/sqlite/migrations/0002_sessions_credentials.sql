-- Server-side sessions, login throttling and second-factor state. Times are
-- INTEGER microseconds since the Unix epoch, UTC, as in 0001.

-- totp_pending_secret is a secret offered at enrolment and not yet confirmed
-- with a code; totp_last_step is the last TOTP time step the user has used,
-- so each code works once.
ALTER TABLE users ADD COLUMN totp_pending_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN totp_last_step INTEGER NOT NULL DEFAULT 0;

-- A session is found by the hash of its cookie's token; the token itself is
-- never stored.
CREATE TABLE sessions (
	id           TEXT PRIMARY KEY,
	token_hash   TEXT NOT NULL UNIQUE,
	user_id      TEXT NOT NULL REFERENCES users (id),
	created_at   INTEGER NOT NULL,
	last_seen_at INTEGER NOT NULL,
	client_addr  TEXT NOT NULL,
	user_agent   TEXT NOT NULL
) STRICT;

-- A user's sessions, newest first.
CREATE INDEX sessions_by_user ON sessions (user_id, created_at);

-- One row per failed login, by throttling key ("account:<email>",
-- "addr:<ip>"). Rows older than a day are pruned as the key fails again.
CREATE TABLE login_failures (
	key TEXT NOT NULL,
	at  INTEGER NOT NULL
) STRICT;

CREATE INDEX login_failures_by_key ON login_failures (key, at);

-- The hashes of a user's recovery codes; used_at is set when one is spent.
CREATE TABLE recovery_codes (
	user_id TEXT NOT NULL REFERENCES users (id),
	hash    TEXT NOT NULL,
	used_at INTEGER,
	PRIMARY KEY (user_id, hash)
) STRICT, WITHOUT ROWID;
