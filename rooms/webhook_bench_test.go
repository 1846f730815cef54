package rooms

import (
	"testing"
	"time"
)

// BenchmarkWebhookMessage measures building the webhook message of a
// posted message, which every post to a submitted referral pays.
func BenchmarkWebhookMessage(b *testing.B) {
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	r := Referral{ID: NewID(), PathwayID: "mscc", Status: StatusInTriage, Priority: PriorityUrgent, ReceivingOrganisation: "RET",
		ReferringOrganisation: "RJR", SubmittedAt: &now, TriageDueAt: &now}
	e := Event{ReferralID: r.ID, Seq: 12, Kind: EventMessage, Author: Author{ID: NewID()}, At: now, Body: mustJSON(MessageBody{Body: "hello"})}
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := webhookMessage(r, e); !ok {
			b.Fatal("no message")
		}
	}
}
