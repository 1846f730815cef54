package sqlite_test

import (
	"path/filepath"
	"testing"

	"patientpass/persistence/sqlite"
	"patientpass/persistence/storetest"
	"patientpass/rooms"
)

// BenchmarkStore measures appending a message to a referral, alone and as
// the whole PostMessage command, in a fresh database file.
func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(tb testing.TB) rooms.Store {
		tb.Helper()
		s, err := sqlite.Open(tb.Context(), filepath.Join(tb.TempDir(), "patientpass.db"))
		if err != nil {
			tb.Fatalf("open store: %v", err)
		}
		tb.Cleanup(func() {
			if err := s.Close(); err != nil {
				tb.Errorf("close store: %v", err)
			}
		})
		return s
	})
}
