package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/rooms"
	"patientpass/rooms/batch"
)

// The reads every request and every connection makes, a session by its
// token and a user by id, are shared by the callers that make them at once
// (package batch): one query for all of them, `WHERE key = ANY($1)`. When
// thousands of clients reconnect together, each would otherwise wait for a
// pool connection and a round trip of its own, behind all the others. A
// read that finds itself alone runs at once, as before.

const (
	// pointReadsAtOnce and maxPointRead bound the shared reads of one kind:
	// how many queries run at once, and the keys one query asks for.
	pointReadsAtOnce = 4
	maxPointRead     = 256
	// pointReadTimeout bounds a shared query. A caller's own context does
	// not: cancelling one must not fail the others.
	pointReadTimeout = 10 * time.Second
)

// pointRead is one caller's read of a row by key, and its outcome.
type pointRead[V any] struct {
	ctx context.Context
	key string
	v   V
	err error
}

// pointReads are a store's shared reads.
type pointReads struct {
	sessions batch.Batcher[*pointRead[rooms.Session]]
	users    batch.Batcher[*pointRead[rooms.User]]
}

func (s *Store) initPointReads() {
	s.reads.sessions = batch.Batcher[*pointRead[rooms.Session]]{Limit: pointReadsAtOnce, Max: maxPointRead,
		Run: runPointReads(s.sessionsByTokenHash, nil,
			func(string) error { return fmt.Errorf("get session by token: %w", rooms.ErrNotFound) })}
	s.reads.users = batch.Batcher[*pointRead[rooms.User]]{Limit: pointReadsAtOnce, Max: maxPointRead,
		Run: runPointReads(s.usersByID, func(u rooms.User) rooms.User {
			u.Roles = slices.Clone(u.Roles) // each caller's own
			return u
		}, func(id string) error { return fmt.Errorf("get user %s: %w", id, rooms.ErrNotFound) })}
}

// runPointReads returns the Run of a batcher of reads: it asks fetch for
// every key at once and gives each caller its row (through own, when the
// row holds what a caller could change), or notFound's error when there is
// none.
func runPointReads[V any](fetch func(ctx context.Context, keys []string) (map[string]V, error),
	own func(V) V, notFound func(key string) error) func([]*pointRead[V]) {
	return func(reads []*pointRead[V]) {
		defer func() {
			if p := recover(); p != nil {
				for _, r := range reads {
					r.err = fmt.Errorf("shared read failed: %v", p)
				}
			}
		}()
		keys := make([]string, 0, len(reads))
		var first context.Context
		for _, r := range reads {
			if r.err = r.ctx.Err(); r.err == nil {
				keys = append(keys, r.key)
				if first == nil {
					first = r.ctx
				}
			}
		}
		if len(keys) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(first), pointReadTimeout)
		defer cancel()
		rows, err := fetch(ctx, slices.Compact(slices.Sorted(slices.Values(keys))))
		for _, r := range reads {
			switch v, ok := rows[r.key]; {
			case r.err != nil:
			case err != nil:
				r.err = err
			case !ok:
				r.err = notFound(r.key)
			case own != nil:
				r.v = own(v)
			default:
				r.v = v
			}
		}
	}
}

// SessionByTokenHash returns the session whose token hashes to tokenHash,
// in a query shared with the callers asking at the same time.
func (s *Store) SessionByTokenHash(ctx context.Context, tokenHash string) (rooms.Session, error) {
	r := &pointRead[rooms.Session]{ctx: ctx, key: tokenHash}
	if err := s.reads.sessions.Do(ctx, r); err != nil {
		return rooms.Session{}, fmt.Errorf("get session by token: %w", err)
	}
	// The hash is not logged, found or not: it is as good as a session id
	// to an attacker reading logs, and means nothing to anyone else.
	return r.v, r.err
}

// User returns the user with id, in a query shared with the callers asking
// at the same time. Inside a transaction, tx's own User reads it.
func (s *Store) User(ctx context.Context, id string) (rooms.User, error) {
	r := &pointRead[rooms.User]{ctx: ctx, key: id}
	if err := s.reads.users.Do(ctx, r); err != nil {
		return rooms.User{}, fmt.Errorf("get user %s: %w", id, err)
	}
	return r.v, r.err
}

func (s *Store) sessionsByTokenHash(ctx context.Context, hashes []string) (map[string]rooms.Session, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+sessionColumns+` FROM sessions WHERE token_hash = ANY($1)`, hashes)
	if err != nil {
		return nil, fmt.Errorf("get sessions by token: %w", err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Session, error) { return scanSession(row) })
	if err != nil {
		return nil, fmt.Errorf("get sessions by token: %w", err)
	}
	m := make(map[string]rooms.Session, len(list))
	for _, x := range list {
		m[x.TokenHash] = x
	}
	return m, nil
}

func (s *Store) usersByID(ctx context.Context, ids []string) (map[string]rooms.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, fmt.Errorf("get %d users: %w", len(ids), err)
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.User, error) { return scanUser(row) })
	if errors.Is(err, pgx.ErrNoRows) {
		err = nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %d users: %w", len(ids), err)
	}
	m := make(map[string]rooms.User, len(list))
	for _, u := range list {
		m[u.ID] = u
	}
	return m, nil
}
