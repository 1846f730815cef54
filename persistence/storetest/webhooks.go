package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"patientpass/rooms"
)

var webhookTests = []subtest{
	{"subscriptions round trip, live ones listed", webhookRoundTrip},
	{"the outbox takes a message for each matching live subscription only", outboxMatching},
	{"a group member that fails leaves no outbox row", outboxGroupUndo},
	{"claims take the head of each subscription and referral, in order", outboxClaimOrder},
	{"a lease keeps a message from other claims until it expires", outboxLease},
	{"attempts are logged and move the message on", outboxFinish},
	{"a message queued again is refused while queued", outboxRequeue},
	{"disabling a subscription drops its queue", outboxDisable},
	{"pruning bounds the delivery log by age and count", outboxPrune},
	{"concurrent claims never share a message", outboxConcurrentClaims},
	{"a disabled subscription's messages are never claimed, and go", outboxDisabledNotClaimed},
	{"claims find the due heads among a backlog", outboxBacklog},
}

// outboxDisabledNotClaimed queues a message for a subscription already
// disabled, as a command that saw it live a moment before its disabling
// committed would (here through a replay, which writes the row directly):
// no claim takes it, and the claim removes it.
func outboxDisabledNotClaimed(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage), webhook("wh-22", "RET", rooms.WebhookEventMessage))
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.DisableWebhook(ctx, "wh-1", at(0)) })
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		if err := tx.RequeueWebhookMessage(ctx, "wh-1", message("r-1", 2, rooms.WebhookEventMessage)); err != nil {
			return err
		}
		return tx.RequeueWebhookMessage(ctx, "wh-22", message("r-1", 2, rooms.WebhookEventMessage))
	})
	if n := queued(t, s, "wh-1"); n != 1 {
		t.Fatalf("%d queued for the disabled subscription; the test wants one", n)
	}
	checkIDs(t, "claimed", claimed(claimOutbox(t, s, "l", at(time.Hour), 10)), []string{"wh-22/r-1/2"})
	if n := queued(t, s, "wh-1"); n != 0 {
		t.Errorf("%d still queued for the disabled subscription after a claim; want none", n)
	}
}

// outboxBacklog queues five messages on each of forty referrals; the heads
// of the first twenty are backing off (due in an hour): a claim takes the
// heads of the other twenty, and nothing behind any head.
func outboxBacklog(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage))
	var ms []rooms.WebhookMessage
	for r := range 40 {
		for seq := int64(1); seq <= 5; seq++ {
			ms = append(ms, message(fmt.Sprintf("r-%02d", r), seq, rooms.WebhookEventMessage))
		}
	}
	appendOutbox(t, s, ms...)
	now := at(time.Minute)
	first := claimOutbox(t, s, "first", now, 20)
	if len(first) != 20 {
		t.Fatalf("claimed %d heads of 40; want 20", len(first))
	}
	later := now.Add(time.Hour)
	for _, c := range first {
		if c.Message.Seq != 1 {
			t.Fatalf("claimed %s/%d, not a head", c.Message.ReferralID, c.Message.Seq)
		}
		finish(t, s, c, rooms.DeliveryRetrying, &later)
	}
	rest := claimOutbox(t, s, "second", now, 100)
	var want []string
	backing := map[string]bool{}
	for _, c := range first {
		backing[c.Message.ReferralID] = true
	}
	for r := range 40 {
		if id := fmt.Sprintf("r-%02d", r); !backing[id] {
			want = append(want, "wh-1/"+id+"/1")
		}
	}
	checkIDs(t, "the other heads", claimed(rest), want)
}

// webhook returns a live subscription of organisation to events.
func webhook(id, organisation string, events ...rooms.WebhookEvent) rooms.Webhook {
	return rooms.Webhook{ID: id, Organisation: organisation, URL: "https://ehr.example/" + id, Events: events,
		Secret: "whsec_" + id, CreatedBy: "u-admin", CreatedAt: at(time.Duration(len(id)) * time.Second)}
}

