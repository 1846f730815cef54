-- Server-side sessions, login throttling and second-factor state.

-- totp_pending_secret is a secret offered at enrolment and not yet confirmed
-- with a code; totp_last_step is the last TOTP time step the user has used,
-- raised atomically so each code works once, even across nodes.
ALTER TABLE users
	ADD COLUMN totp_pending_secret text NOT NULL DEFAULT '',
	ADD COLUMN totp_last_step      bigint NOT NULL DEFAULT 0;

-- A session is found by the hash of its cookie's token; the token itself is
-- never stored.
CREATE TABLE sessions (
	id           text PRIMARY KEY,
	token_hash   text NOT NULL UNIQUE,
	user_id      text NOT NULL REFERENCES users (id),
	created_at   timestamptz NOT NULL,
	last_seen_at timestamptz NOT NULL,
	client_addr  text NOT NULL DEFAULT '',
	user_agent   text NOT NULL DEFAULT ''
);
-- A user's sessions, newest first.
CREATE INDEX sessions_user_idx ON sessions (user_id, created_at);

-- One row per failed login, by throttling key ("account:<email>",
-- "addr:<ip>"). Rows older than a day are pruned as the key fails again.
CREATE TABLE login_failures (
	key text NOT NULL,
	at  timestamptz NOT NULL
);
CREATE INDEX login_failures_key_idx ON login_failures (key, at);

-- The hashes of a user's recovery codes; used_at is set when one is spent.
CREATE TABLE recovery_codes (
	user_id text NOT NULL REFERENCES users (id),
	hash    text NOT NULL,
	used_at timestamptz,
	PRIMARY KEY (user_id, hash)
);
