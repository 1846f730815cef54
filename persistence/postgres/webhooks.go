package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"patientpass/rooms"
)

// Webhooks (rooms.WebhookReader, rooms.WebhookTx, rooms.WebhookStore): the
// subscriptions, the outbox written with each command, and the delivery log.

const webhookColumns = `id, organisation, url, events, secret, created_by, created_at, disabled_at`

func scanWebhook(row pgx.Row) (rooms.Webhook, error) {
	var (
		w      rooms.Webhook
		events []string
	)
	err := row.Scan(&w.ID, &w.Organisation, &w.URL, &events, &w.Secret, &w.CreatedBy, &w.CreatedAt, &w.DisabledAt)
	for _, e := range events {
		w.Events = append(w.Events, rooms.WebhookEvent(e))
	}
	w.CreatedAt, w.DisabledAt = utc(w.CreatedAt), utcPtr(w.DisabledAt)
	return w, err
}

func eventStrings(es []rooms.WebhookEvent) []string {
	s := make([]string, len(es))
	for i, e := range es {
		s[i] = string(e)
	}
	return s
}

// Webhook returns a subscription, disabled or not.
func (r reader) Webhook(ctx context.Context, id string) (rooms.Webhook, error) {
	w, err := scanWebhook(r.q.QueryRow(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.Webhook{}, fmt.Errorf("get webhook %s: %w", id, rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.Webhook{}, fmt.Errorf("get webhook %s: %w", id, err)
	}
	return w, nil
}

// Webhooks lists an organisation's live subscriptions, oldest first.
func (r reader) Webhooks(ctx context.Context, organisation string) ([]rooms.Webhook, error) {
	rows, err := r.q.Query(ctx, `SELECT `+webhookColumns+` FROM webhooks
		WHERE organisation = $1 AND disabled_at IS NULL ORDER BY created_at, id`, organisation)
	if err != nil {
		return nil, fmt.Errorf("list webhooks of %s: %w", organisation, err)
	}
	ws, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Webhook, error) { return scanWebhook(row) })
	if err != nil {
		return nil, fmt.Errorf("list webhooks of %s: %w", organisation, err)
	}
	return ws, nil
}

const deliveryColumns = `id, webhook_id, message_id, type, referral_id, seq, attempt, at, status_code, error,
	duration_ms, outcome, next_attempt_at, payload`

func scanDelivery(row pgx.Row) (rooms.WebhookDelivery, error) {
	var d rooms.WebhookDelivery
	err := row.Scan(&d.ID, &d.WebhookID, &d.MessageID, &d.Type, &d.ReferralID, &d.Seq, &d.Attempt, &d.At, &d.StatusCode,
		&d.Error, &d.DurationMS, &d.Outcome, &d.NextAttemptAt, &d.Payload)
	d.At, d.NextAttemptAt = utc(d.At), utcPtr(d.NextAttemptAt)
	return d, err
}

// WebhookDeliveries lists up to limit attempts of a subscription with an id
// below before (0: from the newest), newest first.
func (r reader) WebhookDeliveries(ctx context.Context, webhookID string, before int64, limit int) ([]rooms.WebhookDelivery, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	rows, err := r.q.Query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE webhook_id = $1 AND id < $2 ORDER BY id DESC LIMIT $3`, webhookID, before, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("list deliveries of webhook %s: %w", webhookID, err)
	}
	ds, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.WebhookDelivery, error) { return scanDelivery(row) })
	if err != nil {
		return nil, fmt.Errorf("list deliveries of webhook %s: %w", webhookID, err)
	}
	return ds, nil
}

// WebhookDelivery returns one attempt of a subscription.
func (r reader) WebhookDelivery(ctx context.Context, webhookID string, id int64) (rooms.WebhookDelivery, error) {
	d, err := scanDelivery(r.q.QueryRow(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE webhook_id = $1 AND id = $2`, webhookID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.WebhookDelivery{}, fmt.Errorf("get delivery %d of webhook %s: %w", id, webhookID, rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.WebhookDelivery{}, fmt.Errorf("get delivery %d of webhook %s: %w", id, webhookID, err)
	}
	return d, nil
}

