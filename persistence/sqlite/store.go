// Package sqlite is the embedded store Patient Pass runs on when no database
// is configured: one file, pure Go (modernc.org/sqlite), no cgo.
//
// SQLite allows one writer at a time. Every transaction is therefore run on a
// single writer connection with BEGIN IMMEDIATE, so concurrent InTx calls
// queue for it instead of failing with SQLITE_BUSY, and a lock taken by
// LockReferral, or the read of an audit chain's head, is simply a read inside
// that transaction.
// Reads outside a transaction use a separate pool of read-only connections,
// which WAL lets run alongside the writer.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"patientpass/rooms"
)

var _ rooms.Store = (*Store)(nil)

// busyTimeout bounds how long a connection waits for a lock held by another
// process (a second patientpass, or `patientpass migrate`) before SQLite
// reports SQLITE_BUSY. Inside one process the writer connection already
// serialises transactions.
const busyTimeout = 10 * time.Second

// Store is the embedded SQLite implementation of rooms.Store. It is safe for
// concurrent use.
type Store struct {
	reader
	write *sql.DB // exactly one connection: every transaction runs here
	read  *sql.DB // query_only connections for reads outside transactions
	// fileKey names the database file, the same for every store open on
	// it: the scheduler's lock is held per file.
	fileKey string
	// closed is set by Close; the scheduler's lock is not taken after it.
	// Guarded by schedulerLocks.mu.
	closed bool
}

// Open opens the store in the file at path, creating the file and its
// directory if needed, and applies any migrations not yet applied.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := createPrivate(abs); err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}

	write, err := sql.Open("sqlite", dsn(abs, url.Values{
		"_txlock": {"immediate"},
		// FULL: a commit is on disk before the sender is acknowledged. The
		// file is the clinical record, so NORMAL's speed is not worth losing
		// the last transactions on power failure.
		"_pragma": {"journal_mode(WAL)", "synchronous(FULL)"},
	}))
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxIdleTime(0)
	write.SetConnMaxLifetime(0)
	if err := checkWAL(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	if err := migrate(ctx, write); err != nil {
		write.Close()
		return nil, fmt.Errorf("migrate store %s: %w", path, err)
	}

	read, err := sql.Open("sqlite", dsn(abs, url.Values{"_pragma": {"query_only(1)"}}))
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	read.SetMaxOpenConns(max(4, runtime.GOMAXPROCS(0)))
	read.SetMaxIdleConns(max(4, runtime.GOMAXPROCS(0)))
	if err := read.PingContext(ctx); err != nil {
		read.Close()
		write.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	return &Store{reader: reader{q: read}, write: write, read: read, fileKey: fileKey(abs)}, nil
}

// fileKey returns the key of the database file at the absolute path abs,
// which exists: its path with symbolic links resolved, so two paths to one
// file share a scheduler's lock.
func fileKey(abs string) string {
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real
	}
	return abs
}

// createPrivate creates the database file readable by its owner only, since
// it holds patient data; SQLite gives its WAL files the same permissions.
func createPrivate(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	return f.Close()
}

// dsn builds a modernc.org/sqlite data source name for the file at path with
// the settings every connection needs plus extra.
func dsn(path string, extra url.Values) string {
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", busyTimeout.Milliseconds()))
	q.Add("_pragma", "foreign_keys(1)")
	for k, vs := range extra {
		for _, v := range vs {
			q.Add(k, v)
		}
	}
	u := url.URL{Scheme: "file", Path: path, RawQuery: q.Encode()}
	return u.String()
}

// checkWAL fails when the file could not be put in WAL mode (a file system
// without shared memory, for one), where readers would block the writer.
func checkWAL(ctx context.Context, db *sql.DB) error {
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode").Scan(&mode); err != nil {
		return fmt.Errorf("read journal mode: %w", err)
	}
	if mode != "wal" {
		return fmt.Errorf("journal mode is %q, want wal", mode)
	}
	return nil
}

// Close gives up the scheduler's lock, if held, and closes the store.
// Transactions still running fail. Closing again does nothing.
func (s *Store) Close() error {
	s.closeSchedulerLock()
	return errors.Join(s.read.Close(), s.write.Close())
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	if err := s.read.QueryRowContext(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("ping store: %w", err)
	}
	return nil
}

// InTx runs fn in one transaction, committing when fn returns nil and rolling
// back otherwise; fn's error is returned as it is. Transactions run one at a
// time, in the order they asked. fn must not call InTx itself: it would wait
// for its own transaction to finish.
func (s *Store) InTx(ctx context.Context, fn func(tx rooms.Tx) error) error {
	sqlTx, err := s.begin(ctx)
	if err != nil {
		return err
	}
	// Rolls back when fn fails or panics; after a commit it does nothing.
	defer sqlTx.Rollback()
	if err := fn(&Tx{reader: reader{q: sqlTx}, tx: sqlTx}); err != nil {
		return err
	}
	if err := sqlTx.Commit(); err != nil {
		return fmt.Errorf("commit transaction: %w", err)
	}
	return nil
}

