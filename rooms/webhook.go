package rooms

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// WebhookEvent is a type of event a webhook subscription receives (SPEC
// §10).
type WebhookEvent string

// The webhook event types.
const (
	// WebhookEventSubmitted: a referral was submitted for the first time.
	WebhookEventSubmitted WebhookEvent = "referral.submitted"
	// WebhookEventStatusChanged: any other move along the status machine,
	// resubmission after more information included.
	WebhookEventStatusChanged WebhookEvent = "referral.status_changed"
	WebhookEventMessage       WebhookEvent = "referral.message"
	WebhookEventPlanEdit      WebhookEvent = "referral.plan_edit"
	WebhookEventReminder      WebhookEvent = "referral.reminder"
)

// WebhookEvents are the event types a subscription may name.
var WebhookEvents = []WebhookEvent{WebhookEventSubmitted, WebhookEventStatusChanged, WebhookEventMessage, WebhookEventPlanEdit, WebhookEventReminder}

// Webhook is an organisation's subscription to the events of the referrals
// it receives: the integrator's system is sent each as a signed POST.
type Webhook struct {
	ID           string         `json:"id"`
	Organisation string         `json:"organisation"`
	URL          string         `json:"url"`
	Events       []WebhookEvent `json:"events"`
	// Secret is whsec_ and the base64 of the HMAC key; it is shown once,
	// when the subscription is made, and kept to sign with.
	Secret     string     `json:"-"`
	CreatedBy  string     `json:"created_by"`
	CreatedAt  time.Time  `json:"created_at"`
	DisabledAt *time.Time `json:"disabled_at,omitempty"`
}

// MaxWebhooks bounds an organisation's live subscriptions: each is a row
// written with every event of every referral it receives.
const MaxWebhooks = 20

// webhookSecretPrefix starts a secret in Standard Webhooks' notation.
const webhookSecretPrefix = "whsec_"

// The length of a secret's key, in bytes.
const (
	minWebhookKey = 24
	maxWebhookKey = 64
	newWebhookKey = 32
)

var ruleWebhookURL = textRule{what: "the destination URL", required: true, maxChars: maxWebhookURL}

// NewWebhookSecret returns a fresh secret: whsec_ and the base64 of 32
// random bytes.
func NewWebhookSecret() string {
	key := make([]byte, newWebhookKey)
	if _, err := rand.Read(key); err != nil {
		panic("read random bytes: " + err.Error())
	}
	return webhookSecretPrefix + base64.StdEncoding.EncodeToString(key)
}

// WebhookKey returns the HMAC key a secret stands for: the bytes its base64
// decodes to, 24 to 64 of them.
func WebhookKey(secret string) ([]byte, error) {
	enc, ok := strings.CutPrefix(secret, webhookSecretPrefix)
	if !ok {
		return nil, Invalid("secret", "the secret must start with whsec_ followed by base64")
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil, Invalid("secret", "the secret must be whsec_ followed by standard (padded) base64")
	}
	if len(key) < minWebhookKey || len(key) > maxWebhookKey {
		return nil, Invalid("secret", "the secret must encode %d to %d bytes; it encodes %d", minWebhookKey, maxWebhookKey, len(key))
	}
	return key, nil
}

