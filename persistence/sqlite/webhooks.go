package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"patientpass/rooms"
)

// Webhooks (rooms.WebhookReader, rooms.WebhookTx, rooms.WebhookStore): the
// subscriptions, the outbox written with each command, and the delivery
// log. The dispatcher's claims run on the single writer, like every write,
// so two claims never overlap.

const webhookColumns = `id, organisation, url, events, secret, created_by, created_at, disabled_at`

func scanWebhook(scan func(...any) error) (rooms.Webhook, error) {
	var (
		w        rooms.Webhook
		events   string
		created  int64
		disabled sql.NullInt64
	)
	if err := scan(&w.ID, &w.Organisation, &w.URL, &events, &w.Secret, &w.CreatedBy, &created, &disabled); err != nil {
		return rooms.Webhook{}, err
	}
	if err := json.Unmarshal([]byte(events), &w.Events); err != nil {
		return rooms.Webhook{}, fmt.Errorf("decode events of webhook %s: %w", w.ID, err)
	}
	w.CreatedAt, w.DisabledAt = fromMicros(created), fromNullMicros(disabled)
	return w, nil
}

// Webhook returns a subscription, disabled or not.
func (r reader) Webhook(ctx context.Context, id string) (rooms.Webhook, error) {
	w, err := scanWebhook(r.q.QueryRowContext(ctx, `SELECT `+webhookColumns+` FROM webhooks WHERE id = ?`, id).Scan)
	if err != nil {
		return rooms.Webhook{}, notFound(err, "get webhook %s", id)
	}
	return w, nil
}

// Webhooks lists an organisation's live subscriptions, oldest first.
func (r reader) Webhooks(ctx context.Context, organisation string) ([]rooms.Webhook, error) {
	return queryAll(ctx, r.q, "list webhooks of "+organisation,
		func(rows *sql.Rows) (rooms.Webhook, error) { return scanWebhook(rows.Scan) },
		`SELECT `+webhookColumns+` FROM webhooks WHERE organisation = ? AND disabled_at IS NULL ORDER BY created_at, id`, organisation)
}

const deliveryColumns = `id, webhook_id, message_id, type, referral_id, seq, attempt, at, status_code, error,
	duration_ms, outcome, next_attempt_at, payload`

func scanDelivery(scan func(...any) error) (rooms.WebhookDelivery, error) {
	var (
		d    rooms.WebhookDelivery
		at   int64
		next sql.NullInt64
	)
	err := scan(&d.ID, &d.WebhookID, &d.MessageID, &d.Type, &d.ReferralID, &d.Seq, &d.Attempt, &at, &d.StatusCode,
		&d.Error, &d.DurationMS, &d.Outcome, &next, &d.Payload)
	d.At, d.NextAttemptAt = fromMicros(at), fromNullMicros(next)
	return d, err
}

// WebhookDeliveries lists up to limit attempts of a subscription with an id
// below before (0: from the newest), newest first.
func (r reader) WebhookDeliveries(ctx context.Context, webhookID string, before int64, limit int) ([]rooms.WebhookDelivery, error) {
	if before <= 0 {
		before = 1<<63 - 1
	}
	if limit <= 0 {
		limit = -1 // SQLite's "no limit"
	}
	return queryAll(ctx, r.q, "list deliveries of webhook "+webhookID,
		func(rows *sql.Rows) (rooms.WebhookDelivery, error) { return scanDelivery(rows.Scan) },
		`SELECT `+deliveryColumns+` FROM webhook_deliveries WHERE webhook_id = ? AND id < ? ORDER BY id DESC LIMIT ?`,
		webhookID, before, limit)
}

// WebhookDelivery returns one attempt of a subscription.
func (r reader) WebhookDelivery(ctx context.Context, webhookID string, id int64) (rooms.WebhookDelivery, error) {
	d, err := scanDelivery(r.q.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries
		WHERE webhook_id = ? AND id = ?`, webhookID, id).Scan)
	if err != nil {
		return rooms.WebhookDelivery{}, notFound(err, "get delivery %d of webhook %s", id, webhookID)
	}
	return d, nil
}

// QueuedWebhookMessages counts the outbox's messages, of one subscription
// or, for "", of all.
func (r reader) QueuedWebhookMessages(ctx context.Context, webhookID string) (int, error) {
	var n int
	err := r.q.QueryRowContext(ctx, `SELECT count(*) FROM webhook_outbox WHERE ?1 = '' OR webhook_id = ?1`, webhookID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count queued webhook messages: %w", err)
	}
	return n, nil
}

// LockWebhooks counts the organisation's live subscriptions. The
// transaction holds the database's write lock, so the count stays true
// until it ends.
func (t *Tx) LockWebhooks(ctx context.Context, organisation string) (int, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT count(*) FROM webhooks WHERE organisation = ? AND disabled_at IS NULL`,
		organisation).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count webhooks of %s: %w", organisation, err)
	}
	return n, nil
}

