package postgres

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
)

// The scheduler's lock is a session-level advisory lock, held on a
// connection of its own (not one of the pool's, so the pool neither counts
// it nor hands it out): it lasts exactly as long as that connection does,
// so a node that dies gives it up with its connection, and the next node
// to try takes it.
//
// The key is derived from the schema, so installations (and tests) in other
// schemas of one database each have a scheduler.
const (
	tryLockScheduler = `SELECT pg_try_advisory_lock(hashtextextended('patientpass.scheduler.' || current_schema(), 0))`
	unlockScheduler  = `SELECT pg_advisory_unlock(hashtextextended('patientpass.scheduler.' || current_schema(), 0))`
)

// schedulerPingTimeout bounds the check that the lock's connection is
// alive. A holder that cannot confirm it within this stops holding, and
// closes the connection, rather than run on beside a node that may have
// taken over.
const schedulerPingTimeout = 2 * time.Second

// schedulerKeepalive makes the server notice within about 11 seconds
// (idle, then count probes interval apart) that the lock's connection is
// gone when its node's machine dies or is cut off without closing it; the
// operating system's default would hold the lock for two hours. The server
// then ends the session and frees the lock for another node.
var schedulerKeepalive = map[string]string{
	"tcp_keepalives_idle":     "5",
	"tcp_keepalives_interval": "2",
	"tcp_keepalives_count":    "3",
	// Keepalives start only once nothing is in flight: a reply the dead
	// node never acknowledged would be retransmitted for many minutes.
	// This bounds that too (milliseconds).
	"tcp_user_timeout": "10000",
}

// schedulerLock is a Store's hold on the scheduler's advisory lock.
type schedulerLock struct {
	mu sync.Mutex
	// conn is the connection the lock is taken on, kept between tries so
	// that a node waiting for the lock does not connect each time; nil
	// when none is open. Guarded by mu.
	conn *pgx.Conn
	// held is set while conn holds the lock. Guarded by mu.
	held bool
	// closed is set by Store.Close: no connection is opened after it.
	// Guarded by mu.
	closed bool
}

// HoldSchedulerLock takes the scheduler's lock when it is free, or, when
// this store holds it, confirms that its connection is alive, and reports
// whether this store holds it now. A connection that does not answer
// within schedulerPingTimeout is closed, which frees the lock on the
// server, and the lock is reported lost (false, with no error: losing it
// is how the lock works, not a failure).
func (s *Store) HoldSchedulerLock(ctx context.Context) (bool, error) {
	l := &s.sched
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false, errors.New("hold scheduler lock: the store is closed")
	}
	if l.held {
		pctx, cancel := context.WithTimeout(ctx, schedulerPingTimeout)
		err := l.conn.Ping(pctx)
		cancel()
		if err == nil {
			return true, nil
		}
		l.dropLocked(ctx)
		if ctx.Err() != nil {
			return false, fmt.Errorf("confirm scheduler lock: %w", ctx.Err())
		}
		return false, nil
	}
	if l.conn == nil {
		cfg := s.pool.Config().ConnConfig
		for k, v := range schedulerKeepalive {
			if _, set := cfg.RuntimeParams[k]; !set {
				cfg.RuntimeParams[k] = v
			}
		}
		if _, set := cfg.RuntimeParams["application_name"]; !set {
			cfg.RuntimeParams["application_name"] = "patientpass scheduler lock"
		}
		conn, err := pgx.ConnectConfig(ctx, cfg)
		if err != nil {
			return false, fmt.Errorf("take scheduler lock: connect: %w", err)
		}
		l.conn = conn
	}
	var ok bool
	if err := l.conn.QueryRow(ctx, tryLockScheduler).Scan(&ok); err != nil {
		l.dropLocked(ctx)
		return false, fmt.Errorf("take scheduler lock: %w", err)
	}
	l.held = ok
	return ok, nil
}

// ReleaseSchedulerLock gives the lock up, if this store holds it, and
// closes its connection. The lock is given up even when the unlock fails:
// closing the connection frees it on the server, at the latest once the
// server notices the connection is gone.
func (s *Store) ReleaseSchedulerLock(ctx context.Context) error {
	l := &s.sched
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.releaseLocked(ctx)
}

// releaseLocked unlocks, if held, and closes the connection.
func (l *schedulerLock) releaseLocked(ctx context.Context) error {
	if l.conn == nil {
		return nil
	}
	var err error
	if l.held {
		uctx, cancel := context.WithTimeout(ctx, schedulerPingTimeout)
		_, err = l.conn.Exec(uctx, unlockScheduler)
		cancel()
	}
	l.dropLocked(ctx)
	if err != nil {
		return fmt.Errorf("release scheduler lock: %w", err)
	}
	return nil
}

// dropLocked closes the lock's connection, which frees the lock on the
// server if it holds it. The close runs even when ctx is done, but
// bounded.
func (l *schedulerLock) dropLocked(ctx context.Context) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), rollbackTimeout)
	defer cancel()
	_ = l.conn.Close(cctx)
	l.conn, l.held = nil, false
}

// close releases the lock for Store.Close and keeps it from being taken
// again.
func (l *schedulerLock) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.closed = true
	return l.releaseLocked(context.Background())
}