func createWebhooks(t *testing.T, s rooms.Store, ws ...rooms.Webhook) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		for _, w := range ws {
			if err := tx.CreateWebhook(ctx, w); err != nil {
				return err
			}
		}
		return nil
	})
}

// message is the webhook message of event seq of referral, to RET.
func message(referral string, seq int64, t rooms.WebhookEvent) rooms.WebhookMessage {
	id := rooms.WebhookMessageID(referral, seq)
	return rooms.WebhookMessage{ID: id, Organisation: "RET", Type: t, ReferralID: referral, Seq: seq, At: at(time.Duration(seq) * time.Second),
		Payload: json.RawMessage(fmt.Sprintf(`{"type":%q,"id":%q,"data":{"referral":%q,"seq":%d}}`, t, id, referral, seq))}
}

func appendOutbox(t *testing.T, s rooms.Store, ms ...rooms.WebhookMessage) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		for _, m := range ms {
			if err := tx.AppendOutbox(ctx, m); err != nil {
				return err
			}
		}
		return nil
	})
}

func queued(t *testing.T, s rooms.Store, webhookID string) int {
	t.Helper()
	n, err := s.QueuedWebhookMessages(t.Context(), webhookID)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func claimOutbox(t *testing.T, s rooms.Store, lease string, now time.Time, limit int) []rooms.WebhookClaim {
	t.Helper()
	cs, err := s.ClaimWebhookMessages(t.Context(), rooms.WebhookClaimRequest{Lease: lease, Now: now, LeaseUntil: now.Add(time.Minute), Limit: limit})
	if err != nil {
		t.Fatalf("claim: %v", err)
	}
	return cs
}

// claimed names claims as webhook/referral/seq.
func claimed(cs []rooms.WebhookClaim) []string {
	var out []string
	for _, c := range cs {
		out = append(out, fmt.Sprintf("%s/%s/%d", c.Webhook.ID, c.Message.ReferralID, c.Message.Seq))
	}
	slices.Sort(out)
	return out
}

func finish(t *testing.T, s rooms.Store, c rooms.WebhookClaim, outcome string, next *time.Time) {
	t.Helper()
	d := rooms.WebhookDelivery{MessageID: c.Message.ID, Type: c.Message.Type, ReferralID: c.Message.ReferralID, Seq: c.Message.Seq,
		Attempt: c.Attempts + 1, At: at(time.Hour), StatusCode: 503, Error: "status 503", DurationMS: 3, Outcome: outcome,
		NextAttemptAt: next, Payload: c.Message.Payload}
	if outcome == rooms.DeliveryDelivered {
		d.StatusCode, d.Error = 204, ""
	}
	if err := s.FinishWebhookAttempt(t.Context(), c, d); err != nil {
		t.Fatalf("finish attempt: %v", err)
	}
}

func webhookRoundTrip(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	w1 := webhook("wh-1", "RET", rooms.WebhookEventSubmitted, rooms.WebhookEventMessage)
	w2 := webhook("wh-22", "RET", rooms.WebhookEventReminder)
	other := webhook("wh-333", "REN", rooms.WebhookEventMessage)
	createWebhooks(t, s, w2, w1, other)
	got, err := s.Webhook(t.Context(), "wh-1")
	if err != nil {
		t.Fatal(err)
	}
	checkJSON(t, "webhook", got, w1)
	if got.Secret != w1.Secret {
		t.Errorf("secret %q, want %q", got.Secret, w1.Secret)
	}
	_, err = s.Webhook(t.Context(), "wh-none")
	wantNotFound(t, "absent webhook", err)
	err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateWebhook(t.Context(), w1) })
	wantDuplicate(t, "same id again", err)

	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		n, err := tx.LockWebhooks(ctx, "RET")
		if err != nil {
			return err
		}
		if n != 2 {
			t.Errorf("live webhooks of RET: %d, want 2", n)
		}
		return tx.DisableWebhook(ctx, "wh-22", at(time.Hour))
	})
	ws, err := s.Webhooks(t.Context(), "RET")
	if err != nil {
		t.Fatal(err)
	}
	checkJSON(t, "live webhooks of RET", ws, []rooms.Webhook{w1})
	off, err := s.Webhook(t.Context(), "wh-22")
	if err != nil || off.DisabledAt == nil || !sameTime(*off.DisabledAt, at(time.Hour)) {
		t.Errorf("disabled webhook: %+v, %v; want disabled at %v", off, err, at(time.Hour))
	}
	err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.DisableWebhook(t.Context(), "wh-22", at(2*time.Hour)) })
	wantNotFound(t, "disable twice", err)
}

