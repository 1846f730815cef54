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

// TestSharedStoreContract runs the checks that need two nodes: two stores,
// each with its own pool, on one schema.
func TestSharedStoreContract(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (rooms.Store, rooms.Store) {
		url := pgtest.URL(t)
		return openStore(t, url), openStore(t, url)
	})
}
