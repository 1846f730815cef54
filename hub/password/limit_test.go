package password

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor polls l until cond holds of its stats; the goroutines it waits
// for have no other way to say they are queued.
func waitFor(t *testing.T, l *Limiter, what string, cond func(LimiterStats) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond(l.Stats()) {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: stats %+v", what, l.Stats())
		}
		time.Sleep(time.Millisecond)
	}
}

// hold takes l's only turn until the returned function is called.
func hold(t *testing.T, l *Limiter) (release func()) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	finished := make(chan error, 1)
	go func() {
		finished <- l.Do(context.Background(), func() { close(started); <-done })
	}()
	<-started
	return func() {
		close(done)
		if err := <-finished; err != nil {
			t.Errorf("holding a turn: %v", err)
		}
	}
}

// within fails the test when ch yields nothing in a generous time: the
// calls it waits for would otherwise wait an hour.
func within[T any](t *testing.T, what string, ch <-chan T) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		panic("unreachable")
	}
}

func TestLimiterRunsAtMostItsLimitAtOnce(t *testing.T) {
	const limit, callers = 2, 20
	l := NewLimiter(limit, DefaultQueue, time.Hour)
	var (
		running, peak, ran atomic.Int32
		gate               = make(chan struct{})
		wg                 sync.WaitGroup
	)
	for range callers {
		wg.Go(func() {
			err := l.Do(context.Background(), func() {
				n := running.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				<-gate
				running.Add(-1)
				ran.Add(1)
			})
			if err != nil {
				t.Errorf("Do: %v", err)
			}
		})
	}
	// Every caller is either running (blocked on the gate) or queued: had
	// the limiter let a third in, it would be running now.
	waitFor(t, l, "every caller to run or queue", func(s LimiterStats) bool { return s.Running+s.Queued == callers })
	if s := l.Stats(); s.Running != limit || running.Load() != limit {
		t.Errorf("with every caller in: %d turns held, %d functions running; want %d", s.Running, running.Load(), limit)
	}
	close(gate)
	wg.Wait()
	if p := peak.Load(); p != limit {
		t.Errorf("at most %d ran at once, want %d", p, limit)
	}
	if n := ran.Load(); n != callers {
		t.Errorf("%d of %d callers ran", n, callers)
	}
	if s := l.Stats(); s != (LimiterStats{}) {
		t.Errorf("after every caller: %+v, want all zero", s)
	}
}

func TestLimiterServesWaitersInArrivalOrder(t *testing.T) {
	l := NewLimiter(1, DefaultQueue, time.Hour)
	release := hold(t, l)
	const waiters = 8
	var (
		mu    sync.Mutex
		order []int
		wg    sync.WaitGroup
	)
	for i := range waiters {
		wg.Go(func() {
			if err := l.Do(context.Background(), func() { mu.Lock(); order = append(order, i); mu.Unlock() }); err != nil {
				t.Errorf("Do: %v", err)
			}
		})
		waitFor(t, l, "the waiter to queue", func(s LimiterStats) bool { return s.Queued == i+1 })
	}
	release()
	wg.Wait()
	for i, got := range order {
		if got != i {
			t.Fatalf("waiters ran in the order %v, want arrival order", order)
		}
	}
}

func TestLimiterRefusesAWaiterPastItsDeadline(t *testing.T) {
	l := NewLimiter(1, DefaultQueue, 20*time.Millisecond)
	release := hold(t, l)
	defer release()
	ran := false
	err := l.Do(context.Background(), func() { ran = true })
	if !errors.Is(err, ErrBusy) || ran {
		t.Errorf("Do past its wait: %v, ran %v; want ErrBusy, not run", err, ran)
	}
	if s := l.Stats(); s.TimedOut != 1 || s.Queued != 0 || s.Running != 1 {
		t.Errorf("stats %+v; want one timed out, none queued, one running", s)
	}
}

func TestLimiterReturnsWhenTheContextEnds(t *testing.T) {
	l := NewLimiter(1, DefaultQueue, time.Hour)
	release := hold(t, l)
	defer release()

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Do(ctx, func() { t.Error("ran after its context was cancelled") }) }()
	waitFor(t, l, "the waiter to queue", func(s LimiterStats) bool { return s.Queued == 1 })
	cancel()
	if err := within(t, "Do with a cancelled context", done); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with a cancelled context: %v, want context.Canceled", err)
	}
	if s := l.Stats(); s.Queued != 0 {
		t.Errorf("a cancelled waiter is still queued: %+v", s)
	}

	// A context already ended costs no turn, even when one is free.
	free := NewLimiter(1, DefaultQueue, time.Hour)
	if err := free.Do(ctx, func() { t.Error("ran with an ended context") }); !errors.Is(err, context.Canceled) {
		t.Errorf("Do with an ended context: %v, want context.Canceled", err)
	}
}

func TestLimiterRefusesAtOnceWhenTheQueueIsFull(t *testing.T) {
	const queue = 2
	l := NewLimiter(1, queue, time.Hour)
	release := hold(t, l)
	var wg sync.WaitGroup
	for i := range queue {
		wg.Go(func() {
			if err := l.Do(context.Background(), func() {}); err != nil {
				t.Errorf("queued Do: %v", err)
			}
		})
		waitFor(t, l, "the waiter to queue", func(s LimiterStats) bool { return s.Queued == i+1 })
	}
	done := make(chan error, 1)
	go func() { done <- l.Do(context.Background(), func() { t.Error("ran past a full queue") }) }()
	if err := within(t, "Do on a full queue", done); !errors.Is(err, ErrBusy) {
		t.Errorf("Do on a full queue: %v, want ErrBusy", err)
	}
	if s := l.Stats(); s.QueueFull != 1 || s.Queued != queue {
		t.Errorf("stats %+v; want one refused for a full queue, %d queued", s, queue)
	}
	release()
	wg.Wait()
}

func TestLimiterHashesAndVerifies(t *testing.T) {
	l := NewLimiter(1, 0, 0)
	ctx := context.Background()
	h, err := l.HashCtx(ctx, "correct horse battery staple")
	if err != nil {
		t.Fatalf("HashCtx: %v", err)
	}
	if ok, rehash, err := l.VerifyCtx(ctx, "correct horse battery staple", h); !ok || rehash || err != nil {
		t.Errorf("VerifyCtx(right) = %v, %v, %v; want true, false, nil", ok, rehash, err)
	}
	if ok, _, err := l.VerifyCtx(ctx, "wrong", h); ok || err != nil {
		t.Errorf("VerifyCtx(wrong) = %v, %v; want false, nil", ok, err)
	}
	release := hold(t, l)
	defer release()
	if _, err := l.HashCtx(ctx, "x"); !errors.Is(err, ErrBusy) {
		t.Errorf("HashCtx with no turn free: %v, want ErrBusy", err)
	}
	if ok, _, err := l.VerifyCtx(ctx, "correct horse battery staple", h); ok || !errors.Is(err, ErrBusy) {
		t.Errorf("VerifyCtx with no turn free: %v, %v; want false, ErrBusy", ok, err)
	}
}