// InTxGroup runs fns one after another in one write transaction, with one
// commit, each in a savepoint of its own, so that a member that fails is
// rolled back alone and the others commit (see rooms.Store). The embedded
// store has one writer, so lock has nothing to order: every referral is
// the writer's until the commit.
func (s *Store) InTxGroup(ctx context.Context, _ []string, fns []func(tx rooms.Tx) error) ([]error, error) {
	sqlTx, err := s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer sqlTx.Rollback()
	t := &Tx{reader: reader{q: sqlTx}, tx: sqlTx}
	errs := make([]error, len(fns))
	for i, fn := range fns {
		if _, err := sqlTx.ExecContext(ctx, "SAVEPOINT member"); err != nil {
			return nil, fmt.Errorf("savepoint: %w", err)
		}
		if errs[i] = fn(t); errs[i] != nil {
			if _, err := sqlTx.ExecContext(ctx, "ROLLBACK TO member"); err != nil {
				return nil, fmt.Errorf("roll back to savepoint: %w", err)
			}
		}
		if _, err := sqlTx.ExecContext(ctx, "RELEASE member"); err != nil {
			return nil, fmt.Errorf("release savepoint: %w", err)
		}
	}
	if err := sqlTx.Commit(); err != nil {
		return nil, fmt.Errorf("commit transaction: %w", err)
	}
	return errs, nil
}

// GroupsAtOnce is one: the embedded store has a single writer, so a second
// group would only wait for the first.
func (s *Store) GroupsAtOnce() int { return 1 }

// begin starts a write transaction. BEGIN IMMEDIATE takes the write lock up
// front, so the only place another process can make us wait is here, before
// fn has run; busy_timeout covers ordinary waits and the retry covers a
// writer that holds the lock for longer, which is safe because nothing has
// been done yet.
func (s *Store) begin(ctx context.Context) (*sql.Tx, error) {
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		tx, err := s.write.BeginTx(ctx, nil)
		if err == nil {
			return tx, nil
		}
		if !isBusy(err) || attempt == 5 {
			return nil, fmt.Errorf("begin transaction: %w", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("begin transaction: %w", ctx.Err())
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// Setting returns a stored setting.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.read.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("get setting %s: %w", key, rooms.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return v, nil
}

// SetSettingIfAbsent stores value under key unless the key already holds a
// value, and returns the value stored.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	tx, err := s.begin(ctx)
	if err != nil {
		return "", err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING", key, value); err != nil {
		return "", fmt.Errorf("set setting %s: %w", key, err)
	}
	var stored string
	if err := tx.QueryRowContext(ctx, "SELECT value FROM settings WHERE key = ?", key).Scan(&stored); err != nil {
		return "", fmt.Errorf("read setting %s: %w", key, err)
	}
	if err := tx.Commit(); err != nil {
		return "", fmt.Errorf("set setting %s: %w", key, err)
	}
	return stored, nil
}

// Referral returns a referral with its plan sections and participants, read
// from one snapshot.
func (s *Store) Referral(ctx context.Context, id string) (rooms.Referral, error) {
	var r rooms.Referral
	err := s.readTx(ctx, func(q reader) error {
		var err error
		r, err = q.Referral(ctx, id)
		return err
	})
	return r, err
}

// Referrals lists referrals matching f, read from one snapshot.
func (s *Store) Referrals(ctx context.Context, f rooms.ReferralFilter) ([]rooms.Referral, error) {
	var rs []rooms.Referral
	err := s.readTx(ctx, func(q reader) error {
		var err error
		rs, err = q.Referrals(ctx, f)
		return err
	})
	return rs, err
}

// readTx runs fn in a read transaction, so that reads spanning several
// queries see one consistent state.
func (s *Store) readTx(ctx context.Context, fn func(q reader) error) error {
	tx, err := s.read.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return fmt.Errorf("begin read: %w", err)
	}
	defer tx.Rollback()
	return fn(reader{q: tx})
}

// isUnique reports whether err is a violated primary key or unique
// constraint.
func isUnique(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() {
	case sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY:
		return true
	}
	return false
}

// isBusy reports whether err is SQLite failing to get a lock in time.
func isBusy(err error) bool {
	var se *sqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
		return true
	}
	return false
}

// mapWrite turns a unique violation into rooms.ErrDuplicate and wraps err
// with what was being done.
func mapWrite(err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	what := fmt.Sprintf(format, args...)
	if isUnique(err) {
		return fmt.Errorf("%s: %w", what, rooms.ErrDuplicate)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// notFound wraps rooms.ErrNotFound when err is sql.ErrNoRows.
func notFound(err error, format string, args ...any) error {
	what := fmt.Sprintf(format, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, rooms.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// micros encodes a time as stored: microseconds since the epoch, UTC.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros decodes a stored time.
func fromMicros(v int64) time.Time { return time.UnixMicro(v).UTC() }

func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: micros(*t), Valid: true}
}

func fromNullMicros(v sql.NullInt64) *time.Time {
	if !v.Valid {
		return nil
	}
	t := fromMicros(v.Int64)
	return &t
}

func nullString(s string) sql.NullString { return sql.NullString{String: s, Valid: s != ""} }
