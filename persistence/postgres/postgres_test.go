package postgres_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

func openStore(t testing.TB, url string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// schemaOf returns the schema a pgtest URL selects.
func schemaOf(t *testing.T, admin *pgxpool.Pool) string {
	t.Helper()
	var schema string
	if err := admin.QueryRow(t.Context(), `SELECT current_schema()`).Scan(&schema); err != nil {
		t.Fatalf("read current schema: %v", err)
	}
	return schema
}

func TestMigrateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	for i := range 2 {
		if err := postgres.Migrate(ctx, url); err != nil {
			t.Fatalf("migrate, run %d: %v", i+1, err)
		}
	}
	openStore(t, url) // Open migrates a third time.

	admin := pgtest.Admin(t, url)
	var applied, files int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatalf("count applied migrations: %v", err)
	}
	files = countMigrationFiles(t)
	if applied != files {
		t.Errorf("schema_migrations has %d rows, want one per migration file (%d)", applied, files)
	}
	var heads int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM audit_chain_heads`).Scan(&heads); err != nil {
		t.Fatalf("count audit chain heads: %v", err)
	}
	if heads != rooms.AuditChains {
		t.Errorf("audit_chain_heads has %d rows, want %d", heads, rooms.AuditChains)
	}
}

func TestMigrateCreatesTablesInTheSearchPathSchema(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.URL(t)
	openStore(t, url)
	admin := pgtest.Admin(t, url)
	schema := schemaOf(t, admin)
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM information_schema.tables
		WHERE table_schema = $1 AND table_name IN ('referrals', 'events', 'audit_entries', 'schema_migrations')`,
		schema).Scan(&n); err != nil {
		t.Fatalf("look for tables: %v", err)
	}
	if n != 4 {
		t.Errorf("found %d of 4 tables in schema %s", n, schema)
	}
}

func TestMigrateConcurrently(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	const nodes = 8
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range nodes {
		wg.Go(func() {
			<-start
			if i%2 == 0 {
				errs[i] = postgres.Migrate(t.Context(), url)
				return
			}
			s, err := postgres.Open(t.Context(), url)
			if err == nil {
				s.Close()
			}
			errs[i] = err
		})
	}
	close(start)
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	var applied int
	if err := pgtest.Admin(t, url).QueryRow(t.Context(), `SELECT count(*) FROM schema_migrations`).Scan(&applied); err != nil {
		t.Fatalf("count applied migrations: %v", err)
	}
	if want := countMigrationFiles(t); applied != want {
		t.Errorf("schema_migrations has %d rows, want %d", applied, want)
	}
}

func countMigrationFiles(t *testing.T) int {
	t.Helper()
	entries, err := postgres.MigrationCount()
	if err != nil {
		t.Fatalf("list migrations: %v", err)
	}
	return entries
}

// auditFixture is a store holding entries appended through the service, all
// in one chain because they concern one referral.
type auditFixture struct {
	store *postgres.Store
	admin *pgxpool.Pool
	chain int
}

func newAuditFixture(t *testing.T, entries int) auditFixture {
	t.Helper()
	url := pgtest.URL(t)
	s := openStore(t, url)
	clock := rooms.NewManualClock(time.Date(2025, time.March, 4, 9, 30, 0, 123456789, time.UTC))
	svc := rooms.NewService(rooms.Config{Store: s, Clock: clock, Node: "test-node"})
	for i := range entries {
		clock.Set(clock.Now().Add(time.Second))
		err := svc.Audit(t.Context(), rooms.AuditEntry{
			ActorID:           "u-specialist",
			ActorRegistration: "7654321",
			ActorRole:         rooms.RoleSpecialist,
			Action:            rooms.ActionRead,
			Event:             "referral.view",
			ReferralID:        "r-audit",
			PatientNHSNumber:  "9434765919",
			Outcome:           rooms.OutcomeSuccess,
			Detail:            strings.Repeat("x", i),
			ClientAddr:        "192.0.2.1",
		})
		if err != nil {
			t.Fatalf("append audit entry %d: %v", i+1, err)
		}
	}
	f := auditFixture{store: s, admin: pgtest.Admin(t, url), chain: rooms.AuditChainFor("r-audit")}
	if n, brk, err := rooms.VerifyAudit(t.Context(), s); err != nil || brk != nil || n != int64(entries) {
		t.Fatalf("VerifyAudit before tampering = %d, %v, %v; want %d entries, intact", n, brk, err, entries)
	}
	return f
}

