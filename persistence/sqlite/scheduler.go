package sqlite

import (
	"context"
	"errors"
	"sync"
)

// The embedded store is one process's: the scheduler's lock is a registry
// in that process, keyed by the database file, so that of the stores open
// on one file only one runs the scheduler at a time. The first to ask holds
// it until it releases it or closes; another store on the file then gets
// it on its next try. A second process on the file has a registry of its
// own: the lock does not reach it (reminders stay single all the same, as
// each is a stored event with its own key).
var schedulerLocks = struct {
	mu sync.Mutex
	// holders maps a database file's key (see Store.fileKey) to the store
	// holding its lock. Guarded by mu.
	holders map[string]*Store
}{holders: map[string]*Store{}}

// errStoreClosed is returned by the scheduler's lock once the store is
// closed.
var errStoreClosed = errors.New("the store is closed")

// HoldSchedulerLock takes the scheduler's lock when no other store on the
// database file holds it, and reports whether this store holds it now.
func (s *Store) HoldSchedulerLock(ctx context.Context) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	schedulerLocks.mu.Lock()
	defer schedulerLocks.mu.Unlock()
	if s.closed {
		return false, errStoreClosed
	}
	switch holder := schedulerLocks.holders[s.fileKey]; holder {
	case s:
		return true, nil
	case nil:
		schedulerLocks.holders[s.fileKey] = s
		return true, nil
	default:
		return false, nil
	}
}

// ReleaseSchedulerLock gives the lock up, if this store holds it.
func (s *Store) ReleaseSchedulerLock(context.Context) error {
	schedulerLocks.mu.Lock()
	defer schedulerLocks.mu.Unlock()
	s.releaseSchedulerLockLocked()
	return nil
}

// releaseSchedulerLockLocked gives the lock up, if this store holds it;
// schedulerLocks.mu must be held.
func (s *Store) releaseSchedulerLockLocked() {
	if schedulerLocks.holders[s.fileKey] == s {
		delete(schedulerLocks.holders, s.fileKey)
	}
}

// closeSchedulerLock gives the lock up for Close and keeps it from being
// taken again.
func (s *Store) closeSchedulerLock() {
	schedulerLocks.mu.Lock()
	defer schedulerLocks.mu.Unlock()
	s.closed = true
	s.releaseSchedulerLockLocked()
}