// QueuedWebhookMessages counts the outbox's messages, of one subscription
// or, for "", of all.
func (r reader) QueuedWebhookMessages(ctx context.Context, webhookID string) (int, error) {
	var n int
	err := r.q.QueryRow(ctx, `SELECT count(*) FROM webhook_outbox WHERE $1 = '' OR webhook_id = $1`, webhookID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count queued webhook messages: %w", err)
	}
	return n, nil
}

// LockWebhooks locks the organisation's row, which serialises the
// registrations of one organisation (FOR NO KEY UPDATE: rows that refer to
// the organisation are still written meanwhile), and then counts its live
// subscriptions, in a statement of its own so that it sees what a
// registration it waited for committed.
func (t *tx) LockWebhooks(ctx context.Context, organisation string) (int, error) {
	b := &pgx.Batch{}
	b.Queue(`SELECT 1 FROM organisations WHERE ods = $1 FOR NO KEY UPDATE`, organisation)
	b.Queue(`SELECT count(*) FROM webhooks WHERE organisation = $1 AND disabled_at IS NULL`, organisation)
	br := t.q.SendBatch(ctx, b)
	_, err := br.Exec()
	var n int
	if err == nil {
		err = br.QueryRow().Scan(&n)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, mapErr(err, "lock webhooks of "+organisation)
	}
	return n, nil
}

// CreateWebhook stores a new subscription; rooms.ErrDuplicate when the id
// is taken.
func (t *tx) CreateWebhook(ctx context.Context, w rooms.Webhook) error {
	_, err := t.q.Exec(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		w.ID, w.Organisation, w.URL, eventStrings(w.Events), w.Secret, w.CreatedBy, micro(w.CreatedAt), microPtr(w.DisabledAt))
	if err != nil {
		return mapErr(err, "create webhook "+w.ID)
	}
	return nil
}

// DisableWebhook marks a live subscription disabled and drops its queued
// messages, in one statement; rooms.ErrNotFound when there is no live one.
func (t *tx) DisableWebhook(ctx context.Context, id string, at time.Time) error {
	var n int
	err := t.q.QueryRow(ctx, `WITH off AS (
			UPDATE webhooks SET disabled_at = $2 WHERE id = $1 AND disabled_at IS NULL RETURNING id
		), dropped AS (
			DELETE FROM webhook_outbox WHERE webhook_id IN (SELECT id FROM off)
		)
		SELECT count(*) FROM off`, id, micro(at)).Scan(&n)
	if err != nil {
		return mapErr(err, "disable webhook "+id)
	}
	if n == 0 {
		return fmt.Errorf("disable webhook %s: %w", id, rooms.ErrNotFound)
	}
	return nil
}

// AppendOutbox queues m for the live subscriptions of m.Organisation to
// m.Type. It is sent with the transaction's next statement; in a group,
// every message of the group goes in one statement (outboxRows).
//
// The payload is sent as it is, not copied (unlike an event's body): it is
// built for this call alone (rooms' queueWebhooks), and a copy per post is
// a third of what the outbox costs the hot path.
func (t *tx) AppendOutbox(_ context.Context, m rooms.WebhookMessage) error {
	t.q.queueRow(outboxRows, []any{m.Organisation, m.ReferralID, m.Seq, m.ID, string(m.Type), []byte(m.Payload), micro(m.At)},
		func(_ pgconn.CommandTag, err error) error {
			if err != nil {
				return mapErr(err, fmt.Sprintf("queue webhooks of event %d of referral %s", m.Seq, m.ReferralID))
			}
			return nil
		})
	return nil
}