func outboxMatching(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	if appendOutbox(t, s, message("r-1", 1, rooms.WebhookEventSubmitted)); queued(t, s, "") != 0 {
		t.Fatalf("queued with no subscription at all")
	}
	createWebhooks(t, s,
		webhook("wh-1", "RET", rooms.WebhookEventSubmitted, rooms.WebhookEventMessage),
		webhook("wh-22", "RET", rooms.WebhookEventMessage),
		webhook("wh-333", "REN", rooms.WebhookEventSubmitted, rooms.WebhookEventMessage),
		webhook("wh-4444", "RET", rooms.WebhookEventSubmitted))
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.DisableWebhook(ctx, "wh-4444", at(0)) })
	appendOutbox(t, s, message("r-1", 2, rooms.WebhookEventSubmitted), message("r-1", 3, rooms.WebhookEventMessage),
		message("r-1", 4, rooms.WebhookEventPlanEdit))
	for id, want := range map[string]int{"wh-1": 2, "wh-22": 1, "wh-333": 0, "wh-4444": 0, "": 3} {
		if n := queued(t, s, id); n != want {
			t.Errorf("queued for %q: %d, want %d", id, n, want)
		}
	}
	cs := claimOutbox(t, s, "lease-1", at(time.Hour), 10)
	checkIDs(t, "claimed", claimed(cs), []string{"wh-1/r-1/2", "wh-22/r-1/3"})
	for _, c := range cs {
		if c.Webhook.ID == "wh-22" {
			want := message("r-1", 3, rooms.WebhookEventMessage)
			if c.Message.ID != want.ID || c.Message.Type != want.Type || string(c.Message.Payload) != string(want.Payload) ||
				!sameTime(c.Message.At, want.At) || c.Webhook.URL != "https://ehr.example/wh-22" || c.Webhook.Secret != "whsec_wh-22" ||
				c.Attempts != 0 || c.FirstAttemptAt != nil {
				t.Errorf("claim %+v, want message %+v", c, want)
			}
		}
	}
}

func outboxGroupUndo(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage))
	f.createReferral(t, f.referral("r-1", at(0)))
	f.createReferral(t, f.referral("r-2", at(0)))
	ctx := t.Context()
	errs, err := s.InTxGroup(ctx, []string{"r-1", "r-2"}, []func(tx rooms.Tx) error{
		func(tx rooms.Tx) error {
			if _, err := tx.LockReferral(ctx, "r-1"); err != nil {
				return err
			}
			if err := tx.AppendEvent(ctx, f.event("r-1", 1)); err != nil {
				return err
			}
			return tx.AppendOutbox(ctx, message("r-1", 1, rooms.WebhookEventMessage))
		},
		func(tx rooms.Tx) error {
			if _, err := tx.LockReferral(ctx, "r-2"); err != nil {
				return err
			}
			if err := tx.AppendEvent(ctx, f.event("r-2", 1)); err != nil {
				return err
			}
			if err := tx.AppendOutbox(ctx, message("r-2", 1, rooms.WebhookEventMessage)); err != nil {
				return err
			}
			return errBoom // refused after queueing: undone alone
		},
	})
	if err != nil || errs[0] != nil || errs[1] != errBoom {
		t.Fatalf("group: errs %v, err %v; want the second refused alone", errs, err)
	}
	checkIDs(t, "queued after the group", claimed(claimOutbox(t, s, "l", at(time.Hour), 10)), []string{"wh-1/r-1/1"})

	// A group whose member fails after its writes were sent (Postgres: the
	// whole group fails; the embedded store: the member alone) queues
	// nothing either.
	errs, err = s.InTxGroup(ctx, []string{"r-1"}, []func(tx rooms.Tx) error{
		func(tx rooms.Tx) error {
			if err := tx.AppendOutbox(ctx, message("r-1", 2, rooms.WebhookEventMessage)); err != nil {
				return err
			}
			return tx.AppendEvent(ctx, f.event("r-1", 1)) // seq taken: the group fails at its commit
		},
	})
	if err == nil && errs[0] == nil {
		t.Fatalf("a group appending a taken seq committed")
	}
	if n := queued(t, s, ""); n != 1 {
		t.Errorf("queued after a failed group: %d, want 1", n)
	}
}

