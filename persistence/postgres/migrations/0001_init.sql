-- Tables are created unqualified, in the connection's search_path schema, so
-- one database can hold several installations (and every test its own).

CREATE TABLE organisations (
	ods  text PRIMARY KEY,
	name text NOT NULL
);

CREATE TABLE users (
	id                  text PRIMARY KEY,
	email               text NOT NULL,
	-- email_key is rooms.NormaliseEmail(email), computed in Go so lookups and
	-- uniqueness follow the domain's rule rather than the collation's.
	email_key           text NOT NULL UNIQUE,
	name                text NOT NULL,
	professional_body   text NOT NULL DEFAULT '',
	registration_number text NOT NULL DEFAULT '',
	organisation        text NOT NULL DEFAULT '',
	roles               text[] NOT NULL DEFAULT '{}',
	status              text NOT NULL,
	password_hash       text NOT NULL DEFAULT '',
	totp_secret         text NOT NULL DEFAULT '',
	created_at          timestamptz NOT NULL,
	updated_at          timestamptz NOT NULL
);
CREATE INDEX users_organisation_idx ON users (organisation, created_at);

CREATE TABLE pathways (
	id                     text PRIMARY KEY,
	receiving_organisation text NOT NULL,
	definition             jsonb NOT NULL
);

CREATE TABLE referrals (
	id                     text PRIMARY KEY,
	pathway_id             text NOT NULL,
	status                 text NOT NULL,
	priority               text NOT NULL,
	patient_nhs_number     text NOT NULL,
	patient_name           text NOT NULL,
	patient_date_of_birth  text NOT NULL,
	patient_sex            text NOT NULL,
	form                   jsonb,
	contact_phone          text NOT NULL DEFAULT '',
	consultant_discussed   boolean NOT NULL DEFAULT false,
	referrer               jsonb NOT NULL,
	referring_organisation text NOT NULL,
	receiving_organisation text NOT NULL,
	assignee_id            text NOT NULL DEFAULT '',
	outcome                jsonb,
	submitted_at           timestamptz,
	triage_due_at          timestamptz,
	created_at             timestamptz NOT NULL,
	updated_at             timestamptz NOT NULL,
	head_seq               bigint NOT NULL DEFAULT 0
);
-- The coordinators' board: one receiving organisation's queue by deadline.
CREATE INDEX referrals_receiving_idx ON referrals (receiving_organisation, triage_due_at, created_at DESC);

CREATE TABLE referral_participants (
	referral_id text NOT NULL REFERENCES referrals (id),
	user_id     text NOT NULL,
	name        text NOT NULL,
	added_by    text NOT NULL DEFAULT '',
	added_at    timestamptz NOT NULL,
	-- pos keeps insertion order among participants added at the same instant.
	pos         bigint GENERATED ALWAYS AS IDENTITY,
	PRIMARY KEY (referral_id, user_id)
);
-- "My referrals": the visibility check runs from the user's side.
CREATE INDEX referral_participants_user_idx ON referral_participants (user_id, referral_id);

CREATE TABLE plan_sections (
	referral_id text NOT NULL REFERENCES referrals (id),
	name        text NOT NULL,
	revision    bigint NOT NULL,
	text        text NOT NULL,
	updated_by  text NOT NULL DEFAULT '',
	updated_at  timestamptz,
	PRIMARY KEY (referral_id, name)
);

CREATE TABLE events (
	referral_id text NOT NULL REFERENCES referrals (id),
	seq         bigint NOT NULL,
	kind        text NOT NULL,
	author      jsonb NOT NULL,
	at          timestamptz NOT NULL,
	body        jsonb,
	PRIMARY KEY (referral_id, seq)
);

CREATE TABLE read_markers (
	referral_id text NOT NULL,
	user_id     text NOT NULL,
	seq         bigint NOT NULL,
	PRIMARY KEY (referral_id, user_id)
);

CREATE TABLE commands (
	actor_id    text NOT NULL,
	ref         text NOT NULL,
	kind        text NOT NULL,
	referral_id text NOT NULL DEFAULT '',
	result      jsonb,
	at          timestamptz NOT NULL,
	PRIMARY KEY (actor_id, ref)
);

CREATE TABLE settings (
	key   text PRIMARY KEY,
	value text NOT NULL
);

CREATE TABLE audit_entries (
	id                 bigserial PRIMARY KEY,
	chain              integer NOT NULL,
	seq                bigint NOT NULL,
	at                 timestamptz NOT NULL,
	actor_id           text NOT NULL DEFAULT '',
	actor_registration text NOT NULL DEFAULT '',
	actor_role         text NOT NULL DEFAULT '',
	action             text NOT NULL,
	event              text NOT NULL,
	referral_id        text NOT NULL DEFAULT '',
	patient_nhs_number text NOT NULL DEFAULT '',
	outcome            text NOT NULL,
	detail             text NOT NULL DEFAULT '',
	node               text NOT NULL DEFAULT '',
	client_addr        text NOT NULL DEFAULT '',
	prev_hash          text NOT NULL,
	hash               text NOT NULL,
	UNIQUE (chain, seq)
);
CREATE INDEX audit_entries_referral_idx ON audit_entries (referral_id, id) WHERE referral_id <> '';
CREATE INDEX audit_entries_actor_idx ON audit_entries (actor_id, id);

-- One row per chain; its rows are inserted by the migrator from
-- rooms.AuditChains so the number of chains has one source of truth.
CREATE TABLE audit_chain_heads (
	chain integer PRIMARY KEY,
	seq   bigint NOT NULL DEFAULT 0,
	hash  text NOT NULL DEFAULT ''
);

-- The audit log is append-only. Triggers rather than privileges, because
-- privileges do not bind the table's owner (often the application's role);
-- only going around triggers on purpose (session_replication_role, which
-- needs a superuser) can change an entry, and VerifyAudit detects that.
CREATE FUNCTION audit_entries_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'audit log is append-only: % of audit_entries refused', TG_OP
		USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_entries_no_update_delete
	BEFORE UPDATE OR DELETE ON audit_entries
	FOR EACH ROW EXECUTE FUNCTION audit_entries_refuse_change();

CREATE TRIGGER audit_entries_no_truncate
	BEFORE TRUNCATE ON audit_entries
	FOR EACH STATEMENT EXECUTE FUNCTION audit_entries_refuse_change();
