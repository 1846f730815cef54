package rooms

import (
	"context"
	"errors"
	"sync"
	"time"

	"patientpass/rooms/batch"
)

// Group commit. Commands and audit entries that arrive together share one
// transaction and one commit (Store.InTxGroup), each keeping its own
// outcome: a command refused inside the group is refused alone, and the
// others commit. Nothing is answered before the group's commit. Groups
// form from what is waiting (package batch): no added latency at low load,
// up to Store.GroupsAtOnce groups at once (of commands, a further one only
// once spill of them wait).

const (
	// maxGroup bounds a group: its transaction holds the locks of every
	// referral in it until the commit.
	maxGroup = 64
	// groupTimeout bounds a group's transaction once it has started. A
	// member's own context does not: cancelling one caller must not fail
	// the others, and a command runs to its end once started.
	groupTimeout = 30 * time.Second
	// spill is how many commands must wait before a second group of them
	// starts beside a running one. One group at a time pays a commit per
	// group for more members in each; a second at once only once the queue
	// shows one cannot keep up. Measured at 2,000 posts/s (5,000 clients,
	// 500 rooms, one node): 0.58 ms of server CPU per post and p50 4.4-4.9
	// ms, against 0.66 ms and 5.6-6.1 ms with a second group at once.
	spill = 16
)

// groupJob is one transaction body waiting for, or in, a group.
type groupJob struct {
	ctx context.Context
	// lock is the referral the body locks (LockReferral), empty for none:
	// the group locks them all up front, in one order.
	lock string
	fn   func(ctx context.Context, tx Tx) error
	// err is the body's outcome once its group has run; alone asks the
	// caller to run the body in a transaction of its own, its group having
	// failed as a whole with nothing of it committed.
	err   error
	alone bool
}

// committer forms the groups of one Service: those of commands, which lock
// a referral each, apart from those of bodies that lock none (audit
// entries, read markers), so that a group waiting for a referral's lock
// never holds up a login's audit entry.
type committer struct {
	store             Store
	locking, lockless batch.Batcher[*groupJob]

	mu sync.Mutex
	// Counted under mu, for GroupStats.
	groups, members, alone int64
}

func newCommitter(store Store) *committer {
	g := &committer{store: store}
	g.locking = batch.Batcher[*groupJob]{Limit: store.GroupsAtOnce(), Max: maxGroup, Spill: spill, Run: g.run}
	g.lockless = batch.Batcher[*groupJob]{Limit: store.GroupsAtOnce(), Max: maxGroup, Run: g.run}
	return g
}

// GroupStats counts the groups run so far: groups, the commands and audit
// entries they held, and those run alone because their group failed; and
// the bodies waiting for a group now.
type GroupStats struct {
	Groups, Members, Alone int64
	Waiting                int
}

// GroupStats returns the service's group commit counts.
func (s *Service) GroupStats() GroupStats {
	g := s.group
	g.mu.Lock()
	defer g.mu.Unlock()
	return GroupStats{Groups: g.groups, Members: g.members, Alone: g.alone, Waiting: g.locking.Waiting() + g.lockless.Waiting()}
}

// inTx runs fn in a group transaction and returns its outcome once the
// group has committed (or fn's error, which undid only fn). lock is the
// referral fn locks, if any. fn runs on whichever caller leads the group,
// and must not itself call inTx (or Audit): it could wait for a group that
// waits for it.
func (s *Service) inTx(ctx context.Context, lock string, fn func(ctx context.Context, tx Tx) error) error {
	j := &groupJob{ctx: ctx, lock: lock, fn: fn}
	b := &s.group.lockless
	if lock != "" {
		b = &s.group.locking
	}
	if err := b.Do(ctx, j); err != nil {
		return err // given up while waiting: nothing of it ran
	}
	if j.alone {
		// Bounded as a group is: a referral's stamp commits within
		// groupTimeout (ChangeSettle).
		ctx, cancel := context.WithTimeout(ctx, groupTimeout)
		defer cancel()
		return s.store.InTx(ctx, func(tx Tx) error { return fn(ctx, tx) })
	}
	return j.err
}

// run commits jobs as one group and leaves each its outcome. A job whose
// caller gave up before the group started gets its context's error, and
// nothing of it runs. When the group fails as a whole before its commit,
// each member runs again alone; when its commit's outcome is unknown, each
// gets that error.
func (g *committer) run(all []*groupJob) {
	jobs := make([]*groupJob, 0, len(all))
	for _, j := range all {
		if j.err = j.ctx.Err(); j.err == nil {
			jobs = append(jobs, j)
		}
	}
	if len(jobs) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(jobs[0].ctx), groupTimeout)
	defer cancel()
	var lock []string
	fns := make([]func(Tx) error, len(jobs))
	for i, j := range jobs {
		if j.lock != "" {
			lock = append(lock, j.lock)
		}
		fns[i] = func(tx Tx) error { return j.fn(ctx, tx) }
	}
	defer func() {
		// A body that panicked took its group down before the commit, so
		// the store rolled it back: every member runs again alone, where
		// the one at fault panics on its own caller's goroutine.
		if p := recover(); p != nil {
			for _, j := range jobs {
				j.err, j.alone = nil, true
			}
			g.count(len(jobs), true)
		}
	}()
	errs, err := g.store.InTxGroup(ctx, lock, fns)
	g.count(len(jobs), err != nil && !errors.Is(err, ErrCommitUncertain))
	for i, j := range jobs {
		switch {
		case errors.Is(err, ErrCommitUncertain):
			// Perhaps committed: running the members again could record
			// their audit entries twice. A command's caller then looks
			// for its recorded result (execute).
			j.err = err
		case err != nil:
			j.alone = true
		default:
			j.err = errs[i]
		}
	}
}

// count counts a group of n members, run again alone when alone is set.
func (g *committer) count(n int, alone bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.groups++
	g.members += int64(n)
	if alone {
		g.alone += int64(n)
	}
}
