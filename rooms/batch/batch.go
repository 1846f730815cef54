// Package batch runs work that arrives together as one batch: commands that
// share a transaction (group commit), reads that share a query.
//
// Batches form from what is waiting, never by waiting for a batch to fill:
// an item that finds no batch running starts one at once, holding only
// itself (no added latency at low load); one that finds a batch running
// waits, and the next batch to start takes it with everything else
// waiting, up to Max. A further batch, up to Limit at once, starts beside
// the running ones only once Spill items wait: a batch's fixed cost (a
// transaction's commit) is paid by fewer, larger batches until one at a
// time cannot keep up. There is no goroutine of the batcher's own: the
// caller that starts a batch runs it, and when it is done hands the lead to
// the first caller still waiting, if any.
package batch

import (
	"context"
	"slices"
	"sync"
)

// Batcher runs items in batches. The zero value is not usable: set Limit,
// Max and Run.
type Batcher[T any] struct {
	// Limit is how many batches may run at once (at least one).
	Limit int
	// Max bounds a batch's items (at least one).
	Max int
	// Spill is how many items must wait (counting the one arriving) for a
	// batch to start while another runs; at most one means at once.
	Spill int
	// Run runs a batch, on the goroutine of the caller that leads it. It
	// must leave each item's outcome in the item itself, even when it
	// panics (the panic then goes on in the leading caller).
	Run func(items []T)

	mu      sync.Mutex
	waiting []*entry[T]
	active  int // batches running now
}

type entry[T any] struct {
	item T
	// next receives true when the caller is to lead the next batch (of
	// which its item is the first), false once its item's batch has run.
	next chan bool
}

// Do runs item in a batch and returns nil once that batch has run. When
// ctx ends while the item is still waiting for a batch, it leaves the queue
// and Do returns ctx's error: the item did not run. Once in a batch it runs
// to the end, whatever ctx does.
func (b *Batcher[T]) Do(ctx context.Context, item T) error {
	e := &entry[T]{item: item, next: make(chan bool, 1)}
	b.mu.Lock()
	if b.active == 0 || b.active < b.Limit && len(b.waiting)+1 >= b.Spill {
		b.active++
		b.mu.Unlock()
		b.lead(e, true)
		return nil
	}
	b.waiting = append(b.waiting, e)
	b.mu.Unlock()
	select {
	case lead := <-e.next:
		if lead {
			b.lead(e, false)
		}
		return nil
	case <-ctx.Done():
	}
	b.mu.Lock()
	if i := slices.Index(b.waiting, e); i >= 0 {
		b.waiting = slices.Delete(b.waiting, i, i+1)
		b.mu.Unlock()
		return ctx.Err()
	}
	b.mu.Unlock()
	// Taken into a batch, or handed the lead, as ctx ended.
	if <-e.next {
		b.lead(e, false)
	}
	return nil
}

// Waiting is how many items wait for a batch now.
func (b *Batcher[T]) Waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiting)
}

// lead runs one batch, of leader and what is waiting, in the order they
// came (leader last when it has just arrived, first when it was handed the
// lead), then passes the lead on (handOff). An item is led at most once: it
// leaves waiting when it is taken into a batch, handed the lead, or given
// up.
func (b *Batcher[T]) lead(leader *entry[T], arrived bool) {
	b.mu.Lock()
	n := min(len(b.waiting), max(b.Max, 1)-1)
	others := slices.Clone(b.waiting[:n])
	b.waiting = b.pop(n)
	b.mu.Unlock()

	items := make([]T, 0, n+1)
	if !arrived {
		items = append(items, leader.item)
	}
	for _, e := range others {
		items = append(items, e.item)
	}
	if arrived {
		items = append(items, leader.item)
	}
	// Even when Run panics, the batch's callers are let go and the lead is
	// passed on: a panic must not stop every later batch.
	defer b.handOff(others)
	b.Run(items)
}

// handOff tells the callers of a batch that it has run, then passes the
// lead on: to the first item still waiting, or back to the free leads.
func (b *Batcher[T]) handOff(done []*entry[T]) {
	for _, e := range done {
		e.next <- false
	}
	b.mu.Lock()
	if len(b.waiting) == 0 {
		b.active--
		b.mu.Unlock()
		return
	}
	next := b.waiting[0]
	b.waiting = b.pop(1)
	b.mu.Unlock()
	next.next <- true
}

// running is how many batches run now.
func (b *Batcher[T]) running() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.active
}

// pop returns waiting without its first n entries, in place. Called under
// mu.
func (b *Batcher[T]) pop(n int) []*entry[T] {
	rest := copy(b.waiting, b.waiting[n:])
	clear(b.waiting[rest:])
	return b.waiting[:rest]
}