// parseWebhookEvents checks a subscription's event types: at least one,
// each known, none twice. They are kept in the order of WebhookEvents.
func parseWebhookEvents(names []string) ([]WebhookEvent, error) {
	if len(names) == 0 {
		return nil, Invalid("events", "name at least one event type: %s", joinEvents())
	}
	seen := map[WebhookEvent]bool{}
	for i, n := range names {
		t := WebhookEvent(n)
		if !slices.Contains(WebhookEvents, t) {
			return nil, Invalid(fmt.Sprintf("events[%d]", i), "%s is not an event type; choose from %s", quoteShort(n), joinEvents())
		}
		if seen[t] {
			return nil, Invalid(fmt.Sprintf("events[%d]", i), "%s is named twice", n)
		}
		seen[t] = true
	}
	var out []WebhookEvent
	for _, t := range WebhookEvents {
		if seen[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

func joinEvents() string {
	s := make([]string, len(WebhookEvents))
	for i, t := range WebhookEvents {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// quoteShort quotes what a caller sent for an error message, cut short.
func quoteShort(s string) string {
	if len(s) > 60 {
		s = s[:60] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// NewWebhook is the command that subscribes an organisation's system to
// webhooks.
type NewWebhook struct {
	URL    string
	Events []string
	// Secret is the caller's own whsec_ secret; one is made when empty.
	Secret string
}

// CreateWebhook subscribes url to the events of the referrals the admin's
// organisation receives, and returns the subscription with its secret.
// The destination is checked against the service's WebhookDestinations.
func (s *Service) CreateWebhook(ctx context.Context, admin Caller, n NewWebhook) (Webhook, error) {
	const event = "webhook.create"
	w, err := s.newWebhook(ctx, admin, n)
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			live, err := tx.LockWebhooks(ctx, w.Organisation)
			if err != nil {
				return fmt.Errorf("lock webhooks of %s: %w", w.Organisation, err)
			}
			if live >= MaxWebhooks {
				return Conflict("an organisation can have at most %d webhooks; delete one first", MaxWebhooks)
			}
			if err := tx.CreateWebhook(ctx, w); err != nil {
				return fmt.Errorf("create webhook: %w", err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionCreate, event, nil, OutcomeSuccess,
				fmt.Sprintf("webhook=%s events=%d", w.ID, len(w.Events))))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionCreate, event, err)
		return Webhook{}, err
	}
	return w, nil
}

// newWebhook validates n for the admin's organisation.
func (s *Service) newWebhook(ctx context.Context, admin Caller, n NewWebhook) (Webhook, error) {
	if err := requireAdmin(admin); err != nil {
		return Webhook{}, err
	}
	u, err := s.webhooks.CheckURL(ctx, strings.TrimSpace(n.URL))
	if err != nil {
		return Webhook{}, err
	}
	events, err := parseWebhookEvents(n.Events)
	if err != nil {
		return Webhook{}, err
	}
	secret := n.Secret
	if secret == "" {
		secret = NewWebhookSecret()
	} else if _, err := WebhookKey(secret); err != nil {
		return Webhook{}, err
	}
	return Webhook{ID: NewID(), Organisation: admin.User.Organisation, URL: u.String(), Events: events, Secret: secret,
		CreatedBy: admin.User.ID, CreatedAt: s.clock.Now().Truncate(time.Microsecond)}, nil
}

// Webhooks lists the live subscriptions of the admin's organisation,
// without their secrets.
func (s *Service) Webhooks(ctx context.Context, admin Caller) ([]Webhook, error) {
	const event = "webhook.list"
	if err := requireAdmin(admin); err != nil {
		s.auditDenied(ctx, admin, ActionRead, event, err)
		return nil, err
	}
	ws, err := s.store.Webhooks(ctx, admin.User.Organisation)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	if ws == nil {
		ws = []Webhook{}
	}
	return ws, s.AuditCaller(ctx, admin, ActionRead, event, nil, OutcomeSuccess, fmt.Sprintf("count=%d", len(ws)))
}

// DeleteWebhook ends a subscription of the admin's organisation; the
// messages still queued for it are dropped. Its delivery log stays until
// pruned.
func (s *Service) DeleteWebhook(ctx context.Context, admin Caller, id string) (Webhook, error) {
	const event = "webhook.delete"
	err := requireAdmin(admin)
	if err == nil {
		err = CheckID("id", id)
	}
	var w Webhook
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			var err error
			if w, err = s.ownWebhook(ctx, tx, admin, id); err != nil {
				return err
			}
			now := s.clock.Now().Truncate(time.Microsecond)
			if err := tx.DisableWebhook(ctx, id, now); err != nil {
				return fmt.Errorf("disable webhook %s: %w", id, err)
			}
			w.DisabledAt = &now
			return s.appendAudit(ctx, tx, s.entry(admin, ActionDelete, event, nil, OutcomeSuccess, "webhook="+id))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionDelete, event, err)
		return Webhook{}, err
	}
	return w, nil
}

// ownWebhook returns the live subscription id of the admin's organisation;
// not found for anyone else's, so their existence is not leaked.
func (s *Service) ownWebhook(ctx context.Context, r WebhookReader, admin Caller, id string) (Webhook, error) {
	w, err := r.Webhook(ctx, id)
	if errors.Is(err, ErrNotFound) || err == nil && (w.Organisation != admin.User.Organisation || w.DisabledAt != nil) {
		return Webhook{}, NotFound("webhook")
	}
	if err != nil {
		return Webhook{}, fmt.Errorf("read webhook %s: %w", id, err)
	}
	return w, nil
}

// WebhookDeliveries lists the delivery attempts of a subscription of the
// admin's organisation, newest first: up to limit (DefaultDeliveryLimit
// when 0, never more than MaxDeliveryLimit) with an id below before (0
// for the newest).
func (s *Service) WebhookDeliveries(ctx context.Context, admin Caller, id string, before int64, limit int) ([]WebhookDelivery, error) {
	const event = "webhook.deliveries"
	err := requireAdmin(admin)
	if err == nil {
		err = CheckID("id", id)
	}
	switch {
	case err != nil:
	case before < 0:
		err = Invalid("before", "before must be a delivery id, or absent for the newest")
	case limit < 0 || limit > MaxDeliveryLimit:
		err = Invalid("limit", "limit must be from 1 to %d", MaxDeliveryLimit)
	}
	if err == nil {
		_, err = s.ownWebhook(ctx, s.store, admin, id)
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionRead, event, err)
		return nil, err
	}
	if limit == 0 {
		limit = DefaultDeliveryLimit
	}
	ds, err := s.store.WebhookDeliveries(ctx, id, before, limit)
	if err != nil {
		return nil, fmt.Errorf("list deliveries of webhook %s: %w", id, err)
	}
	if ds == nil {
		ds = []WebhookDelivery{}
	}
	return ds, s.AuditCaller(ctx, admin, ActionRead, event, nil, OutcomeSuccess, fmt.Sprintf("webhook=%s count=%d", id, len(ds)))
}

// RetryWebhookDelivery queues the message of a logged attempt again, due at
// once, with the same webhook-id, so the receiver can tell it from a new
// event. A message already queued for the subscription is refused as a
// conflict: it will be attempted anyway.
func (s *Service) RetryWebhookDelivery(ctx context.Context, admin Caller, id string, delivery int64) (WebhookMessage, error) {
	const event = "webhook.retry"
	err := requireAdmin(admin)
	if err == nil {
		err = CheckID("id", id)
	}
	if err == nil && delivery <= 0 {
		err = Invalid("delivery", "delivery must be the id of a delivery attempt")
	}
	var m WebhookMessage
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if _, err := s.ownWebhook(ctx, tx, admin, id); err != nil {
				return err
			}
			d, err := tx.WebhookDelivery(ctx, id, delivery)
			if errors.Is(err, ErrNotFound) {
				return NotFound("delivery")
			}
			if err != nil {
				return fmt.Errorf("read delivery %d of webhook %s: %w", delivery, id, err)
			}
			m = d.Message()
			err = tx.RequeueWebhookMessage(ctx, id, m)
			if errors.Is(err, ErrDuplicate) {
				return Conflict("this message is already waiting to be delivered")
			}
			if err != nil {
				return fmt.Errorf("queue message %s for webhook %s: %w", m.ID, id, err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionExecute, event, nil, OutcomeSuccess,
				fmt.Sprintf("webhook=%s delivery=%d", id, delivery)))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionExecute, event, err)
		return WebhookMessage{}, err
	}
	return m, nil
}
