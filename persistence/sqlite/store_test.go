package sqlite_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"patientpass/persistence/sqlite"
	"patientpass/persistence/storetest"
	"patientpass/rooms"
)

// openTemp opens a store in a fresh file that is removed after the test.
func openTemp(t *testing.T) (*sqlite.Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "patientpass.db")
	s, err := sqlite.Open(t.Context(), path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return s, path
}

func TestContract(t *testing.T) {
	storetest.Run(t, func(t *testing.T) rooms.Store {
		s, _ := openTemp(t)
		return s
	})
}

// TestSharedContract runs the checks that need two stores on one database:
// here two stores opened on one file, as two processes would.
func TestSharedContract(t *testing.T) {
	storetest.RunShared(t, func(t *testing.T) (rooms.Store, rooms.Store) {
		a, path := openTemp(t)
		b, err := sqlite.Open(t.Context(), path)
		if err != nil {
			t.Fatalf("open the store a second time: %v", err)
		}
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("close second store: %v", err)
			}
		})
		return a, b
	})
}

func TestDataSurvivesReopen(t *testing.T) {
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "data", "patientpass.db")
	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	when := time.Date(2025, 3, 4, 9, 30, 0, 123456000, time.UTC)
	entry := rooms.AuditEntry{Chain: 4, At: when, ActorID: "u-1", Action: rooms.ActionCreate, Event: "organisation.create", Outcome: rooms.OutcomeSuccess}
	err = s.InTx(ctx, func(tx rooms.Tx) error {
		if err := tx.PutOrganisation(ctx, rooms.Organisation{ODS: "RET", Name: "The Walton Centre"}); err != nil {
			return err
		}
		return tx.AppendAudit(ctx, entry)
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if _, err := s.SetSettingIfAbsent(ctx, "session_keys", "k1"); err != nil {
		t.Fatalf("set setting: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	// Opening again must find the schema in place and apply nothing twice.
	s, err = sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("reopen store: %v", err)
	}
	defer s.Close()
	if o, err := s.Organisation(ctx, "RET"); err != nil || o.Name != "The Walton Centre" {
		t.Errorf("organisation after reopen: %+v, %v", o, err)
	}
	if v, err := s.Setting(ctx, "session_keys"); err != nil || v != "k1" {
		t.Errorf("setting after reopen: %q, %v", v, err)
	}
	checked, brk, err := rooms.VerifyAudit(ctx, s)
	if err != nil || brk != nil || checked != 1 {
		t.Errorf("verify after reopen: checked %d, break %v, err %v; want 1 intact", checked, brk, err)
	}
	entries, err := s.AuditEntries(ctx, 4, 0, 0)
	if err != nil || len(entries) != 1 || !entries[0].At.Equal(when) {
		t.Errorf("audit entries after reopen: %+v, %v", entries, err)
	}
}

func TestAuditLogRefusesChanges(t *testing.T) {
	s, path := openTemp(t)
	ctx := t.Context()
	err := s.InTx(ctx, func(tx rooms.Tx) error {
		e := rooms.AuditEntry{Chain: 0, At: time.Now(),
			ActorID: "u-1", Action: rooms.ActionRead, Event: "referral.view", ReferralID: "r-1", Outcome: rooms.OutcomeSuccess}
		return tx.AppendAudit(ctx, e)
	})
	if err != nil {
		t.Fatalf("append audit entry: %v", err)
	}

	// Go around the store, as someone with the file would.
	db := rawDB(t, path)
	for _, stmt := range []string{
		"UPDATE audit_entries SET outcome = 'denied'",
		"DELETE FROM audit_entries WHERE chain = 0",
		"DELETE FROM audit_entries",
		"UPDATE audit_chain_heads SET seq = 0, hash = '' WHERE chain = 0",
		"DELETE FROM audit_chain_heads",
	} {
		_, err := db.ExecContext(ctx, stmt)
		if err == nil {
			t.Errorf("%s: accepted", stmt)
		}
	}
	if checked, brk, err := rooms.VerifyAudit(ctx, s); err != nil || brk != nil || checked != 1 {
		t.Errorf("verify after refused changes: checked %d, break %v, err %v", checked, brk, err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_entries WHERE outcome = 'success'").Scan(&n); err != nil || n != 1 {
		t.Errorf("audit log after refused changes: %d untouched entries, %v; want 1", n, err)
	}
}

func TestMigrationsAreRecorded(t *testing.T) {
	_, path := openTemp(t)
	db := rawDB(t, path)
	var version int
	if err := db.QueryRowContext(t.Context(), "SELECT max(version) FROM schema_migrations").Scan(&version); err != nil {
		t.Fatalf("read schema version: %v", err)
	}
	if version < 1 {
		t.Errorf("schema version %d, want at least 1", version)
	}
	var heads int
	if err := db.QueryRowContext(t.Context(), "SELECT count(*) FROM audit_chain_heads").Scan(&heads); err != nil {
		t.Fatalf("count chain heads: %v", err)
	}
	if heads != rooms.AuditChains {
		t.Errorf("%d audit chain heads, want %d", heads, rooms.AuditChains)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	_, path := openTemp(t)
	db := rawDB(t, path)
	if _, err := db.ExecContext(t.Context(), "INSERT INTO schema_migrations (version, name, applied_at) VALUES (9999, 'future', 0)"); err != nil {
		t.Fatalf("record future migration: %v", err)
	}
	s2, err := sqlite.Open(t.Context(), path)
	if err == nil {
		s2.Close()
		t.Fatalf("opened a database from a newer version")
	}
}

func TestCancelledContextFailsInTx(t *testing.T) {
	s, _ := openTemp(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	ran := false
	err := s.InTx(ctx, func(tx rooms.Tx) error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("InTx with a cancelled context: ran %v, err %v", ran, err)
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v does not say the context was cancelled", err)
	}
}

// rawDB opens the store's file directly, bypassing the store.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatalf("open database directly: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