// outboxRows are queued webhook messages: an INSERT … SELECT from the
// subscriptions that match, so that none matching writes nothing, and
// nothing is read back. Several go as one statement from arrays.
var outboxRows = &rowKind{
	one: `INSERT INTO webhook_outbox (webhook_id, referral_id, seq, message_id, type, payload, created_at)
		SELECT w.id, $2, $3, $4, $5, $6, $7 FROM webhooks w
		WHERE w.organisation = $1 AND w.disabled_at IS NULL AND $5::text = ANY (w.events)`,
	many: func(rows [][]any) (string, []any) {
		return `INSERT INTO webhook_outbox (webhook_id, referral_id, seq, message_id, type, payload, created_at)
			SELECT w.id, m.referral_id, m.seq, m.message_id, m.type, m.payload, m.created_at
			FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::bytea[], $7::timestamptz[])
				AS m(organisation, referral_id, seq, message_id, type, payload, created_at)
			JOIN webhooks w ON w.organisation = m.organisation AND w.disabled_at IS NULL AND m.type = ANY (w.events)`,
			[]any{column[string](rows, 0), column[string](rows, 1), column[int64](rows, 2), column[string](rows, 3),
				column[string](rows, 4), column[[]byte](rows, 5), column[time.Time](rows, 6)}
	},
}

