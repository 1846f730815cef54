package main

import (
	"context"
	"database/sql"
	"testing"

	_ "modernc.org/sqlite"
)

// tamperEmbeddedAudit changes one audit row of the embedded store the way
// someone with the file could: dropping the append-only triggers first. It
// returns the altered entry's id.
func tamperEmbeddedAudit(t *testing.T, path string) int64 {
	t.Helper()
	ctx := context.Background()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `UPDATE audit_entries SET detail = 'x'`); err == nil {
		t.Fatal("the embedded store let an audit row be updated")
	}
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'audit_entries'`)
	if err != nil {
		t.Fatal(err)
	}
	var triggers []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		triggers = append(triggers, name)
	}
	rows.Close()
	for _, name := range triggers {
		if _, err := db.ExecContext(ctx, `DROP TRIGGER "`+name+`"`); err != nil {
			t.Fatal(err)
		}
	}
	var id int64
	if err := db.QueryRowContext(ctx, `SELECT id FROM audit_entries ORDER BY id LIMIT 1 OFFSET 10`).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `UPDATE audit_entries SET outcome = 'denied' WHERE id = ?`, id); err != nil {
		t.Fatal(err)
	}
	return id
}
