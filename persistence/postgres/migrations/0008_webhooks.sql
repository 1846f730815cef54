-- Webhooks (SPEC §10): subscriptions, the transactional outbox and the
-- delivery log.

-- An organisation's subscriptions. The secret is kept to sign with; it is
-- shown to the admin once. events are the event types it takes.
CREATE TABLE webhooks (
	id           text PRIMARY KEY,
	organisation text NOT NULL REFERENCES organisations (ods),
	url          text NOT NULL,
	events       text[] NOT NULL,
	secret       text NOT NULL,
	created_by   text NOT NULL,
	created_at   timestamptz NOT NULL,
	disabled_at  timestamptz
);
-- The outbox's insert finds an organisation's live subscriptions by it.
CREATE INDEX webhooks_live_idx ON webhooks (organisation) WHERE disabled_at IS NULL;

-- Messages waiting to be delivered, one per subscription and event,
-- written in the transaction of the command that appended the event. A
-- message leaves once delivered or finally failed. due_at is when it may be
-- attempted (-infinity: at once, whatever the clock of the node that wrote
-- it); lease and lease_until are the claim of the dispatcher attempting it.
CREATE TABLE webhook_outbox (
	id               bigserial PRIMARY KEY,
	webhook_id       text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	referral_id      text NOT NULL,
	seq              bigint NOT NULL,
	message_id       text NOT NULL,
	type             text NOT NULL,
	payload          bytea NOT NULL,
	created_at       timestamptz NOT NULL,
	due_at           timestamptz NOT NULL DEFAULT '-infinity',
	attempts         integer NOT NULL DEFAULT 0,
	first_attempt_at timestamptz,
	lease            text,
	lease_until      timestamptz,
	UNIQUE (webhook_id, message_id)
);
-- A message is attempted only when none before it in its subscription and
-- referral is queued: the claim looks for one by this index.
CREATE INDEX webhook_outbox_order_idx ON webhook_outbox (webhook_id, referral_id, seq, id);
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (due_at, id);

-- Every delivery attempt, pruned by age and by count per subscription.
-- payload is kept so an attempt can be replayed.
CREATE TABLE webhook_deliveries (
	id              bigserial PRIMARY KEY,
	webhook_id      text NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
	message_id      text NOT NULL,
	type            text NOT NULL,
	referral_id     text NOT NULL,
	seq             bigint NOT NULL,
	attempt         integer NOT NULL,
	at              timestamptz NOT NULL,
	status_code     integer NOT NULL,
	error           text NOT NULL,
	duration_ms     bigint NOT NULL,
	outcome         text NOT NULL,
	next_attempt_at timestamptz,
	payload         bytea NOT NULL
);
CREATE INDEX webhook_deliveries_webhook_idx ON webhook_deliveries (webhook_id, id);
CREATE INDEX webhook_deliveries_at_idx ON webhook_deliveries (at);
