package rooms

import (
	"context"
	"encoding/json"
	"time"
)

// The webhooks' durable state (SPEC §10): the subscriptions, the outbox of
// messages waiting to be delivered, and the log of delivery attempts. The
// outbox is written in the transaction of the command whose event a message
// tells of (WebhookTx.AppendOutbox), so a message is queued with its event
// or not at all; the dispatcher of every node then takes messages from it
// (WebhookStore).

// WebhookMessage is one event as the webhooks tell it: the body sent, and
// what the outbox orders and matches it by.
type WebhookMessage struct {
	// ID is the webhook-id header: one per event, the same on every
	// attempt and every replay.
	ID string `json:"id"`
	// Organisation is the organisation whose subscriptions receive it.
	Organisation string       `json:"-"`
	Type         WebhookEvent `json:"type"`
	ReferralID   string       `json:"referral"`
	Seq          int64        `json:"seq"`
	At           time.Time    `json:"at"`
	// Payload is the request body, exactly as it is sent and signed.
	Payload json.RawMessage `json:"-"`
}

// WebhookClaim is a queued message a dispatcher has leased: until
// LeaseUntil no other dispatcher takes it.
type WebhookClaim struct {
	// OutboxID is the message's row in the outbox.
	OutboxID int64
	// Lease is the claim's own token: only its holder may reschedule the
	// message.
	Lease   string
	Webhook Webhook
	Message WebhookMessage
	// Attempts is how many attempts were made before this one, and
	// FirstAttemptAt when the first of them was (nil for none).
	Attempts       int
	FirstAttemptAt *time.Time
}

// WebhookClaimRequest asks the outbox for up to Limit messages due at Now,
// each the first still queued of its subscription and referral, leased to
// Lease until LeaseUntil.
type WebhookClaimRequest struct {
	Lease      string
	Now        time.Time
	LeaseUntil time.Time
	Limit      int
}

// The outcomes of a delivery attempt.
const (
	DeliveryDelivered = "delivered"
	DeliveryRetrying  = "retrying"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one delivery attempt, as the delivery log keeps it.
type WebhookDelivery struct {
	// ID numbers the log: a later attempt has a greater ID.
	ID         int64        `json:"id"`
	WebhookID  string       `json:"webhook"`
	MessageID  string       `json:"message"`
	Type       WebhookEvent `json:"type"`
	ReferralID string       `json:"referral"`
	Seq        int64        `json:"seq"`
	// Attempt counts the attempts of this message, from 1.
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	// StatusCode is the receiver's HTTP status; 0 when none came.
	StatusCode int `json:"status_code"`
	// Error says briefly why the attempt failed; empty when it succeeded.
	Error      string `json:"error,omitempty"`
	DurationMS int64  `json:"duration_ms"`
	// Outcome is delivered, retrying (NextAttemptAt is set) or failed.
	Outcome       string     `json:"outcome"`
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
	// Payload is the body sent, kept so the message can be replayed.
	Payload json.RawMessage `json:"-"`
}

// Message is the message the attempt delivered, for a replay.
func (d WebhookDelivery) Message() WebhookMessage {
	return WebhookMessage{ID: d.MessageID, Type: d.Type, ReferralID: d.ReferralID, Seq: d.Seq, At: d.At, Payload: d.Payload}
}

// The deliveries a listing returns when it asks for none in particular, and
// the most it returns.
const (
	DefaultDeliveryLimit = 50
	MaxDeliveryLimit     = 500
)

// WebhookReader reads the subscriptions and their delivery log. Lookups of
// one row return an error wrapping ErrNotFound when it is absent.
type WebhookReader interface {
	// Webhook returns a subscription, disabled or not.
	Webhook(ctx context.Context, id string) (Webhook, error)
	// Webhooks lists an organisation's live subscriptions, oldest first.
	Webhooks(ctx context.Context, organisation string) ([]Webhook, error)
	// WebhookDeliveries lists up to limit attempts of a subscription with an
	// ID below before (0: from the newest), newest first.
	WebhookDeliveries(ctx context.Context, webhookID string, before int64, limit int) ([]WebhookDelivery, error)
	// WebhookDelivery returns one attempt of a subscription.
	WebhookDelivery(ctx context.Context, webhookID string, id int64) (WebhookDelivery, error)
	// QueuedWebhookMessages counts the messages in the outbox, of one
	// subscription or, for "", of all.
	QueuedWebhookMessages(ctx context.Context, webhookID string) (int, error)
}

// WebhookTx writes subscriptions and the outbox inside a transaction.
type WebhookTx interface {
	WebhookReader
	// LockWebhooks holds the organisation's subscriptions until the
	// transaction ends, so that two registrations cannot both pass a
	// limit, and returns how many are live.
	LockWebhooks(ctx context.Context, organisation string) (int, error)
	// CreateWebhook stores a new subscription; ErrDuplicate when the id is
	// taken.
	CreateWebhook(ctx context.Context, w Webhook) error
	// DisableWebhook marks a live subscription disabled at at and drops
	// its queued messages; ErrNotFound when there is no live one.
	DisableWebhook(ctx context.Context, id string, at time.Time) error
	// AppendOutbox queues m for every live subscription of m.Organisation
	// to m.Type, in one statement that reads nothing back; none matching,
	// it queues nothing. The store may send it with the transaction's next
	// statement or its commit, and report its failure there; it may keep
	// m.Payload until then, which the caller must leave as it is.
	AppendOutbox(ctx context.Context, m WebhookMessage) error
	// RequeueWebhookMessage queues m again for one subscription, due at
	// once; ErrDuplicate when the subscription has it queued already.
	RequeueWebhookMessage(ctx context.Context, webhookID string, m WebhookMessage) error
}

// WebhookStore is the outbox as the dispatchers work it, outside any
// command's transaction.
type WebhookStore interface {
	WebhookReader
	// ClaimWebhookMessages leases up to r.Limit due messages, each the
	// first queued of its subscription and referral and not leased by
	// anyone else (or leased until before r.Now): a message is not taken
	// while one before it in its referral waits, so messages go in seq
	// order. Dispatchers on many nodes may claim at once; each message
	// goes to one of them.
	ClaimWebhookMessages(ctx context.Context, r WebhookClaimRequest) ([]WebhookClaim, error)
	// FinishWebhookAttempt logs attempt d of claim c. When d.Outcome is
	// retrying the message stays queued, due at d.NextAttemptAt, with its
	// attempt count and first attempt's time moved on, provided c's lease
	// is still the message's; otherwise (delivered, failed) it leaves the
	// outbox. The attempt is logged in either case.
	FinishWebhookAttempt(ctx context.Context, c WebhookClaim, d WebhookDelivery) error
	// PruneWebhookDeliveries deletes the attempts logged before before,
	// and those beyond the newest keep of each subscription, and returns
	// how many it deleted.
	PruneWebhookDeliveries(ctx context.Context, before time.Time, keep int) (int64, error)
}
