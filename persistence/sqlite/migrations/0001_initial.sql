-- Times are INTEGER microseconds since the Unix epoch, UTC: the precision
-- every store keeps. JSON values are TEXT. Tables are STRICT so a wrong type
-- is an error rather than a silent conversion.

CREATE TABLE organisations (
	ods  TEXT PRIMARY KEY,
	name TEXT NOT NULL
) STRICT;

CREATE TABLE users (
	id                  TEXT PRIMARY KEY,
	email               TEXT NOT NULL,
	-- email_key is the normalised email: lookups and uniqueness agree.
	email_key           TEXT NOT NULL UNIQUE,
	name                TEXT NOT NULL,
	professional_body   TEXT NOT NULL,
	registration_number TEXT NOT NULL,
	organisation        TEXT NOT NULL REFERENCES organisations (ods),
	roles               TEXT NOT NULL,
	status              TEXT NOT NULL,
	password_hash       TEXT NOT NULL,
	totp_secret         TEXT NOT NULL,
	created_at          INTEGER NOT NULL,
	updated_at          INTEGER NOT NULL
) STRICT;

CREATE INDEX users_by_organisation ON users (organisation, created_at);

CREATE TABLE pathways (
	id                     TEXT PRIMARY KEY,
	receiving_organisation TEXT NOT NULL REFERENCES organisations (ods),
	definition             TEXT NOT NULL
) STRICT;

CREATE TABLE referrals (
	id                     TEXT PRIMARY KEY,
	pathway_id             TEXT NOT NULL REFERENCES pathways (id),
	status                 TEXT NOT NULL,
	priority               TEXT NOT NULL,
	patient_nhs_number     TEXT NOT NULL,
	patient_name           TEXT NOT NULL,
	patient_date_of_birth  TEXT NOT NULL,
	patient_sex            TEXT NOT NULL,
	form                   TEXT NOT NULL,
	contact_phone          TEXT NOT NULL,
	consultant_discussed   INTEGER NOT NULL,
	referrer               TEXT NOT NULL,
	referring_organisation TEXT NOT NULL REFERENCES organisations (ods),
	receiving_organisation TEXT NOT NULL REFERENCES organisations (ods),
	assignee_id            TEXT REFERENCES users (id),
	outcome                TEXT,
	submitted_at           INTEGER,
	triage_due_at          INTEGER,
	created_at             INTEGER NOT NULL,
	updated_at             INTEGER NOT NULL,
	head_seq               INTEGER NOT NULL
) STRICT;

-- The board's order: earliest deadline first, none last, newest first.
CREATE INDEX referrals_by_deadline ON referrals (triage_due_at IS NULL, triage_due_at, created_at DESC);
CREATE INDEX referrals_by_receiver ON referrals (receiving_organisation, status);
CREATE INDEX referrals_by_nhs_number ON referrals (patient_nhs_number);

CREATE TABLE participants (
	referral_id TEXT NOT NULL REFERENCES referrals (id),
	user_id     TEXT NOT NULL REFERENCES users (id),
	name        TEXT NOT NULL,
	added_by    TEXT NOT NULL,
	added_at    INTEGER NOT NULL,
	PRIMARY KEY (referral_id, user_id)
) STRICT;

CREATE INDEX participants_by_user ON participants (user_id);

CREATE TABLE events (
	referral_id TEXT NOT NULL REFERENCES referrals (id),
	seq         INTEGER NOT NULL,
	kind        TEXT NOT NULL,
	author      TEXT NOT NULL,
	at          INTEGER NOT NULL,
	body        TEXT NOT NULL,
	PRIMARY KEY (referral_id, seq)
) STRICT, WITHOUT ROWID;

CREATE TABLE plan_sections (
	referral_id TEXT NOT NULL REFERENCES referrals (id),
	name        TEXT NOT NULL,
	revision    INTEGER NOT NULL,
	text        TEXT NOT NULL,
	updated_by  TEXT NOT NULL,
	updated_at  INTEGER NOT NULL,
	PRIMARY KEY (referral_id, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE read_markers (
	referral_id TEXT NOT NULL REFERENCES referrals (id),
	user_id     TEXT NOT NULL REFERENCES users (id),
	seq         INTEGER NOT NULL,
	PRIMARY KEY (referral_id, user_id)
) STRICT, WITHOUT ROWID;

-- referral_id is empty for commands that create their referral.
CREATE TABLE commands (
	actor_id    TEXT NOT NULL,
	ref         TEXT NOT NULL,
	kind        TEXT NOT NULL,
	referral_id TEXT NOT NULL,
	result      TEXT,
	at          INTEGER NOT NULL,
	PRIMARY KEY (actor_id, ref)
) STRICT, WITHOUT ROWID;

CREATE TABLE settings (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
) STRICT;

CREATE TABLE audit_entries (
	id                 INTEGER PRIMARY KEY AUTOINCREMENT,
	chain              INTEGER NOT NULL,
	seq                INTEGER NOT NULL,
	at                 INTEGER NOT NULL,
	actor_id           TEXT NOT NULL,
	actor_registration TEXT NOT NULL,
	actor_role         TEXT NOT NULL,
	action             TEXT NOT NULL,
	event              TEXT NOT NULL,
	referral_id        TEXT NOT NULL,
	patient_nhs_number TEXT NOT NULL,
	outcome            TEXT NOT NULL,
	detail             TEXT NOT NULL,
	node               TEXT NOT NULL,
	client_addr        TEXT NOT NULL,
	prev_hash          TEXT NOT NULL,
	hash               TEXT NOT NULL,
	UNIQUE (chain, seq)
) STRICT;

CREATE INDEX audit_log_by_referral ON audit_entries (referral_id, id);
CREATE INDEX audit_log_by_actor ON audit_entries (actor_id, id);

-- The database itself refuses to change history, whoever asks. SQLite has no
-- TRUNCATE: a DELETE without WHERE fires the trigger like any other.
CREATE TRIGGER audit_entries_refuse_update BEFORE UPDATE ON audit_entries
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;

CREATE TRIGGER audit_entries_refuse_delete BEFORE DELETE ON audit_entries
BEGIN
	SELECT RAISE(ABORT, 'audit log is append-only');
END;

-- One row per chain. The head is what lets audit verify notice entries cut
-- from the end of a chain, so it only moves forward, one entry at a time,
-- onto an entry that exists: it cannot be rewound along with them.
CREATE TABLE audit_chain_heads (
	chain INTEGER PRIMARY KEY,
	seq   INTEGER NOT NULL,
	hash  TEXT NOT NULL
) STRICT;

WITH RECURSIVE chains (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM chains WHERE n < 15)
INSERT INTO audit_chain_heads (chain, seq, hash) SELECT n, 0, '' FROM chains;

CREATE TRIGGER audit_chain_heads_refuse_delete BEFORE DELETE ON audit_chain_heads
BEGIN
	SELECT RAISE(ABORT, 'audit chain heads cannot be removed');
END;

CREATE TRIGGER audit_chain_heads_move_forward BEFORE UPDATE ON audit_chain_heads
WHEN NEW.chain <> OLD.chain
	OR NEW.seq <> OLD.seq + 1
	OR NOT EXISTS (SELECT 1 FROM audit_entries WHERE chain = NEW.chain AND seq = NEW.seq AND hash = NEW.hash)
BEGIN
	SELECT RAISE(ABORT, 'audit chain head may only move to the next entry');
END;
