-- Integrator clients (SPEC §10, SMART Backend Services): their public keys
-- and scopes, the assertion ids each has used, and the tokens issued to it.
-- Times are INTEGER microseconds since the Unix epoch, UTC, as in 0001;
-- scopes are JSON arrays of strings.

-- jwks is the client's public key set as rooms.CheckKeySet stored it.
CREATE TABLE integrations (
	client_id    TEXT PRIMARY KEY,
	organisation TEXT NOT NULL REFERENCES organisations (ods),
	name         TEXT NOT NULL,
	jwks         TEXT NOT NULL,
	scopes       TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	revoked_at   INTEGER
) STRICT;
CREATE INDEX integrations_by_organisation ON integrations (organisation, created_at);

-- An assertion's jti is used once: the primary key is what refuses a
-- replay. A row is kept until its assertion has expired, when a replay is
-- refused for that.
CREATE TABLE integration_assertions (
	client_id  TEXT NOT NULL REFERENCES integrations (client_id),
	jti        TEXT NOT NULL,
	expires_at INTEGER NOT NULL,
	PRIMARY KEY (client_id, jti)
) STRICT;
CREATE INDEX integration_assertions_by_expiry ON integration_assertions (client_id, expires_at);

-- Only a token's hash is kept: a copy of the database yields no token.
CREATE TABLE integration_tokens (
	token_hash TEXT PRIMARY KEY,
	client_id  TEXT NOT NULL REFERENCES integrations (client_id),
	scopes     TEXT NOT NULL,
	issued_at  INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX integration_tokens_by_expiry ON integration_tokens (client_id, expires_at);
