package postgres_test

import (
	"testing"

	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/storetest"
	"patientpass/rooms"
)

// BenchmarkStore measures appending a message to a referral, alone and as
// the whole PostMessage command, on a migrated schema of its own.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(tb testing.TB) rooms.Store { return openStore(tb, pgtest.URL(tb)) })
}
