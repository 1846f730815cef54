// Package batch runs work that arrives together as one batch: commands that
// share a transaction (group commit), reads that share a query.
//
// Batches form from what is waiting, never by waiting for a batch to fill:
// an item that finds fewer than Limit batches running starts one at once,
// holding only itself (no added latency at low load); one that finds them
// all running waits, and the next batch to start takes it with everything
// else waiting, up to Max. There is no goroutine of the batcher's own: the
// caller that starts a batch runs it, and when it is done hands the lead to
// the first caller still waiting, if any.
package batch

import "sync"

// Batcher runs items in batches. The zero value is not usable: set Limit,
// Max and Run.
type Batcher[T any] struct {
	// Limit is how many batches may run at once (at least one).
	Limit int
	// Max bounds a batch's items (at least one).
	Max int
	// Run runs a batch, on the goroutine of the caller that leads it. It
	// must leave each item's outcome in the item itself.
	Run func(items []T)

	mu      sync.Mutex
	waiting []*entry[T]
	running int
}

type entry[T any] struct {
	item T
	// next receives true when the caller is to lead the next batch (of
	// which its item is the first), false once its item's batch has run.
	next chan bool
}

// Do runs item in a batch and returns once that batch has run.
func (b *Batcher[T]) Do(item T) {
	e := &entry[T]{item: item, next: make(chan bool, 1)}
	b.mu.Lock()
	if b.running < max(b.Limit, 1) {
		b.running++
		b.mu.Unlock()
		b.lead(e)
		return
	}
	b.waiting = append(b.waiting, e)
	b.mu.Unlock()
	if <-e.next {
		b.lead(e)
	}
}

// Waiting is how many items wait for a batch now.
func (b *Batcher[T]) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting)
}

// lead runs one batch, of first and what is waiting after it, then passes
// the lead on: to the first item still waiting, or back to the free leads.
// An item is led at most once: it leaves waiting when it is taken into a
// batch or handed the lead.
func (b *Batcher[T]) lead(first *entry[T]) {
	b.mu.Lock()
	n := min(len(b.waiting), max(b.Max, 1)-1)
	entries := make([]*entry[T], 0, n+1)
	entries = append(append(entries, first), b.waiting[:n]...)
	b.waiting = b.pop(n)
	b.mu.Unlock()

	items := make([]T, len(entries))
	for i, e := range entries {
		items[i] = e.item
	}
	b.Run(items)
	for _, e := range entries[1:] {
		e.next <- false
	}

	b.mu.Lock()
	if len(b.waiting) == 0 {
		b.running--
		b.mu.Unlock()
		return
	}
	next := b.waiting[0]
	b.waiting = b.pop(1)
	b.mu.Unlock()
	next.next <- true
}

// pop returns waiting without its first n entries, in place. Called under
// mu.
func (b *Batcher[T]) pop(n int) []*entry[T] {
	rest := copy(b.waiting, b.waiting[n:])
	clear(b.waiting[rest:])
	return b.waiting[:rest]
}