// entryID returns the id of the entry at position seq of the fixture's chain.
func (f auditFixture) entryID(t *testing.T, seq int64) int64 {
	t.Helper()
	var id int64
	if err := f.admin.QueryRow(t.Context(), `SELECT id FROM audit_entries WHERE chain = $1 AND seq = $2`,
		f.chain, seq).Scan(&id); err != nil {
		t.Fatalf("find audit entry %d: %v", seq, err)
	}
	return id
}

// aroundTriggers runs sql with triggers disabled for the transaction, as a
// superuser going around the application would.
func (f auditFixture) aroundTriggers(t *testing.T, sql string, args ...any) {
	t.Helper()
	err := pgx.BeginFunc(t.Context(), f.admin, func(tx pgx.Tx) error {
		if _, err := tx.Exec(t.Context(), `SET LOCAL session_replication_role = replica`); err != nil {
			return err
		}
		tag, err := tx.Exec(t.Context(), sql, args...)
		if err == nil && tag.RowsAffected() != 1 {
			err = errors.New("changed " + tag.String())
		}
		return err
	})
	if err != nil {
		t.Fatalf("tamper with the audit log around its triggers: %v", err)
	}
}

func TestAuditLogRefusesChanges(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, 3)
	for _, tc := range []struct{ name, sql string }{
		{"update", `UPDATE audit_entries SET detail = 'tampered' WHERE seq = 2`},
		{"delete", `DELETE FROM audit_entries WHERE seq = 2`},
		{"truncate", `TRUNCATE audit_entries`},
		{"truncate_cascade", `TRUNCATE audit_entries CASCADE`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The admin pool connects as the tables' owner, a superuser:
			// privileges would not stop it, the triggers must.
			_, err := f.admin.Exec(t.Context(), tc.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Fatalf("%s: got %v, want the trigger's insufficient_privilege error", tc.sql, err)
			}
		})
	}
	if n, brk, err := rooms.VerifyAudit(t.Context(), f.store); err != nil || brk != nil || n != 3 {
		t.Errorf("VerifyAudit after refused changes = %d, %v, %v; want 3 entries, intact", n, brk, err)
	}
}

func TestVerifyAuditDetectsAlteredEntry(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, 3)
	id := f.entryID(t, 2)
	f.aroundTriggers(t, `UPDATE audit_entries SET outcome = 'denied' WHERE id = $1`, id)

	_, brk, err := rooms.VerifyAudit(t.Context(), f.store)
	if err != nil {
		t.Fatalf("VerifyAudit: %v", err)
	}
	if brk == nil || brk.EntryID != id || brk.Chain != f.chain || brk.Seq != 2 || !strings.Contains(brk.Reason, "altered") {
		t.Errorf("VerifyAudit break = %+v, want entry %d (chain %d, position 2) altered", brk, id, f.chain)
	}
}

func TestVerifyAuditDetectsDeletedEntry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		seq    int64
		reason string
	}{
		{"from the middle", 2, "missing"},
		{"at the end", 3, "head records position 3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newAuditFixture(t, 3)
			f.aroundTriggers(t, `DELETE FROM audit_entries WHERE id = $1`, f.entryID(t, tc.seq))

			_, brk, err := rooms.VerifyAudit(t.Context(), f.store)
			if err != nil {
				t.Fatalf("VerifyAudit: %v", err)
			}
			if brk == nil || brk.Chain != f.chain || brk.Seq != tc.seq || !strings.Contains(brk.Reason, tc.reason) {
				t.Errorf("VerifyAudit break = %+v, want chain %d position %d (%s)", brk, f.chain, tc.seq, tc.reason)
			}
		})
	}
}

func TestAppendAuditToChainWithoutHeadFails(t *testing.T) {
	t.Parallel()
	f := newAuditFixture(t, 2)
	err := f.store.InTx(t.Context(), func(tx rooms.Tx) error {
		e := rooms.AuditEntry{Chain: rooms.AuditChains + 5, At: time.Now().UTC(), Action: rooms.ActionRead,
			Event: "referral.view", Outcome: rooms.OutcomeSuccess}
		return tx.AppendAudit(t.Context(), e)
	})
	if !errors.Is(err, rooms.ErrNotFound) || !strings.Contains(err.Error(), "has no head") {
		t.Fatalf("AppendAudit to a chain without a head: %v, want an error naming the missing head", err)
	}
	if _, brk, err := rooms.VerifyAudit(t.Context(), f.store); err != nil || brk != nil {
		t.Errorf("verify: %v, %v", brk, err)
	}
}

func TestPingHonoursContext(t *testing.T) {
	t.Parallel()
	s := openStore(t, pgtest.URL(t))
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	if err := s.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	cancelled, cancelNow := context.WithCancel(t.Context())
	cancelNow()
	if err := s.Ping(cancelled); err == nil {
		t.Error("Ping with a cancelled context succeeded")
	}
}
