package postgres_test

import (
	"testing"

	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/storetest"
	"patientpass/rooms"
)

// BenchmarkWebhookOutbox measures what the webhooks' outbox adds to each
// message posted, with no subscription and with one.
func BenchmarkWebhookOutbox(b *testing.B) {
	storetest.BenchWebhooks(b, func(tb testing.TB) rooms.Store { return openStore(tb, pgtest.URL(tb)) })
}
