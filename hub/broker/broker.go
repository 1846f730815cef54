// Package broker carries wake-ups between nodes: the interface the real-time
// hub needs, and the in-process broker of a single node. The Redis broker is
// in the redisbroker sub-package, so only it depends on go-redis.
package broker

import (
	"context"
	"errors"
)

// Broker carries wake-ups for topics ("referral:ID", "board:P", "user:ID",
// "system") between nodes. It is never the record: a lost publication is
// repaired from the store by the caller.
type Broker interface {
	// Publish sends payload to every node subscribed to topic (including this one).
	Publish(ctx context.Context, topic string, payload []byte) error
	// PublishAll publishes each message as Publish does, in their order, in
	// one round trip where the broker can, and returns each one's error;
	// nil when every message went.
	PublishAll(ctx context.Context, msgs []Message) []error
	// Subscribe starts delivering topic to this node; call it when the first
	// local subscriber arrives. Idempotent. Once it returns nil, every
	// publication made afterwards is delivered, until Unsubscribe or a
	// connection loss (which ends in Resync); so the caller subscribes
	// before it reads the store. It may wait for the broker's receiving
	// goroutine: do not call it from Deliver, or while holding a lock that
	// Deliver waits for.
	Subscribe(ctx context.Context, topic string) error
	// Unsubscribe stops delivering topic; call it when the last local
	// subscriber leaves.
	Unsubscribe(ctx context.Context, topic string) error
	Ping(ctx context.Context) error
	Close() error
}

// Message is one publication of PublishAll.
type Message struct {
	Topic   string
	Payload []byte
}

// Handler receives what a broker delivers. Deliver is called from the
// broker's single receiving goroutine, in the order the broker received them,
// and must not block for long. Resync is called after the broker has
// (re)established its subscriptions following a connection loss, so the
// caller repairs any gap from the store.
type Handler interface {
	Deliver(topic string, payload []byte)
	Resync()
}

// ErrClosed is returned by a broker's methods after Close.
var ErrClosed = errors.New("broker closed")
