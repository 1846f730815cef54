package postgres_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"patientpass/persistence/postgres/pgtest"
)

// TestMigrationKeepsOutcomesByStatus builds the schema as it was before
// 0004, with referrals whose single outcome was overwritten by each move,
// and checks that migrating rebuilds their outcomes by status from the
// transition events, renaming the old booking keys.
func TestMigrationKeepsOutcomesByStatus(t *testing.T) {
	ctx := context.Background()
	url := pgtest.URL(t)
	admin := pgtest.Admin(t, url)
	migrateBefore(t, admin, 4)
	_, err := admin.Exec(ctx, `
		INSERT INTO referrals (id, pathway_id, status, priority, patient_nhs_number, patient_name,
			patient_date_of_birth, patient_sex, referrer, referring_organisation, receiving_organisation,
			outcome, created_at, updated_at, head_seq)
		VALUES
			('r-transferred', 'mscc', 'transferred', 'urgent', '9434765919', 'A', '1950-01-01', 'female', '{}', 'RJR', 'RET',
				'{"bed":"Ward 4","transfer_at":"2026-01-01T09:00:00Z"}', now(), now(), 3),
			('r-accepted', 'mscc', 'accepted', 'urgent', '9434765919', 'B', '1950-01-01', 'female', '{}', 'RJR', 'RET',
				'{"bed_type":"spinal"}', now(), now(), 0),
			('r-none', 'mscc', 'in_triage', 'urgent', '9434765919', 'C', '1950-01-01', 'female', '{}', 'RJR', 'RET',
				NULL, now(), now(), 1);
		INSERT INTO events (referral_id, seq, kind, author, at, body) VALUES
			('r-transferred', 1, 'transition', '{}', now(), '{"from":"in_triage","to":"accepted","outcome":{"bed_type":"spinal"}}'),
			('r-transferred', 2, 'transition', '{}', now(), '{"from":"accepted","to":"transfer_booked","outcome":{"bed":"Ward 4","transfer_at":"2026-01-01T09:00:00Z"}}'),
			('r-transferred', 3, 'transition', '{}', now(), '{"from":"transfer_booked","to":"transferred"}'),
			('r-none', 1, 'message', '{}', now(), '{"body":"hello"}')`)
	if err != nil {
		t.Fatalf("insert old rows: %v", err)
	}

	s := openStore(t, url)
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
	var n int
	if err := admin.QueryRow(ctx, `SELECT count(*) FROM information_schema.columns
		WHERE table_schema = current_schema() AND table_name = 'referrals' AND column_name = 'outcome'`).Scan(&n); err != nil || n != 0 {
		t.Errorf("the old outcome column is still there (%d, %v)", n, err)
	}
}

// migrateBefore applies the embedded migrations numbered below version to
// the schema admin's connection selects, as an installation of that age
// has them, and records them as applied.
func migrateBefore(t *testing.T, admin *pgxpool.Pool, version int) {
	t.Helper()
	ctx := context.Background()
	files, err := filepath.Glob("migrations/*.sql")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
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
		if _, err := admin.Exec(ctx, string(b)); err != nil {
			t.Fatalf("apply %s: %v", f, err)
		}
		if _, err := admin.Exec(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, i+1, f); err != nil {
			t.Fatal(err)
		}
		applied++
	}
	if applied != version-1 {
		t.Fatalf("%d migrations before %04d; want %d", applied, version, version-1)
	}
}
