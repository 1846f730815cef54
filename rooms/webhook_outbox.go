package rooms

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// webhookPayload is a delivery's body (SPEC §10). It names the referral and
// says what happened at the level of kinds, statuses and priorities; it
// never carries a patient identifier, a name, a message's or plan's text or
// a reason: the receiver reads those through the FHIR API, under its own
// access rules and audit.
type webhookPayload struct {
	Type      WebhookEvent `json:"type"`
	ID        string       `json:"id"`
	Timestamp time.Time    `json:"timestamp"`
	Data      webhookData  `json:"data"`
}

type webhookData struct {
	Referral              string     `json:"referral"`
	Seq                   int64      `json:"seq"`
	Kind                  EventKind  `json:"kind"`
	Pathway               string     `json:"pathway"`
	Status                Status     `json:"status"`
	Priority              Priority   `json:"priority"`
	ReceivingOrganisation string     `json:"receiving_organisation"`
	ReferringOrganisation string     `json:"referring_organisation"`
	TriageDueAt           *time.Time `json:"triage_due_at,omitempty"`
	// Author is the user id of whoever caused the event ("system" for a
	// reminder).
	Author string `json:"author"`

	// Of a status change.
	From    Status `json:"from,omitempty"`
	To      Status `json:"to,omitempty"`
	BedType string `json:"bed_type,omitempty"`
	// Of a plan edit.
	Section  string `json:"section,omitempty"`
	Revision int64  `json:"revision,omitempty"`
	// Of a reminder.
	Reason ReminderReason `json:"reason,omitempty"`
	DueAt  *time.Time     `json:"due_at,omitempty"`
}

// WebhookMessageID is the webhook-id of a referral's event: the same for
// every subscription, attempt and replay, so a receiver can drop repeats.
func WebhookMessageID(referralID string, seq int64) string {
	return fmt.Sprintf("msg_%s_%d", referralID, seq)
}

// webhookMessage returns the message that tells of event e of r (r as the
// command left it), and false for an event no webhook tells of: creation,
// assignment, participants, and anything of a referral never submitted,
// which the receiving organisation has not been sent.
func webhookMessage(r Referral, e Event) (WebhookMessage, bool) {
	if r.SubmittedAt == nil {
		return WebhookMessage{}, false
	}
	d := webhookData{Referral: r.ID, Seq: e.Seq, Kind: e.Kind, Pathway: r.PathwayID, Status: r.Status, Priority: r.Priority,
		ReceivingOrganisation: r.ReceivingOrganisation, ReferringOrganisation: r.ReferringOrganisation,
		TriageDueAt: r.TriageDueAt, Author: e.Author.ID}
	var t WebhookEvent
	switch e.Kind {
	case EventTransition:
		var b TransitionBody
		if json.Unmarshal(e.Body, &b) != nil {
			return WebhookMessage{}, false
		}
		t = WebhookEventStatusChanged
		if b.To == StatusSubmitted && b.From == StatusDraft {
			t = WebhookEventSubmitted
		}
		d.From, d.To = b.From, b.To
		if bt, ok := b.Outcome["bed_type"].(string); ok {
			d.BedType = bt
		}
	case EventMessage:
		t = WebhookEventMessage
	case EventPlanEdit:
		var b PlanEditBody
		if json.Unmarshal(e.Body, &b) != nil {
			return WebhookMessage{}, false
		}
		t = WebhookEventPlanEdit
		d.Section, d.Revision = b.Section, b.Revision
	case EventReminder:
		var b ReminderBody
		if json.Unmarshal(e.Body, &b) != nil {
			return WebhookMessage{}, false
		}
		t = WebhookEventReminder
		due := b.DueAt.UTC()
		d.Reason, d.DueAt = b.Reason, &due
	default:
		return WebhookMessage{}, false
	}
	id := WebhookMessageID(r.ID, e.Seq)
	at := e.At.UTC()
	return WebhookMessage{ID: id, Organisation: r.ReceivingOrganisation, Type: t, ReferralID: r.ID, Seq: e.Seq, At: at,
		Payload: mustJSON(webhookPayload{Type: t, ID: id, Timestamp: at, Data: d})}, true
}

// queueWebhooks queues, in tx, the messages that tell of events, for the
// subscriptions of the organisation receiving r. The store writes them in
// one statement that reads nothing back, none when no subscription
// matches; whether any does is the store's to find out, in the same
// transaction, so a subscription made on another node a moment ago is
// never missed.
func queueWebhooks(ctx context.Context, tx Tx, r Referral, events []Event) error {
	for _, e := range events {
		m, ok := webhookMessage(r, e)
		if !ok {
			continue
		}
		if err := tx.AppendOutbox(ctx, m); err != nil {
			return fmt.Errorf("queue webhooks of event %d of referral %s: %w", e.Seq, r.ID, err)
		}
	}
	return nil
}