func outboxClaimOrder(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage), webhook("wh-22", "RET", rooms.WebhookEventMessage))
	for seq := int64(1); seq <= 3; seq++ {
		appendOutbox(t, s, message("r-a", seq, rooms.WebhookEventMessage), message("r-b", seq, rooms.WebhookEventMessage))
	}
	now := at(time.Hour)
	for seq := 1; seq <= 3; seq++ {
		cs := claimOutbox(t, s, fmt.Sprintf("lease-%d", seq), now, 10)
		want := []string{fmt.Sprintf("wh-1/r-a/%d", seq), fmt.Sprintf("wh-1/r-b/%d", seq),
			fmt.Sprintf("wh-22/r-a/%d", seq), fmt.Sprintf("wh-22/r-b/%d", seq)}
		checkIDs(t, fmt.Sprintf("round %d", seq), claimed(cs), want)
		if again := claimOutbox(t, s, "other", now, 10); len(again) != 0 {
			t.Errorf("round %d: claimed past the leased heads: %v", seq, claimed(again))
		}
		for _, c := range cs {
			finish(t, s, c, rooms.DeliveryDelivered, nil)
		}
	}
	if n := queued(t, s, ""); n != 0 {
		t.Errorf("outbox holds %d after every message was delivered", n)
	}
	if cs := claimOutbox(t, s, "limit", now, 1); len(cs) != 0 {
		t.Errorf("claimed from an empty outbox: %v", claimed(cs))
	}
}

func outboxLease(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage))
	appendOutbox(t, s, message("r-a", 1, rooms.WebhookEventMessage), message("r-a", 2, rooms.WebhookEventMessage))
	now := at(time.Hour)
	first := claimOutbox(t, s, "node-1", now, 10)
	checkIDs(t, "first claim", claimed(first), []string{"wh-1/r-a/1"})
	if cs := claimOutbox(t, s, "node-2", now.Add(59*time.Second), 10); len(cs) != 0 {
		t.Errorf("claimed within the lease: %v", claimed(cs))
	}
	// node-1 died: once its lease is over, node-2 takes the same message,
	// and only it, since the one before the next is still queued.
	second := claimOutbox(t, s, "node-2", now.Add(time.Minute), 10)
	checkIDs(t, "claim after the lease", claimed(second), []string{"wh-1/r-a/1"})
	// node-1's late failure no longer moves the message, but is logged.
	finish(t, s, first[0], rooms.DeliveryFailed, nil)
	if n := queued(t, s, ""); n != 2 {
		t.Errorf("a stale lease's failure dropped a message: %d queued, want 2", n)
	}
	finish(t, s, second[0], rooms.DeliveryDelivered, nil)
	checkIDs(t, "next", claimed(claimOutbox(t, s, "node-2", now.Add(time.Minute), 10)), []string{"wh-1/r-a/2"})
	ds, err := s.WebhookDeliveries(t.Context(), "wh-1", 0, 10)
	if err != nil || len(ds) != 2 || ds[0].Outcome != rooms.DeliveryDelivered || ds[1].Outcome != rooms.DeliveryFailed {
		t.Errorf("deliveries %+v, %v; want delivered then failed, newest first", ds, err)
	}
}

