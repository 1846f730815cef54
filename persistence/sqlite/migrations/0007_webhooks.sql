-- Webhooks (SPEC §10): subscriptions, the transactional outbox and the
-- delivery log. Times are INTEGER microseconds since the Unix epoch, UTC,
-- as in 0001.

-- An organisation's subscriptions. The secret is kept to sign with; it is
-- shown to the admin once. events is a JSON array of the event types it
-- takes.
CREATE TABLE webhooks (
	id           TEXT PRIMARY KEY,
	organisation TEXT NOT NULL REFERENCES organisations (ods),
	url          TEXT NOT NULL,
	events       TEXT NOT NULL,
	secret       TEXT NOT NULL,
	created_by   TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	disabled_at  INTEGER
) STRICT;
CREATE INDEX webhooks_live_idx ON webhooks (organisation) WHERE disabled_at IS NULL;

-- Messages waiting to be delivered, one per subscription and event,
-- written in the transaction of the command that appended the event. A
-- message leaves once delivered or finally failed. due_at is when it may be
-- attempted (0: at once); lease and lease_until are the claim of the
-- dispatcher attempting it.
CREATE TABLE webhook_outbox (
	id               INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook_id       TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	referral_id      TEXT NOT NULL,
	seq              INTEGER NOT NULL,
	message_id       TEXT NOT NULL,
	type             TEXT NOT NULL,
	payload          BLOB NOT NULL,
	created_at       INTEGER NOT NULL,
	due_at           INTEGER NOT NULL DEFAULT 0,
	attempts         INTEGER NOT NULL DEFAULT 0,
	first_attempt_at INTEGER,
	lease            TEXT,
	lease_until      INTEGER,
	UNIQUE (webhook_id, message_id)
) STRICT;
CREATE INDEX webhook_outbox_order_idx ON webhook_outbox (webhook_id, referral_id, seq, id);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (due_at, id);

-- Every delivery attempt, pruned by age and by count per subscription.
-- payload is kept so an attempt can be replayed.
CREATE TABLE webhook_deliveries (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	webhook_id      TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	message_id      TEXT NOT NULL,
	type            TEXT NOT NULL,
	referral_id     TEXT NOT NULL,
	seq             INTEGER NOT NULL,
	attempt         INTEGER NOT NULL,
	at              INTEGER NOT NULL,
	status_code     INTEGER NOT NULL,
	error           TEXT NOT NULL,
	duration_ms     INTEGER NOT NULL,
	outcome         TEXT NOT NULL,
	next_attempt_at INTEGER,
	payload         BLOB NOT NULL
) STRICT;
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_at_idx ON webhook_deliveries (at);