// RequeueWebhookMessage queues m again for one subscription, due at once;
// rooms.ErrDuplicate when the subscription has it queued.
func (t *tx) RequeueWebhookMessage(ctx context.Context, webhookID string, m rooms.WebhookMessage) error {
	_, err := t.q.Exec(ctx, `INSERT INTO webhook_outbox (webhook_id, referral_id, seq, message_id, type, payload, created_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, webhookID, m.ReferralID, m.Seq, m.ID, string(m.Type), []byte(m.Payload), micro(m.At))
	if err != nil {
		return mapErr(err, fmt.Sprintf("requeue message %s for webhook %s", m.ID, webhookID))
	}
	return nil
}

// claimSQL leases the due heads of the outbox: a message is a head when no
// message before it (by seq, then by id) of its subscription and referral is
// queued, leased or not. The heads are found by skipping through the order
// index, one probe per subscription and referral (heads), so a backlog
// queued behind a receiver that is down costs a claim its heads, not its
// rows. Messages of a subscription disabled while a command was queueing
// them (its insert saw the subscription live) are never claimed, and go
// (gone). SKIP LOCKED lets dispatchers claim at once without waiting for
// each other; a message another claims at the same moment is locked, and
// skipped, and once that claim commits its lease keeps it out (the row is
// checked again once locked).
const claimSQL = `WITH RECURSIVE heads AS (
		(SELECT o.webhook_id, o.referral_id, o.id FROM webhook_outbox o
			ORDER BY o.webhook_id, o.referral_id, o.seq, o.id LIMIT 1)
		UNION ALL
		SELECT n.webhook_id, n.referral_id, n.id FROM heads h CROSS JOIN LATERAL (
			SELECT o.webhook_id, o.referral_id, o.id FROM webhook_outbox o
			WHERE (o.webhook_id, o.referral_id) > (h.webhook_id, h.referral_id)
			ORDER BY o.webhook_id, o.referral_id, o.seq, o.id LIMIT 1) n
	), gone AS (
		DELETE FROM webhook_outbox g USING webhooks gw WHERE gw.id = g.webhook_id AND gw.disabled_at IS NOT NULL
	)
	UPDATE webhook_outbox o SET lease = $1, lease_until = $3
	FROM webhooks w
	WHERE w.id = o.webhook_id AND o.id IN (
		SELECT c.id FROM webhook_outbox c JOIN webhooks cw ON cw.id = c.webhook_id AND cw.disabled_at IS NULL
		WHERE c.id IN (SELECT id FROM heads)
			AND c.due_at <= $2 AND (c.lease_until IS NULL OR c.lease_until <= $2)
		ORDER BY c.due_at, c.id
		LIMIT $4
		FOR UPDATE OF c SKIP LOCKED)
	RETURNING o.id, w.id, w.organisation, w.url, w.events, w.secret, w.created_by, w.created_at, w.disabled_at,
		o.message_id, o.type, o.referral_id, o.seq, o.created_at, o.payload, o.attempts, o.first_attempt_at`

// ClaimWebhookMessages leases up to r.Limit due heads of the outbox.
func (s *Store) ClaimWebhookMessages(ctx context.Context, r rooms.WebhookClaimRequest) ([]rooms.WebhookClaim, error) {
	rows, err := s.pool.Query(ctx, claimSQL, r.Lease, micro(r.Now), micro(r.LeaseUntil), r.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	cs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.WebhookClaim, error) {
		c := rooms.WebhookClaim{Lease: r.Lease}
		var events []string
		err := row.Scan(&c.OutboxID, &c.Webhook.ID, &c.Webhook.Organisation, &c.Webhook.URL, &events, &c.Webhook.Secret,
			&c.Webhook.CreatedBy, &c.Webhook.CreatedAt, &c.Webhook.DisabledAt,
			&c.Message.ID, &c.Message.Type, &c.Message.ReferralID, &c.Message.Seq, &c.Message.At, &c.Message.Payload,
			&c.Attempts, &c.FirstAttemptAt)
		for _, e := range events {
			c.Webhook.Events = append(c.Webhook.Events, rooms.WebhookEvent(e))
		}
		c.Message.Organisation = c.Webhook.Organisation
		c.Webhook.CreatedAt, c.Webhook.DisabledAt = utc(c.Webhook.CreatedAt), utcPtr(c.Webhook.DisabledAt)
		c.Message.At, c.FirstAttemptAt = utc(c.Message.At), utcPtr(c.FirstAttemptAt)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	return cs, nil
}

// FinishWebhookAttempt logs an attempt and, in the same statement, moves
// the message on: rescheduled (retrying) or out of the outbox (delivered,
// failed). Only the lease's holder reschedules or fails a message; a
// delivery is final whoever made it.
func (s *Store) FinishWebhookAttempt(ctx context.Context, c rooms.WebhookClaim, d rooms.WebhookDelivery) error {
	args := []any{c.OutboxID, c.Lease, c.Webhook.ID, d.MessageID, string(d.Type), d.ReferralID, d.Seq, d.Attempt,
		micro(d.At), d.StatusCode, d.Error, d.DurationMS, d.Outcome, microPtr(d.NextAttemptAt), []byte(d.Payload)}
	var move string
	switch d.Outcome {
	case rooms.DeliveryRetrying:
		if d.NextAttemptAt == nil {
			return fmt.Errorf("finish attempt of webhook message %s: a retry needs its time", d.MessageID)
		}
		first := d.At
		if c.FirstAttemptAt != nil {
			first = *c.FirstAttemptAt
		}
		move = `UPDATE webhook_outbox SET due_at = $14, attempts = $8, first_attempt_at = $16,
			lease = NULL, lease_until = NULL WHERE id = $1 AND lease = $2`
		args = append(args, micro(first))
	case rooms.DeliveryDelivered:
		move = `DELETE FROM webhook_outbox WHERE id = $1`
	case rooms.DeliveryFailed:
		move = `DELETE FROM webhook_outbox WHERE id = $1 AND lease = $2`
	default:
		return fmt.Errorf("finish attempt of webhook message %s: unknown outcome %q", d.MessageID, d.Outcome)
	}
	_, err := s.pool.Exec(ctx, `WITH moved AS (`+move+`)
		INSERT INTO webhook_deliveries (webhook_id, message_id, type, referral_id, seq, attempt, at, status_code, error,
			duration_ms, outcome, next_attempt_at, payload)
		SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15
		WHERE $2::text IS NOT NULL`, args...)
	if err != nil {
		return mapErr(err, "finish attempt of webhook message "+d.MessageID)
	}
	return nil
}

// PruneWebhookDeliveries deletes the attempts logged before before and
// those beyond the newest keep of each subscription.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time, keep int) (int64, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM webhook_deliveries d
		WHERE d.at < $1 OR d.id IN (
			SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY webhook_id ORDER BY id DESC) AS n
				FROM webhook_deliveries) r
			WHERE r.n > $2)`, micro(before), keep)
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	return tag.RowsAffected(), nil
}
