package password

import (
	"container/list"
	"context"
	"errors"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrBusy reports that a hash was refused because as many are running as
// the limiter allows and its queue is full or the wait ran out. Nothing was
// checked; the caller should answer 503 with Retry-After.
var ErrBusy = errors.New("password: too many password hashes in progress")

// Limiter defaults. Each argon2id hash at Default holds 19 MiB for as long
// as it runs; unbounded, 80 concurrent registrations took a node from 64 MB
// to 1.6 GB. A hash is pure CPU, so running more at once than there are
// CPUs finishes none sooner: the extra ones only hold memory.
const (
	// DefaultQueue is how many hashes may wait for a turn. At about 40 ms
	// a hash, two at a time, 64 waiting clear in about 1.4 s.
	DefaultQueue = 64
	// DefaultMaxWait is how long a hash waits for a turn before ErrBusy:
	// past it, a person at a login form is better told to retry.
	DefaultMaxWait = 2 * time.Second
)

// DefaultConcurrency is how many hashes run at once by default: one per CPU
// the Go scheduler uses, at least two (on eight CPUs, 8 × 19 MiB).
func DefaultConcurrency() int { return max(2, runtime.GOMAXPROCS(0)) }

// Limiter bounds how many hashes run at once, so that a burst of logins or
// registrations costs time, not memory. Callers beyond the bound wait their
// turn in arrival order, in a queue of bounded length, for a bounded time.
// It is safe for concurrent use.
type Limiter struct {
	maxRunning int
	maxQueued  int
	maxWait    time.Duration

	mu      sync.Mutex
	running int       // turns held, guarded by mu
	queue   list.List // of chan struct{}, closed to grant a turn; front is next; guarded by mu

	queueFull atomic.Uint64
	timedOut  atomic.Uint64
}

// NewLimiter returns a limiter that runs at most maxConcurrent hashes at
// once and lets at most maxQueued more wait, each for at most maxWait.
// maxConcurrent below one is taken as one; with maxQueued or maxWait zero
// or less, a hash that cannot start at once is refused.
func NewLimiter(maxConcurrent, maxQueued int, maxWait time.Duration) *Limiter {
	return &Limiter{maxRunning: max(1, maxConcurrent), maxQueued: max(0, maxQueued), maxWait: maxWait}
}

// NewDefaultLimiter returns a limiter with DefaultConcurrency,
// DefaultQueue and DefaultMaxWait.
func NewDefaultLimiter() *Limiter {
	return NewLimiter(DefaultConcurrency(), DefaultQueue, DefaultMaxWait)
}

// HashCtx is Hash, run when the limiter gives it a turn. It returns ErrBusy
// or ctx's error when it gets none.
func (l *Limiter) HashCtx(ctx context.Context, pw string) (string, error) {
	var (
		h   string
		err error
	)
	if lerr := l.Do(ctx, func() { h, err = Hash(pw) }); lerr != nil {
		return "", lerr
	}
	return h, err
}

// VerifyCtx is Verify, run when the limiter gives it a turn. It returns
// ErrBusy or ctx's error when it gets none; the password is then neither
// accepted nor refused.
func (l *Limiter) VerifyCtx(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	if lerr := l.Do(ctx, func() { ok, rehash, err = Verify(pw, encoded) }); lerr != nil {
		return false, false, lerr
	}
	return ok, rehash, err
}

// Do runs fn when a turn is free, and returns ErrBusy (queue full, or no
// turn within the limiter's wait) or ctx's error (ctx ended while waiting)
// without running it. A context already ended runs nothing, so a client
// that has gone does not cost a hash.
func (l *Limiter) Do(ctx context.Context, fn func()) error {
	if err := l.acquire(ctx); err != nil {
		return err
	}
	defer l.release()
	fn()
	return nil
}

func (l *Limiter) acquire(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.mu.Lock()
	// Newcomers take a free turn only when nobody is waiting, so the
	// queue is served in order.
	if l.running < l.maxRunning && l.queue.Len() == 0 {
		l.running++
		l.mu.Unlock()
		return nil
	}
	if l.queue.Len() >= l.maxQueued || l.maxWait <= 0 {
		l.mu.Unlock()
		l.queueFull.Add(1)
		return ErrBusy
	}
	turn := make(chan struct{})
	elem := l.queue.PushBack(turn)
	l.mu.Unlock()

	timer := time.NewTimer(l.maxWait)
	defer timer.Stop()
	var err error
	select {
	case <-turn:
		return nil
	case <-ctx.Done():
		err = ctx.Err()
	case <-timer.C:
		l.timedOut.Add(1)
		err = ErrBusy
	}
	l.mu.Lock()
	select {
	case <-turn:
		// The turn was granted as we gave up: pass it on rather than
		// leaving it held by nobody.
		l.mu.Unlock()
		l.release()
	default:
		l.queue.Remove(elem)
		l.mu.Unlock()
	}
	return err
}

// release hands the turn to the first waiter, or frees it.
func (l *Limiter) release() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if front := l.queue.Front(); front != nil {
		l.queue.Remove(front)
		close(front.Value.(chan struct{}))
		return
	}
	l.running--
}

// LimiterStats is a snapshot of a limiter, for metrics.
type LimiterStats struct {
	// Running and Queued are the hashes running and waiting now.
	Running, Queued int
	// QueueFull and TimedOut count the hashes refused with ErrBusy since
	// the limiter was made, by reason: no turn free and no room (or no
	// time) to wait, or the wait ran out.
	QueueFull, TimedOut uint64
}

// Stats returns the limiter's current state and counts.
func (l *Limiter) Stats() LimiterStats {
	l.mu.Lock()
	s := LimiterStats{Running: l.running, Queued: l.queue.Len()}
	l.mu.Unlock()
	s.QueueFull, s.TimedOut = l.queueFull.Load(), l.timedOut.Load()
	return s
}