func outboxFinish(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage))
	appendOutbox(t, s, message("r-a", 1, rooms.WebhookEventMessage), message("r-a", 2, rooms.WebhookEventMessage))
	now := at(time.Hour)
	cs := claimOutbox(t, s, "l1", now, 10)
	next := now.Add(time.Second)
	finish(t, s, cs[0], rooms.DeliveryRetrying, &next)
	if got := claimOutbox(t, s, "l2", now.Add(999*time.Millisecond), 10); len(got) != 0 {
		t.Errorf("claimed before its retry was due, or past its head: %v", claimed(got))
	}
	again := claimOutbox(t, s, "l3", next, 10)
	if len(again) != 1 || again[0].Message.Seq != 1 || again[0].Attempts != 1 || again[0].FirstAttemptAt == nil ||
		!sameTime(*again[0].FirstAttemptAt, at(time.Hour)) {
		t.Fatalf("claim of the retry: %+v; want seq 1 after 1 attempt, first at %v", again, at(time.Hour))
	}
	finish(t, s, again[0], rooms.DeliveryFailed, nil)
	checkIDs(t, "after the final failure", claimed(claimOutbox(t, s, "l4", next, 10)), []string{"wh-1/r-a/2"})

	ds, err := s.WebhookDeliveries(t.Context(), "wh-1", 0, 0)
	if err != nil || len(ds) != 2 {
		t.Fatalf("deliveries: %+v, %v; want 2", ds, err)
	}
	d := ds[1]
	if d.WebhookID != "wh-1" || d.MessageID != cs[0].Message.ID || d.Type != rooms.WebhookEventMessage || d.ReferralID != "r-a" ||
		d.Seq != 1 || d.Attempt != 1 || d.StatusCode != 503 || d.Error != "status 503" || d.DurationMS != 3 ||
		d.Outcome != rooms.DeliveryRetrying || d.NextAttemptAt == nil || !sameTime(*d.NextAttemptAt, next) ||
		string(d.Payload) != string(cs[0].Message.Payload) || !sameTime(d.At, at(time.Hour)) {
		t.Errorf("logged attempt %+v", d)
	}
	if ds[0].Attempt != 2 || ds[0].Outcome != rooms.DeliveryFailed || ds[0].ID <= d.ID {
		t.Errorf("second attempt %+v, want attempt 2, failed, a greater id", ds[0])
	}
	one, err := s.WebhookDelivery(t.Context(), "wh-1", d.ID)
	if err != nil || one.ID != d.ID || one.MessageID != d.MessageID {
		t.Errorf("delivery %d: %+v, %v", d.ID, one, err)
	}
	_, err = s.WebhookDelivery(t.Context(), "wh-other", d.ID)
	wantNotFound(t, "another webhook's delivery", err)
	older, err := s.WebhookDeliveries(t.Context(), "wh-1", ds[0].ID, 10)
	if err != nil || len(older) != 1 || older[0].ID != d.ID {
		t.Errorf("deliveries before %d: %+v, %v", ds[0].ID, older, err)
	}
}

func outboxRequeue(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage))
	m := message("r-a", 1, rooms.WebhookEventMessage)
	appendOutbox(t, s, m)
	err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.RequeueWebhookMessage(t.Context(), "wh-1", m) })
	wantDuplicate(t, "requeue of a queued message", err)
	cs := claimOutbox(t, s, "l", at(time.Hour), 10)
	finish(t, s, cs[0], rooms.DeliveryDelivered, nil)
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.RequeueWebhookMessage(ctx, "wh-1", m) })
	again := claimOutbox(t, s, "l2", at(time.Hour), 10)
	if len(again) != 1 || again[0].Message.ID != m.ID || string(again[0].Message.Payload) != string(m.Payload) || again[0].Attempts != 0 {
		t.Errorf("replayed claim %+v, want %+v afresh", again, m)
	}
}

