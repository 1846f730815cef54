package batch

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
)

type item struct {
	n    int
	runs int // set by Run
}

// Every item runs exactly once, before Do returns; no batch holds more than
// Max; no more than Limit run at once.
func TestEveryItemRunsOnceInBoundedBatches(t *testing.T) {
	const callers, each, limit, maxItems = 40, 50, 3, 8
	var (
		running, peak atomic.Int64
		mu            sync.Mutex
		biggest       int // under mu
	)
	b := &Batcher[*item]{Limit: limit, Max: maxItems, Run: func(items []*item) {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		mu.Lock()
		biggest = max(biggest, len(items))
		mu.Unlock()
		for _, it := range items {
			it.runs++
		}
		running.Add(-1)
	}}
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for i := range each {
				it := &item{n: c*each + i}
				_ = b.Do(context.Background(), it)
				if it.runs != 1 {
					t.Errorf("item %d ran %d times by the time Do returned; want once", it.n, it.runs)
				}
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > limit {
		t.Errorf("%d batches ran at once; want at most %d", p, limit)
	}
	if n := biggest; n > maxItems {
		t.Errorf("a batch of %d items; want at most %d", n, maxItems)
	}
	if w := b.Waiting(); w != 0 {
		t.Errorf("%d items still waiting", w)
	}
}

// Items that arrive while every batch is running wait, and the batches
// after share them: with Limit batches held, the rest queue, and once they
// are let go the waiting items go in batches of up to Max.
func TestWaitingItemsShareTheNextBatches(t *testing.T) {
	const limit, maxItems, items = 2, 5, 22
	gate := make(chan struct{})
	var (
		mu    sync.Mutex
		sizes []int
	)
	b := &Batcher[*item]{Limit: limit, Max: maxItems, Run: func(batch []*item) {
		<-gate
		mu.Lock()
		sizes = append(sizes, len(batch))
		mu.Unlock()
	}}
	var wg sync.WaitGroup
	for i := range items {
		wg.Go(func() { _ = b.Do(context.Background(), &item{n: i}) })
	}
	for b.Waiting() < items-limit {
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	total := 0
	for _, n := range sizes {
		total += n
		if n > maxItems {
			t.Errorf("a batch of %d; want at most %d", n, maxItems)
		}
	}
	// The held batches of one each, then the waiting items in full
	// batches, but for the last of each of the limit leads that run side
	// by side.
	if bound := limit + (items-limit)/maxItems + limit; total != items || len(sizes) > bound || !slices.Contains(sizes, maxItems) {
		t.Errorf("batches of %v for %d items; want %d of one, then the rest in batches of %d, at most %d in all", sizes, items, limit, maxItems, bound)
	}
}

// An item whose caller gives up while it waits leaves the queue without
// running; the others run.
func TestGivenUpItemLeavesTheQueue(t *testing.T) {
	gate := make(chan struct{})
	var ran sync.Map
	b := &Batcher[*item]{Limit: 1, Max: 8, Run: func(batch []*item) {
		<-gate
		for _, it := range batch {
			ran.Store(it.n, true)
		}
	}}
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Do(context.Background(), &item{n: 0}) }) // held at the gate
	for b.running() == 0 {
		runtime.Gosched()
	}
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	wg.Go(func() { errc <- b.Do(ctx, &item{n: 1}) })
	wg.Go(func() { _ = b.Do(context.Background(), &item{n: 2}) })
	for b.Waiting() < 2 {
		runtime.Gosched()
	}
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Errorf("given-up item: %v; want the context's error", err)
	}
	close(gate)
	wg.Wait()
	if _, ok := ran.Load(1); ok {
		t.Error("the given-up item ran")
	}
	if _, ok := ran.Load(2); !ok {
		t.Error("the item queued after it did not run")
	}
}

// A Run that panics lets its batch's other callers go and passes the lead
// on: later items still run.
func TestPanickingBatchDoesNotStopLaterOnes(t *testing.T) {
	gate := make(chan struct{})
	var calls atomic.Int64
	b := &Batcher[*item]{Limit: 1, Max: 8, Run: func(batch []*item) {
		if calls.Add(1) == 1 {
			<-gate
		}
		for _, it := range batch {
			it.runs++
			if it.n == 1 {
				panic("boom")
			}
		}
	}}
	var wg sync.WaitGroup
	wg.Go(func() { _ = b.Do(context.Background(), &item{n: 0}) })
	for b.running() == 0 {
		runtime.Gosched()
	}
	var panicked atomic.Bool
	for _, n := range []int{1, 2} {
		wg.Go(func() {
			defer func() {
				if recover() != nil {
					panicked.Store(true)
				}
			}()
			_ = b.Do(context.Background(), &item{n: n})
		})
	}
	for b.Waiting() < 2 {
		runtime.Gosched()
	}
	close(gate)
	wg.Wait()
	if !panicked.Load() {
		t.Fatal("the panic did not reach the leading caller")
	}
	later := &item{n: 3}
	done := make(chan struct{})
	go func() { _ = b.Do(context.Background(), later); close(done) }()
	<-done
	if later.runs != 1 {
		t.Errorf("an item after the panic ran %d times; want once", later.runs)
	}
}

// While a batch runs, arriving items wait for it rather than start a
// batch beside it, until Spill of them wait: then the one that makes Spill
// starts a batch of them all, in the order they came.
func TestSecondBatchStartsOnlyOnceSpillItemsWait(t *testing.T) {
	const spill = 4
	gate := make(chan struct{})
	ran := make(chan []int, 4)
	b := &Batcher[*item]{Limit: 2, Max: 10, Spill: spill, Run: func(batch []*item) {
		if batch[0].n == 0 {
			<-gate
		}
		ns := make([]int, len(batch))
		for i, it := range batch {
			ns[i] = it.n
		}
		ran <- ns
	}}
	var wg sync.WaitGroup
	do := func(n int) { wg.Go(func() { _ = b.Do(context.Background(), &item{n: n}) }) }
	do(0)
	for b.running() < 1 {
		runtime.Gosched()
	}
	for n := 1; n < spill; n++ {
		do(n)
		for b.Waiting() < n {
			runtime.Gosched()
		}
	}
	if r := b.running(); r != 1 {
		t.Fatalf("%d batches running with %d items waiting; want 1 until %d wait", r, spill-1, spill)
	}
	do(spill)
	if got, want := <-ran, []int{1, 2, 3, 4}; !slices.Equal(got, want) {
		t.Errorf("the batch beside the held one ran items %v; want %v", got, want)
	}
	close(gate)
	if got := <-ran; !slices.Equal(got, []int{0}) {
		t.Errorf("the held batch ran items %v; want [0]", got)
	}
	wg.Wait()
}
