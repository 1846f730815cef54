package batch

import (
	"sync"
	"sync/atomic"
	"testing"
)

type item struct {
	n    int
	runs int // set by Run
}

// Every item runs exactly once, before Do returns; no batch holds more than
// Max; no more than Limit run at once; and under load items share batches.
func TestEveryItemRunsOnceInBoundedBatches(t *testing.T) {
	const callers, each, limit, maxItems = 40, 50, 3, 8
	var (
		running, peak, batches, biggest atomic.Int64
		mu                              sync.Mutex
	)
	b := &Batcher[*item]{Limit: limit, Max: maxItems, Run: func(items []*item) {
		r := running.Add(1)
		for {
			p := peak.Load()
			if r <= p || peak.CompareAndSwap(p, r) {
				break
			}
		}
		batches.Add(1)
		if n := int64(len(items)); n > biggest.Load() {
			mu.Lock()
			biggest.Store(max(biggest.Load(), n))
			mu.Unlock()
		}
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
				b.Do(it)
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
	if n := biggest.Load(); n > maxItems {
		t.Errorf("a batch of %d items; want at most %d", n, maxItems)
	}
	if n := batches.Load(); n >= callers*each {
		t.Errorf("%d batches for %d items from %d callers at once: none shared", n, callers*each, callers)
	}
	if w := b.Waiting(); w != 0 {
		t.Errorf("%d items still waiting", w)
	}
}
