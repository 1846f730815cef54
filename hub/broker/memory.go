package broker

import (
	"context"
	"sync"
	"sync/atomic"
)

// memoryQueueSize bounds the publications waiting for the handler. It is
// large enough that a handler which keeps up never loses one, and small
// enough that a stalled handler costs little memory. Publish never waits for
// room (see Memory).
const memoryQueueSize = 4096

// Memory is the broker of a single node: publications go to this
// process's handler only.
//
// It delivers the way the Redis broker does, so the hub sees one behaviour
// whichever broker it runs on: Publish only enqueues, and one goroutine owned
// by the broker calls the handler, in publication order. Publish therefore
// never runs the handler on the publisher's goroutine (which would make
// Deliver concurrent and let a slow handler stall the write path, or deadlock
// a handler that publishes). The queue is bounded: when it is full the
// publication is dropped and, once the handler has caught up with what was
// queued, it is told to Resync, just as a Redis subscriber that falls too
// far behind is disconnected and resyncs.
type Memory struct {
	h Handler

	// queue carries publications to deliverLoop. It is never closed:
	// deliverLoop ends through ctx.
	queue chan memoryPublication
	// overflowed is set by Publish when it dropped a publication and cleared
	// by deliverLoop when it calls Resync.
	overflowed atomic.Bool

	cancel context.CancelFunc
	done   chan struct{} // closed when deliverLoop has returned

	mu     sync.RWMutex
	topics map[string]struct{} // guarded by mu
	closed bool                // guarded by mu
}

type memoryPublication struct {
	topic   string
	payload []byte
}

var _ Broker = (*Memory)(nil)

// NewMemory returns a running in-process broker that delivers to h.
// Close stops it.
func NewMemory(h Handler) *Memory {
	ctx, cancel := context.WithCancel(context.Background())
	b := &Memory{
		h:      h,
		queue:  make(chan memoryPublication, memoryQueueSize),
		cancel: cancel,
		done:   make(chan struct{}),
		topics: make(map[string]struct{}),
	}
	go b.deliverLoop(ctx)
	return b
}

// Publish queues payload for the handler if topic is subscribed, and returns
// without waiting for it to be delivered. The payload is shared, not copied
// (a publication is encoded once and its bytes handed to every receiver), so
// the caller must not change it afterwards.
func (b *Memory) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	if _, ok := b.topics[topic]; !ok {
		return nil // like Redis: nobody subscribed, nobody receives it
	}
	select {
	case b.queue <- memoryPublication{topic: topic, payload: payload}:
	default:
		// The queue holds memoryQueueSize publications, so deliverLoop has
		// at least one more to take and will see the flag after it.
		b.overflowed.Store(true)
	}
	return nil
}

// PublishAll publishes each message in turn: the queue is in-process.
func (b *Memory) PublishAll(ctx context.Context, msgs []Message) []error {
	var errs []error
	for i, m := range msgs {
		if err := b.Publish(ctx, m.Topic, m.Payload); err != nil {
			if errs == nil {
				errs = make([]error, len(msgs))
			}
			errs[i] = err
		}
	}
	return errs
}

// Subscribe starts delivering topic. Idempotent.
func (b *Memory) Subscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	b.topics[topic] = struct{}{}
	return nil
}

// Unsubscribe stops delivering topic, including publications already queued.
func (b *Memory) Unsubscribe(ctx context.Context, topic string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return ErrClosed
	}
	delete(b.topics, topic)
	return nil
}

// Ping reports whether the broker is open.
func (b *Memory) Ping(ctx context.Context) error {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.closed {
		return ErrClosed
	}
	return nil
}

// Close stops delivery and waits for the delivering goroutine to return.
// Publications still queued are dropped. Closing twice is harmless.
func (b *Memory) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	<-b.done
	return nil
}

// deliverLoop is the broker's single receiving goroutine, owned by the
// broker: NewMemory starts it and Close waits for it.
func (b *Memory) deliverLoop(ctx context.Context) {
	defer close(b.done)
	for {
		select {
		case <-ctx.Done():
			return
		case p := <-b.queue:
			if b.subscribed(p.topic) {
				b.h.Deliver(p.topic, p.payload)
			}
			if b.overflowed.CompareAndSwap(true, false) {
				b.h.Resync()
			}
		}
	}
}

func (b *Memory) subscribed(topic string) bool {
	b.mu.RLock()
	defer b.mu.RUnlock()
	_, ok := b.topics[topic]
	return ok
}
