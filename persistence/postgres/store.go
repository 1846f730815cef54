// Package postgres is the production store of Patient Pass: rooms.Store on
// PostgreSQL through pgx, with its schema migrations embedded.
package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"patientpass/rooms"
)

var _ rooms.Store = (*Store)(nil)

// Store is rooms.Store on a pgx connection pool. Its tables live in the
// schema selected by the connection URL's search_path.
type Store struct {
	reader
	pool  *pgxpool.Pool
	sched schedulerLock
	reads pointReads
}

// Open connects to the database at url, applies any missing migrations and
// returns the store. Pool settings (pool_max_conns, …) and runtime
// parameters such as search_path may be given as query parameters of url.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parse database url: %w", err)
	}
	if !strings.Contains(url, "pool_max_conns") {
		// pgxpool's default (4 or one per CPU) is sized for CPU-bound work;
		// a command transaction spends most of its time waiting on round
		// trips and on its referral's row lock, so more connections keep
		// the write path busy. Ask for fewer with pool_max_conns.
		cfg.MaxConns = int32(max(16, 4*runtime.NumCPU()))
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	conn, err := pool.Acquire(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	err = migrate(ctx, conn.Conn())
	conn.Release()
	if err != nil {
		pool.Close()
		return nil, err
	}
	s := &Store{reader: reader{q: pool}, pool: pool}
	s.initPointReads()
	return s, nil
}

// Close gives up the scheduler's lock, if held, and closes every connection
// of the pool, waiting for those in use to be released. Closing again does
// nothing.
func (s *Store) Close() error {
	err := s.sched.close()
	s.pool.Close()
	return err
}

// Ping checks that the database answers within ctx.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping postgres: %w", err)
	}
	return nil
}

// InTx runs fn in one READ COMMITTED transaction. Commands on one referral
// are serialised by LockReferral's row lock, not by the isolation level, so
// transactions never fail for serialisation and need no retry loop.
//
// The transaction runs on a connection of its own taken from the pool, and
// sends BEGIN with its first statement and some writes with the statement
// after them (see txConn); fn sees none of this.
func (s *Store) InTx(ctx context.Context, fn func(tx rooms.Tx) error) error {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	c := &txConn{conn: pc.Conn()}
	defer func() {
		c.closed = true
		// The pool destroys, rather than reuses, a connection that is
		// closed, busy or still inside a transaction: whatever happened
		// above, a panic in fn included, no other caller gets this
		// transaction.
		pc.Release()
	}()
	if err := fn(newTx(c)); err != nil {
		c.rollback(ctx)
		return err
	}
	if err := c.commit(ctx); err != nil {
		c.rollback(ctx)
		return err
	}
	return nil
}

// InTxGroup runs fns one after another in one transaction, with one commit,
// each keeping its own outcome (see rooms.Store). The referrals of lock are
// locked and read first, in one round trip and in the order of their ids,
// so that groups locking the same referrals cannot deadlock; LockReferral
// then answers from that read, once per referral.
//
// A member that fails is undone by taking back the writes it queued, which
// is possible while none of them has been sent (txConn.undo), as when it is
// refused on what it read: a stale plan base, an illegal transition. When
// one is not, or the commit fails, the group fails as a whole and nothing of
// it is committed.
func (s *Store) InTxGroup(ctx context.Context, lock []string, fns []func(tx rooms.Tx) error) ([]error, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("begin transaction: %w", err)
	}
	c := &txConn{conn: pc.Conn(), merge: true}
	defer func() {
		c.closed = true
		pc.Release()
	}()
	t := newTx(c)
	if len(lock) > 0 {
		if err := t.lockReferrals(ctx, lock); err != nil {
			c.rollback(ctx)
			return nil, err
		}
	}
	errs := make([]error, len(fns))
	for i, fn := range fns {
		m := c.mark()
		if errs[i] = fn(t); errs[i] != nil && !c.undo(m) {
			c.rollback(ctx)
			return nil, fmt.Errorf("a member of the group failed after writing: %w", errs[i])
		}
	}
	if err := c.commit(ctx); err != nil {
		c.rollback(ctx)
		return nil, err
	}
	return errs, nil
}

// GroupsAtOnce is two: one group fills while the other commits, which
// keeps groups large, and a group waiting for a lock or for the disk does
// not stop every write of the node (measured, 2026-12-02: a 5,000-client
// reconnect storm resumed in 3.8 s with two at once, 6.3 s with one).
func (s *Store) GroupsAtOnce() int { return 2 }

// rollbackTimeout bounds the rollback of a failed transaction.
const rollbackTimeout = 5 * time.Second

// Setting returns the value stored under key.
func (s *Store) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := s.pool.QueryRow(ctx, `SELECT value FROM settings WHERE key = $1`, key).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("get setting %s: %w", key, rooms.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("get setting %s: %w", key, err)
	}
	return v, nil
}

// SetSettingIfAbsent stores value under key unless the key holds a value,
// and returns the value stored.
func (s *Store) SetSettingIfAbsent(ctx context.Context, key, value string) (string, error) {
	// The no-op DO UPDATE makes RETURNING yield the winner's value in one
	// round trip; it waits for a concurrent writer of the key to finish.
	var v string
	err := s.pool.QueryRow(ctx, `INSERT INTO settings (key, value) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET value = settings.value
		RETURNING value`, key, value).Scan(&v)
	if err != nil {
		return "", fmt.Errorf("set setting %s: %w", key, err)
	}
	return v, nil
}

