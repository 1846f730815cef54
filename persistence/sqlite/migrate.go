package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"patientpass/rooms"
)

// migrations holds the schema as numbered files, NNNN_name.sql. A file once
// released is never edited: a change to the schema is a new file.
//
//go:embed migrations/*.sql
var migrations embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	files, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var out []migration
	for _, f := range files {
		base := strings.TrimSuffix(strings.TrimPrefix(f, "migrations/"), ".sql")
		num, name, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s is not named NNNN_name.sql", f)
		}
		b, err := migrations.ReadFile(f)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: name, sql: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("two migrations numbered %d", out[i].version)
		}
	}
	return out, nil
}

// migrate applies, each in its own transaction, the migrations the database
// has not yet had. BEGIN IMMEDIATE makes two processes migrating one file at
// once take turns; the second then finds the work done.
func migrate(ctx context.Context, db *sql.DB) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var newest int
	if err := db.QueryRowContext(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&newest); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if known := ms[len(ms)-1].version; newest > known {
		return fmt.Errorf("database schema version %d is newer than this program knows (%d): upgrade patientpass", newest, known)
	}
	for _, m := range ms {
		if err := apply(ctx, db, m); err != nil {
			return fmt.Errorf("migration %04d_%s: %w", m.version, m.name, err)
		}
	}
	return ensureChainHeads(ctx, db)
}

func apply(ctx context.Context, db *sql.DB, m migration) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var done int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM schema_migrations WHERE version = ?", m.version).Scan(&done); err != nil {
		return err
	}
	if done > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, m.sql); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
		m.version, m.name, micros(time.Now())); err != nil {
		return err
	}
	return tx.Commit()
}

// ensureChainHeads gives every chain rooms.AuditChains names a head, in case
// the number of chains grows beyond what the first migration created.
func ensureChainHeads(ctx context.Context, db *sql.DB) error {
	var have int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM audit_chain_heads WHERE chain < ?", rooms.AuditChains).Scan(&have); err != nil {
		return fmt.Errorf("count audit chain heads: %w", err)
	}
	if have == rooms.AuditChains {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	for c := range rooms.AuditChains {
		if _, err := tx.ExecContext(ctx, "INSERT INTO audit_chain_heads (chain, seq, hash) VALUES (?, 0, '') ON CONFLICT (chain) DO NOTHING", c); err != nil {
			return fmt.Errorf("create head of audit chain %d: %w", c, err)
		}
	}
	return tx.Commit()
}
