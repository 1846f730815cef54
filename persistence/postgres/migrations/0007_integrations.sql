-- Integrator clients (SPEC §10, SMART Backend Services): their public keys
-- and scopes, the assertion ids each has used, and the tokens issued to it.

-- jwks is the client's public key set as rooms.CheckKeySet stored it.
CREATE TABLE integrations (
	client_id    text PRIMARY KEY,
	organisation text NOT NULL REFERENCES organisations (ods),
	name         text NOT NULL,
	jwks         text NOT NULL,
	scopes       text[] NOT NULL,
	created_by   text NOT NULL,
	created_at   timestamptz NOT NULL,
	revoked_at   timestamptz
);
CREATE INDEX integrations_organisation_idx ON integrations (organisation, created_at);

-- An assertion's jti is used once: the primary key is what refuses a
-- replay, however many arrive at once on however many nodes. A row is kept
-- until its assertion has expired, when a replay is refused for that.
CREATE TABLE integration_assertions (
	client_id  text NOT NULL REFERENCES integrations (client_id),
	jti        text NOT NULL,
	expires_at timestamptz NOT NULL,
	PRIMARY KEY (client_id, jti)
);
CREATE INDEX integration_assertions_expiry_idx ON integration_assertions (client_id, expires_at);

-- Only a token's hash is kept: a copy of the database yields no token.
CREATE TABLE integration_tokens (
	token_hash text PRIMARY KEY,
	client_id  text NOT NULL REFERENCES integrations (client_id),
	scopes     text[] NOT NULL,
	issued_at  timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX integration_tokens_expiry_idx ON integration_tokens (client_id, expires_at);