// AuditLog lists audit entries matching f, newest first; at most f.Limit,
// or defaultLimit when it is not set.
func (s *Store) AuditLog(ctx context.Context, f rooms.AuditFilter) ([]rooms.AuditEntry, error) {
	var w where
	if f.ReferralID != "" {
		w.add("referral_id = ?", f.ReferralID)
	}
	if f.ActorID != "" {
		w.add("actor_id = ?", f.ActorID)
	}
	if f.Event != "" {
		w.add("event = ?", f.Event)
	}
	if f.Outcome != "" {
		w.add("outcome = ?", f.Outcome)
	}
	if f.Action != "" {
		w.add("action = ?", string(f.Action))
	}
	if f.Organisation != "" {
		w.addSame(auditOfOrganisation, f.Organisation)
	}
	if !f.From.IsZero() {
		w.add("at >= ?", micro(f.From))
	}
	if !f.To.IsZero() {
		w.add("at < ?", micro(f.To))
	}
	if f.ID != 0 {
		w.add("id = ?", f.ID)
	}
	if f.Before != 0 {
		w.add("id < ?", f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	sql := `SELECT ` + auditColumns + ` FROM audit_entries` + w.sql() +
		fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, limit)
	rows, err := s.pool.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	es, err := pgx.CollectRows(rows, scanAuditEntry)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return es, nil
}

// auditOfOrganisation keeps the entries of an organisation (every ? is
// its ODS code): those whose actor is one of its users, displays or
// integrators (acting as "display:<id>", "integration:<client id>"), and
// those about a referral it receives or refers.
const auditOfOrganisation = `(actor_id IN (SELECT id FROM users WHERE organisation = ?)
	OR actor_id IN (SELECT 'display:' || id FROM displays WHERE organisation = ?)
	OR actor_id IN (SELECT 'integration:' || client_id FROM integrations WHERE organisation = ?)
	OR (referral_id <> '' AND referral_id IN (SELECT id FROM referrals
		WHERE receiving_organisation = ? OR referring_organisation = ?)))`

// AuditHeads returns the head of every audit chain, in chain order.
func (s *Store) AuditHeads(ctx context.Context) ([]rooms.AuditHead, error) {
	rows, err := s.pool.Query(ctx, `SELECT chain, seq, hash FROM audit_chain_heads ORDER BY chain`)
	if err != nil {
		return nil, fmt.Errorf("read audit chain heads: %w", err)
	}
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.AuditHead, error) {
		var h rooms.AuditHead
		err := row.Scan(&h.Chain, &h.Seq, &h.Hash)
		return h, err
	})
	if err != nil {
		return nil, fmt.Errorf("read audit chain heads: %w", err)
	}
	return hs, nil
}

// AuditEntries returns up to limit entries of one chain after position
// afterSeq, in chain order; limit <= 0 means no limit.
func (s *Store) AuditEntries(ctx context.Context, chain int, afterSeq int64, limit int) ([]rooms.AuditEntry, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+auditColumns+` FROM audit_entries
		WHERE chain = $1 AND seq > $2 ORDER BY seq LIMIT $3`, chain, afterSeq, limitArg(limit))
	if err != nil {
		return nil, fmt.Errorf("read audit chain %d: %w", chain, err)
	}
	es, err := pgx.CollectRows(rows, scanAuditEntry)
	if err != nil {
		return nil, fmt.Errorf("read audit chain %d: %w", chain, err)
	}
	return es, nil
}

// defaultLimit caps lists whose filter sets no limit.
const defaultLimit = 500

// limitArg turns "limit <= 0 means none" into SQL's LIMIT NULL.
func limitArg(limit int) *int64 {
	if limit <= 0 {
		return nil
	}
	l := int64(limit)
	return &l
}

// mapErr turns driver errors the domain distinguishes into its sentinels:
// a unique violation becomes rooms.ErrDuplicate and a foreign key naming an
// absent referral becomes rooms.ErrNotFound.
func mapErr(err error, what string) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "23505": // unique_violation
			return fmt.Errorf("%s: %w (%s)", what, rooms.ErrDuplicate, pgErr.ConstraintName)
		case "23503": // foreign_key_violation
			return fmt.Errorf("%s: %w (%s)", what, rooms.ErrNotFound, pgErr.ConstraintName)
		}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// utc normalises a time read from the database, which pgx returns in the
// local zone.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func utcPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC()
	return &u
}

// micro truncates a time to the microsecond precision of timestamptz, so
// what is written is exactly what is read back.
func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond) }

func microPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	m := micro(*t)
	return &m
}

// marshalJSON encodes v for a nullable jsonb column; a nil map stays SQL
// NULL so it reads back as nil.
func marshalJSON(v map[string]any) ([]byte, error) {
	if v == nil {
		return nil, nil
	}
	return json.Marshal(v)
}

// unmarshalJSON decodes a nullable jsonb column into a map.
func unmarshalJSON(b []byte) (map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// marshalOutcomes encodes a referral's outcomes by status for a nullable
// jsonb column; none is NULL.
func marshalOutcomes(o map[rooms.Status]map[string]any) ([]byte, error) {
	if len(o) == 0 {
		return nil, nil
	}
	return json.Marshal(o)
}

// unmarshalOutcomes decodes the outcomes column; NULL and {} are none.
func unmarshalOutcomes(b []byte) (map[rooms.Status]map[string]any, error) {
	if b == nil {
		return nil, nil
	}
	var o map[rooms.Status]map[string]any
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, err
	}
	if len(o) == 0 {
		return nil, nil
	}
	return o, nil
}