func outboxDisable(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage), webhook("wh-22", "RET", rooms.WebhookEventMessage))
	appendOutbox(t, s, message("r-a", 1, rooms.WebhookEventMessage), message("r-a", 2, rooms.WebhookEventMessage))
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.DisableWebhook(ctx, "wh-1", at(0)) })
	if n, m := queued(t, s, "wh-1"), queued(t, s, "wh-22"); n != 0 || m != 2 {
		t.Errorf("queued after disabling wh-1: %d and %d, want 0 and 2", n, m)
	}
	appendOutbox(t, s, message("r-a", 3, rooms.WebhookEventMessage))
	if n := queued(t, s, "wh-1"); n != 0 {
		t.Errorf("a disabled webhook was queued a message")
	}
}

func outboxPrune(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage), webhook("wh-22", "RET", rooms.WebhookEventMessage))
	appendOutbox(t, s, message("r-a", 1, rooms.WebhookEventMessage))
	for i := range 5 {
		for _, c := range claimOutbox(t, s, fmt.Sprintf("l%d", i), at(time.Duration(i)*time.Hour), 10) {
			next := at(time.Duration(i+1) * time.Hour)
			d := rooms.WebhookDelivery{MessageID: c.Message.ID, Type: c.Message.Type, ReferralID: "r-a", Seq: 1, Attempt: i + 1,
				At: at(time.Duration(i) * time.Hour), Outcome: rooms.DeliveryRetrying, NextAttemptAt: &next, Payload: c.Message.Payload}
			if err := s.FinishWebhookAttempt(t.Context(), c, d); err != nil {
				t.Fatal(err)
			}
		}
	}
	// 10 attempts, 5 each, at 0h … 4h. Those before 1h go, and so do all
	// but the newest 3 of each: 0h and 1h of each.
	n, err := s.PruneWebhookDeliveries(t.Context(), at(time.Hour), 3)
	if err != nil || n != 4 {
		t.Fatalf("pruned %d, %v; want 4", n, err)
	}
	for _, id := range []string{"wh-1", "wh-22"} {
		ds, err := s.WebhookDeliveries(t.Context(), id, 0, 0)
		if err != nil || len(ds) != 3 || ds[2].Attempt != 3 {
			t.Errorf("deliveries of %s left: %+v, %v; want attempts 5, 4, 3", id, ds, err)
		}
	}
}

func outboxConcurrentClaims(t *testing.T, s rooms.Store) {
	newFixture(t, s)
	createWebhooks(t, s, webhook("wh-1", "RET", rooms.WebhookEventMessage))
	var ms []rooms.WebhookMessage
	for r := range 40 {
		ms = append(ms, message(fmt.Sprintf("r-%02d", r), 1, rooms.WebhookEventMessage))
	}
	appendOutbox(t, s, ms...)
	var (
		mu   sync.Mutex
		seen = map[int64]string{}
		wg   sync.WaitGroup
	)
	for w := range 8 {
		wg.Go(func() {
			lease := fmt.Sprintf("node-%d", w)
			for range 10 {
				cs, err := s.ClaimWebhookMessages(context.Background(), rooms.WebhookClaimRequest{Lease: lease, Now: at(time.Hour),
					LeaseUntil: at(2 * time.Hour), Limit: 3})
				if err != nil {
					t.Errorf("claim: %v", err)
					return
				}
				mu.Lock()
				for _, c := range cs {
					if other, dup := seen[c.OutboxID]; dup {
						t.Errorf("message %d claimed by %s and %s", c.OutboxID, other, lease)
					}
					seen[c.OutboxID] = lease
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Errorf("claimed %d messages, want all 40", len(seen))
	}
}
