package sqlite_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"patientpass/persistence/sqlite"
)

// TestMigrationKeepsOutcomesByStatus builds the schema as it was before
// 0003, with referrals whose single outcome was overwritten by each move,
// and checks that migrating rebuilds their outcomes by status from the
// transition events, renaming the old booking keys.
func TestMigrationKeepsOutcomesByStatus(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	migrateBefore(t, db, 3)
	_, err = db.ExecContext(ctx, `
		INSERT INTO organisations (ods, name) VALUES ('RJR', 'Countess of Chester'), ('RET', 'The Walton Centre');
		INSERT INTO referrals (id, pathway_id, status, priority, patient_nhs_number, patient_name,
			patient_date_of_birth, patient_sex, form, contact_phone, consultant_discussed, referrer,
			referring_organisation, receiving_organisation, outcome, created_at, updated_at, head_seq)
		VALUES
			('r-transferred', 'mscc', 'transferred', 'urgent', '9434765919', 'A', '1950-01-01', 'female', '{}', '', 1, '{}', 'RJR', 'RET',
				'{"bed":"Ward 4","transfer_at":"2026-01-01T09:00:00Z"}', 0, 0, 3),
			('r-accepted', 'mscc', 'accepted', 'urgent', '9434765919', 'B', '1950-01-01', 'female', '{}', '', 1, '{}', 'RJR', 'RET',
				'{"bed_type":"spinal"}', 0, 0, 0),
			('r-none', 'mscc', 'in_triage', 'urgent', '9434765919', 'C', '1950-01-01', 'female', '{}', '', 1, '{}', 'RJR', 'RET',
				NULL, 0, 0, 1);
		INSERT INTO events (referral_id, seq, kind, author, at, body) VALUES
			('r-transferred', 1, 'transition', '{}', 0, '{"from":"in_triage","to":"accepted","outcome":{"bed_type":"spinal"}}'),
			('r-transferred', 2, 'transition', '{}', 0, '{"from":"accepted","to":"transfer_booked","outcome":{"bed":"Ward 4","transfer_at":"2026-01-01T09:00:00Z"}}'),
			('r-transferred', 3, 'transition', '{}', 0, '{"from":"transfer_booked","to":"transferred"}'),
			('r-none', 1, 'message', '{}', 0, '{"body":"hello"}')`)
	if err != nil {
		t.Fatalf("insert old rows: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatalf("open and migrate: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	want := map[string]string{
		"r-transferred": `{"accepted":{"bed_type":"spinal"},"transfer_booked":{"expected_at":"2026-01-01T09:00:00Z","ward":"Ward 4"}}`,
		"r-accepted":    `{"accepted":{"bed_type":"spinal"}}`,
		"r-none":        `null`,
	}
	for id, w := range want {
		r, err := s.Referral(ctx, id)
		if err != nil {
			t.Fatalf("read %s: %v", id, err)
		}
		if got, _ := json.Marshal(r.Outcomes); string(got) != w {
			t.Errorf("%s: outcomes %s, want %s", id, got, w)
		}
	}
}

// migrateBefore applies the embedded migrations numbered below version to
// db, as an installation of that age has them, and records them as
// applied.
func migrateBefore(t *testing.T, db *sql.DB, version int) {
	t.Helper()
	ctx := context.Background()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL,
		applied_at INTEGER NOT NULL) STRICT`); err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	applied := 0
	for i, f := range files {
		if i+1 >= version {
			break
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, string(b)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO schema_migrations VALUES (?, ?, 0)`, i+1, f); err != nil {
			t.Fatal(err)
		}
		applied++
	}
	if applied != version-1 {
		t.Fatalf("%d migrations before %04d; want %d", applied, version, version-1)
	}
}
