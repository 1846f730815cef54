package rooms

import (
	"context"
	"sync"
	"time"
)

// Group commit. Commands that arrive together share one transaction and one
// commit (Store.InTxGroup), each keeping its own outcome: a command refused
// inside the group is refused alone, and the others commit. Nothing is
// answered before the group's commit.
//
// Groups form from what is waiting, never by waiting for a group to fill:
// a command that finds fewer than committers groups running starts one at
// once, holding only itself (no added latency at low load); one that finds
// them all running waits, and the next group to start takes it with
// everything else waiting. There is no goroutine of the committer's own:
// the caller that starts a group runs it, and when it is done it hands the
// lead to the first caller still waiting, if any.

const (
	// maxGroup bounds a group: its transaction holds the locks of every
	// referral in it until the commit.
	maxGroup = 64
	// groupTimeout bounds a group's transaction once it has started. A
	// member's own context does not: cancelling one caller must not fail
	// the others, and a command runs to its end once started.
	groupTimeout = 30 * time.Second
)

// groupJob is one transaction body waiting for, or in, a group.
type groupJob struct {
	ctx context.Context
	// lock is the referral the body locks (LockReferral), empty for none:
	// the group locks them all up front, in one order.
	lock string
	fn   func(ctx context.Context, tx Tx) error
	// done receives the body's outcome, or leads when the caller is to run
	// the next group.
	done chan groupResult
}

type groupResult struct {
	err error
	// lead hands the caller the next group to run, of which it is the
	// first job.
	lead bool
	// alone asks the caller to run its body in a transaction of its own:
	// its group failed as a whole, and nothing of it was committed.
	alone bool
}

// committer forms the groups of one Service.
type committer struct {
	store Store
	// limit is how many groups may run at once.
	limit int

	mu      sync.Mutex
	waiting []*groupJob
	running int

	// Counted under mu, for GroupStats.
	groups, members, alone int64
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
	return GroupStats{Groups: g.groups, Members: g.members, Alone: g.alone, Waiting: len(g.waiting)}
}

// inTx runs fn in a group transaction and returns its outcome once the
// group has committed (or fn's error, which undid only fn). lock is the
// referral fn locks, if any.
func (s *Service) inTx(ctx context.Context, lock string, fn func(ctx context.Context, tx Tx) error) error {
	g := s.group
	j := &groupJob{ctx: ctx, lock: lock, fn: fn, done: make(chan groupResult, 1)}
	g.mu.Lock()
	lead := g.running < g.limit
	if lead {
		g.running++
	} else {
		g.waiting = append(g.waiting, j)
	}
	g.mu.Unlock()
	if lead {
		g.lead(j)
	}
	for {
		res := <-j.done
		switch {
		case res.lead:
			g.lead(j)
			continue
		case res.alone:
			return s.store.InTx(ctx, func(tx Tx) error { return fn(ctx, tx) })
		}
		return res.err
	}
}

// lead runs one group, of first and what is waiting after it, on the
// caller's goroutine, and then passes the lead on: to the first job still
// waiting, or back to the pool of free leads. A job is led at most once: it
// leaves waiting when it is taken into a group or handed the lead.
func (g *committer) lead(first *groupJob) {
	g.mu.Lock()
	n := min(len(g.waiting), maxGroup-1)
	jobs := make([]*groupJob, 0, n+1)
	for _, j := range append([]*groupJob{first}, g.waiting[:n]...) {
		if j.ctx.Err() != nil {
			// Given up before it started: nothing of it runs.
			j.done <- groupResult{err: j.ctx.Err()}
			continue
		}
		jobs = append(jobs, j)
	}
	rest := copy(g.waiting, g.waiting[n:])
	clear(g.waiting[rest:])
	g.waiting = g.waiting[:rest]
	g.mu.Unlock()

	if len(jobs) > 0 {
		g.run(jobs)
	}

	g.mu.Lock()
	if len(g.waiting) == 0 {
		g.running--
		g.mu.Unlock()
		return
	}
	next := g.waiting[0]
	rest = copy(g.waiting, g.waiting[1:])
	g.waiting[rest] = nil
	g.waiting = g.waiting[:rest]
	g.mu.Unlock()
	next.done <- groupResult{lead: true}
}

// run commits jobs as one group and tells each its outcome.
func (g *committer) run(jobs []*groupJob) {
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
	errs, err := g.store.InTxGroup(ctx, lock, fns)
	g.mu.Lock()
	g.groups++
	g.members += int64(len(jobs))
	if err != nil {
		g.alone += int64(len(jobs))
	}
	g.mu.Unlock()
	for i, j := range jobs {
		if err != nil {
			j.done <- groupResult{alone: true}
			continue
		}
		j.done <- groupResult{err: errs[i]}
	}
}