// CreateWebhook stores a new subscription; rooms.ErrDuplicate when the id
// is taken.
func (t *Tx) CreateWebhook(ctx context.Context, w rooms.Webhook) error {
	events, err := json.Marshal(w.Events)
	if err != nil {
		return fmt.Errorf("encode events of webhook %s: %w", w.ID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO webhooks (`+webhookColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		w.ID, w.Organisation, w.URL, string(events), w.Secret, w.CreatedBy, micros(w.CreatedAt), nullMicros(w.DisabledAt))
	if isForeignKey(err) {
		return fmt.Errorf("create webhook %s: %w", w.ID, rooms.ErrNotFound)
	}
	return mapWrite(err, "create webhook %s", w.ID)
}

// DisableWebhook marks a live subscription disabled and drops its queued
// messages; rooms.ErrNotFound when there is no live one.
func (t *Tx) DisableWebhook(ctx context.Context, id string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE webhooks SET disabled_at = ? WHERE id = ? AND disabled_at IS NULL`, micros(at), id)
	if err := oneRow(res, mapWrite(err, "disable webhook %s", id), "disable webhook %s", id); err != nil {
		return err
	}
	_, err = t.tx.ExecContext(ctx, `DELETE FROM webhook_outbox WHERE webhook_id = ?`, id)
	return mapWrite(err, "drop the queue of webhook %s", id)
}

// AppendOutbox queues m for the live subscriptions of m.Organisation to
// m.Type, in one INSERT … SELECT that writes nothing when none matches.
func (t *Tx) AppendOutbox(ctx context.Context, m rooms.WebhookMessage) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO webhook_outbox (webhook_id, referral_id, seq, message_id, type, payload, created_at)
		SELECT w.id, ?2, ?3, ?4, ?5, ?6, ?7 FROM webhooks w
		WHERE w.organisation = ?1 AND w.disabled_at IS NULL AND EXISTS (SELECT 1 FROM json_each(w.events) WHERE value = ?5)`,
		m.Organisation, m.ReferralID, m.Seq, m.ID, string(m.Type), []byte(m.Payload), micros(m.At))
	return mapWrite(err, "queue webhooks of event %d of referral %s", m.Seq, m.ReferralID)
}

// RequeueWebhookMessage queues m again for one subscription, due at once;
// rooms.ErrDuplicate when the subscription has it queued.
func (t *Tx) RequeueWebhookMessage(ctx context.Context, webhookID string, m rooms.WebhookMessage) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO webhook_outbox (webhook_id, referral_id, seq, message_id, type, payload, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?)`, webhookID, m.ReferralID, m.Seq, m.ID, string(m.Type), []byte(m.Payload), micros(m.At))
	return mapWrite(err, "requeue message %s for webhook %s", m.ID, webhookID)
}

