package postgres_test

import (
	"testing"

	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/storetest"
	"patientpass/rooms"
)

// TestStoreContract runs the contract every store meets, each subtest on a
// migrated schema of its own.
func TestStoreContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) rooms.Store { return openStore(t, pgtest.URL(t)) })
}