// ClaimWebhookMessages leases up to r.Limit due heads of the outbox: a
// message is a head when no message before it (by seq, then id) of its
// subscription and referral is queued, leased or not.
func (s *Store) ClaimWebhookMessages(ctx context.Context, r rooms.WebhookClaimRequest) ([]rooms.WebhookClaim, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()
	now := micros(r.Now)
	// Only the rows this claim leased: a lease token used again must not
	// bring back the rows of an earlier claim.
	// Messages of a subscription disabled while a command was queueing
	// them are never sent: they go.
	if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_outbox
		WHERE webhook_id IN (SELECT id FROM webhooks WHERE disabled_at IS NOT NULL)`); err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	// The heads are found by skipping through the order index, one probe
	// per subscription and referral, so a backlog queued behind a receiver
	// that is down costs a claim its heads, not its rows.
	ids, err := claimIDs(ctx, tx, `WITH RECURSIVE heads(webhook_id, referral_id, id) AS (
			SELECT * FROM (SELECT webhook_id, referral_id, id FROM webhook_outbox
				ORDER BY webhook_id, referral_id, seq, id LIMIT 1)
			UNION ALL
			SELECT o.webhook_id, o.referral_id, o.id FROM heads h JOIN webhook_outbox o ON o.id = coalesce(
				(SELECT n.id FROM webhook_outbox n WHERE n.webhook_id = h.webhook_id AND n.referral_id > h.referral_id
					ORDER BY n.referral_id, n.seq, n.id LIMIT 1),
				(SELECT n.id FROM webhook_outbox n WHERE n.webhook_id > h.webhook_id
					ORDER BY n.webhook_id, n.referral_id, n.seq, n.id LIMIT 1))
		)
		UPDATE webhook_outbox SET lease = ?1, lease_until = ?2 WHERE id IN (
			SELECT c.id FROM webhook_outbox c
			WHERE c.id IN (SELECT id FROM heads) AND c.due_at <= ?3 AND (c.lease_until IS NULL OR c.lease_until <= ?3)
			ORDER BY c.due_at, c.id LIMIT ?4)
		RETURNING id`, r.Lease, micros(r.LeaseUntil), now, r.Limit)
	if err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	if len(ids) == 0 {
		return nil, tx.Commit()
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT o.id, w.id, w.organisation, w.url, w.events, w.secret, w.created_by,
			w.created_at, w.disabled_at, o.message_id, o.type, o.referral_id, o.seq, o.created_at, o.payload,
			o.attempts, o.first_attempt_at
		FROM webhook_outbox o JOIN webhooks w ON w.id = o.webhook_id
		WHERE o.id IN (SELECT value FROM json_each(?)) ORDER BY o.due_at, o.id`, string(idList))
	if err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	defer rows.Close()
	var cs []rooms.WebhookClaim
	for rows.Next() {
		c := rooms.WebhookClaim{Lease: r.Lease}
		var (
			events            string
			created, at       int64
			disabled, firstAt sql.NullInt64
		)
		if err := rows.Scan(&c.OutboxID, &c.Webhook.ID, &c.Webhook.Organisation, &c.Webhook.URL, &events, &c.Webhook.Secret,
			&c.Webhook.CreatedBy, &created, &disabled, &c.Message.ID, &c.Message.Type, &c.Message.ReferralID,
			&c.Message.Seq, &at, &c.Message.Payload, &c.Attempts, &firstAt); err != nil {
			return nil, fmt.Errorf("claim webhook messages: %w", err)
		}
		if err := json.Unmarshal([]byte(events), &c.Webhook.Events); err != nil {
			return nil, fmt.Errorf("decode events of webhook %s: %w", c.Webhook.ID, err)
		}
		c.Webhook.CreatedAt, c.Webhook.DisabledAt = fromMicros(created), fromNullMicros(disabled)
		c.Message.Organisation, c.Message.At, c.FirstAttemptAt = c.Webhook.Organisation, fromMicros(at), fromNullMicros(firstAt)
		cs = append(cs, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("claim webhook messages: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("claim webhook messages: commit: %w", err)
	}
	return cs, nil
}

// claimIDs runs the claim's UPDATE … RETURNING id and collects the ids.
func claimIDs(ctx context.Context, tx *sql.Tx, query string, args ...any) ([]int64, error) {
	rows, err := tx.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, rows.Err()
}

// FinishWebhookAttempt logs an attempt and moves the message on:
// rescheduled (retrying) or out of the outbox (delivered, failed). Only the
// lease's holder reschedules or fails a message; a delivery is final
// whoever made it.
func (s *Store) FinishWebhookAttempt(ctx context.Context, c rooms.WebhookClaim, d rooms.WebhookDelivery) error {
	tx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	switch d.Outcome {
	case rooms.DeliveryRetrying:
		if d.NextAttemptAt == nil {
			return fmt.Errorf("finish attempt of webhook message %s: a retry needs its time", d.MessageID)
		}
		first := d.At
		if c.FirstAttemptAt != nil {
			first = *c.FirstAttemptAt
		}
		_, err = tx.ExecContext(ctx, `UPDATE webhook_outbox SET due_at = ?, attempts = ?, first_attempt_at = ?,
			lease = NULL, lease_until = NULL WHERE id = ? AND lease = ?`,
			micros(*d.NextAttemptAt), d.Attempt, micros(first), c.OutboxID, c.Lease)
	case rooms.DeliveryDelivered:
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_outbox WHERE id = ?`, c.OutboxID)
	case rooms.DeliveryFailed:
		_, err = tx.ExecContext(ctx, `DELETE FROM webhook_outbox WHERE id = ? AND lease = ?`, c.OutboxID, c.Lease)
	default:
		return fmt.Errorf("finish attempt of webhook message %s: unknown outcome %q", d.MessageID, d.Outcome)
	}
	if err != nil {
		return fmt.Errorf("finish attempt of webhook message %s: %w", d.MessageID, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO webhook_deliveries (webhook_id, message_id, type, referral_id, seq, attempt,
			at, status_code, error, duration_ms, outcome, next_attempt_at, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.Webhook.ID, d.MessageID, string(d.Type), d.ReferralID, d.Seq, d.Attempt, micros(d.At), d.StatusCode, d.Error,
		d.DurationMS, d.Outcome, nullMicros(d.NextAttemptAt), []byte(d.Payload))
	if err != nil {
		return fmt.Errorf("log attempt of webhook message %s: %w", d.MessageID, err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("finish attempt of webhook message %s: commit: %w", d.MessageID, err)
	}
	return nil
}

// PruneWebhookDeliveries deletes the attempts logged before before and
// those beyond the newest keep of each subscription.
func (s *Store) PruneWebhookDeliveries(ctx context.Context, before time.Time, keep int) (int64, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM webhook_deliveries
		WHERE at < ? OR id IN (
			SELECT id FROM (SELECT id, row_number() OVER (PARTITION BY webhook_id ORDER BY id DESC) AS n
				FROM webhook_deliveries)
			WHERE n > ?)`, micros(before), keep)
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("prune webhook deliveries: commit: %w", err)
	}
	return n, nil
}
