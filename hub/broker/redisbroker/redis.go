// Package redisbroker is the broker of many nodes: publications travel
// through Redis pub/sub. It alone imports go-redis in the server.
package redisbroker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"patientpass/hub/broker"
)

const (
	// redisIdleCheck is how long the receive loop waits for traffic before it
	// pings the subscription connection. A connection that died without a
	// reset (a host or network gone) would otherwise go unnoticed until TCP
	// gives up, many minutes later, and every wake-up meanwhile is lost.
	redisIdleCheck = 5 * time.Second
	// redisPongTimeout is how long that ping may go unanswered before the
	// connection is taken for dead and replaced.
	redisPongTimeout = 5 * time.Second
	// redisRetryMin and redisRetryMax bound the pause between attempts to
	// reconnect while Redis does not answer, so an outage is not a busy loop
	// and recovery is noticed within a couple of seconds.
	redisRetryMin = 50 * time.Millisecond
	redisRetryMax = 2 * time.Second
	// redisSubscribeTimeout bounds how long Subscribe waits for Redis to
	// confirm when the caller's context sets no earlier deadline.
	redisSubscribeTimeout = 10 * time.Second
)

// Broker fans publications out across nodes through Redis pub/sub.
// Each topic is the Redis channel prefix+topic.
//
// One PubSub connection carries every subscribed topic. It belongs to its own
// redis.Client, built from the caller's options but with a client name of
// its own (ClientName), so the connection can be told apart in CLIENT LIST.
// Publish and Ping use the caller's client.
//
// go-redis replaces a failed PubSub connection and re-sends SUBSCRIBE for
// every channel on the new one. The receive loop notices that (a receive
// error, or a subscribe confirmation it did not ask for on a fresh
// connection) and calls the handler's Resync once the new connection's
// subscriptions are in place: the server confirms a SUBSCRIBE only after
// subscribing to all of its channels, so anything published after the first
// confirmation is delivered, and anything earlier is in the store.
type Broker struct {
	rdb      *redis.Client // publishes and pings; owned by the caller
	psClient *redis.Client // dials the subscription connection; owned by the broker
	// ps is read only by receiveLoop. Subscribe and Unsubscribe write
	// commands to it from callers' goroutines, which go-redis allows while a
	// Receive is in progress.
	ps     *redis.PubSub
	prefix string
	name   string
	h      broker.Handler
	log    zerolog.Logger

	cancel context.CancelFunc // ends receiveLoop
	done   chan struct{}      // closed when receiveLoop has returned

	// subMu serialises Subscribe and Unsubscribe, so that topics and the
	// PubSub's own channel set change together. It is held across the
	// round trip to Redis; mu never is.
	subMu sync.Mutex

	mu sync.Mutex
	// topics are the subscribed topics: only these are delivered. Guarded by mu.
	topics map[string]struct{}
	// pending holds, by channel, the Subscribe call waiting for its
	// confirmation (Subscribe calls are serialised, so there is at most one);
	// receiveLoop closes it. Any other confirmation comes from a
	// resubscription. Guarded by mu.
	pending map[string]chan struct{}
	closed  bool // guarded by mu

}

var _ broker.Broker = (*Broker)(nil)

// New returns a running broker that publishes through rdb and
// delivers to h what arrives on the channels prefix+topic. The prefix lets
// deployments and tests share one Redis. rdb stays the caller's to close,
// after the broker.
//
// It does not fail when Redis does not answer: a node must be able to start
// and report itself unready (Ping) while Redis is away. ctx bounds only the
// first connection attempt; the broker keeps retrying in the background
// until Close, and calls h.Resync once connected again.
func New(ctx context.Context, rdb *redis.Client, prefix string, h broker.Handler, log zerolog.Logger) (*Broker, error) {
	if rdb == nil || h == nil {
		return nil, errors.New("new redis broker: a Redis client and a handler are required")
	}
	id, err := randomBrokerID()
	if err != nil {
		return nil, fmt.Errorf("new redis broker: %w", err)
	}
	// The caller's options say how to reach Redis. What a client builds for
	// itself from them (its push-notification processor, which NewClient
	// writes back into the options) or what serves only commands (caching,
	// auto-pipelining, idle connections) is not shared with this one.
	opts := *rdb.Options()
	if opts.MaintNotificationsConfig != nil {
		c := *opts.MaintNotificationsConfig
		opts.MaintNotificationsConfig = &c
	}
	opts.PushNotificationProcessor = nil
	opts.ClientSideCacheConfig, opts.ClientSideCache = nil, nil
	opts.AutoPipelineOptions = nil
	opts.MinIdleConns = 0
	base := opts.ClientName
	if base == "" {
		base = "patientpass"
	}
	opts.ClientName = redisClientName(base + ":broker:" + strings.TrimSuffix(prefix, ":") + ":" + id)
	psClient := redis.NewClient(&opts)

	loopCtx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		rdb:      rdb,
		psClient: psClient,
		ps:       psClient.Subscribe(ctx), // no channels yet: nothing is sent
		prefix:   prefix,
		name:     opts.ClientName,
		h:        h,
		log:      log.With().Str("component", "broker").Logger(),
		cancel:   cancel,
		done:     make(chan struct{}),
		topics:   make(map[string]struct{}),
		pending:  make(map[string]chan struct{}),
	}
	// Open the connection now, so it exists (and is named) before the first
	// Subscribe. A failure is left to receiveLoop, which reports and retries.
	_ = b.ps.Ping(ctx)
	go b.receiveLoop(loopCtx)
	return b, nil
}

// ClientName returns the name of the broker's subscription connection, as
// CLIENT LIST shows it. It is unique to this broker.
func (b *Broker) ClientName() string { return b.name }

// Publish sends payload to every node subscribed to topic, this one included.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if err := b.rdb.Publish(ctx, b.prefix+topic, payload).Err(); err != nil {
		return fmt.Errorf("publish to %s: %w", topic, err)
	}
	return nil
}

// PublishAll sends msgs in one pipeline: one round trip, and Redis runs
// them in order. Each message gets its own outcome.
func (b *Broker) PublishAll(ctx context.Context, msgs []broker.Message) []error {
	if b.isClosed() {
		errs := make([]error, len(msgs))
		for i := range errs {
			errs[i] = broker.ErrClosed
		}
		return errs
	}
	if len(msgs) == 1 {
		if err := b.Publish(ctx, msgs[0].Topic, msgs[0].Payload); err != nil {
			return []error{err}
		}
		return nil
	}
	cmds, err := b.rdb.Pipelined(ctx, func(pipe redis.Pipeliner) error {
		for _, m := range msgs {
			pipe.Publish(ctx, b.prefix+m.Topic, m.Payload)
		}
		return nil
	})
	if err == nil {
		return nil
	}
	errs := make([]error, len(msgs))
	for i, m := range msgs {
		cerr := err
		if i < len(cmds) {
			cerr = cmds[i].Err()
		}
		if cerr != nil {
			errs[i] = fmt.Errorf("publish to %s: %w", m.Topic, cerr)
		}
	}
	return errs
}

// Subscribe starts delivering topic to this node. Idempotent. It returns
// once Redis has confirmed the subscription, so every publication made after
// it returns is delivered. The confirmation is read by the receiving
// goroutine: do not call Subscribe from Deliver, or while holding a lock that
// Deliver waits for. When it returns an error the topic is not subscribed,
// and calling it again retries.
func (b *Broker) Subscribe(ctx context.Context, topic string) error {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, redisSubscribeTimeout)
	defer cancel()
	channel := b.prefix + topic

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	if _, ok := b.topics[topic]; ok {
		b.mu.Unlock()
		return nil
	}
	// Mark it before the command goes out: the confirmation, and the first
	// messages, may be received before PubSub.Subscribe returns.
	confirmed := make(chan struct{})
	b.topics[topic] = struct{}{}
	b.pending[channel] = confirmed
	b.mu.Unlock()

	err := b.ps.Subscribe(ctx, channel)
	if err == nil {
		select {
		case <-confirmed:
			return nil
		case <-ctx.Done():
			err = fmt.Errorf("wait for confirmation: %w", ctx.Err())
		case <-b.done:
			err = broker.ErrClosed
		}
	}
	// go-redis keeps the channel in its own set even when the command failed,
	// to subscribe it on whatever connection comes next (or, if it reconnected
	// inside this call, on none). Take it out of that set too, so a failure
	// leaves nothing behind and a retry sends SUBSCRIBE again.
	cleanupCtx, cancelCleanup := context.WithTimeout(context.WithoutCancel(ctx), redisPongTimeout)
	_ = b.ps.Unsubscribe(cleanupCtx, channel)
	cancelCleanup()
	b.mu.Lock()
	delete(b.topics, topic)
	if b.pending[channel] == confirmed {
		delete(b.pending, channel)
	}
	b.mu.Unlock()
	return fmt.Errorf("subscribe to %s: %w", topic, err)
}

// Unsubscribe stops delivering topic to this node. Publications for it that
// are already on their way are dropped.
func (b *Broker) Unsubscribe(ctx context.Context, topic string) error {
	b.subMu.Lock()
	defer b.subMu.Unlock()
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return broker.ErrClosed
	}
	if _, ok := b.topics[topic]; !ok {
		b.mu.Unlock()
		return nil
	}
	delete(b.topics, topic)
	b.mu.Unlock()

	// go-redis forgets the channel before it sends UNSUBSCRIBE, and a failed
	// command replaces the connection with one that was never subscribed to
	// it; so even on error the topic is no longer subscribed, and there is
	// nothing for the caller to do.
	if err := b.ps.Unsubscribe(ctx, b.prefix+topic); err != nil {
		b.log.Debug().Err(err).Str("topic", topic).Msg("unsubscribe failed; the connection is being replaced without it")
	}
	return nil
}

// Ping reports whether Redis answers.
func (b *Broker) Ping(ctx context.Context) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if err := b.rdb.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("ping redis: %w", err)
	}
	return nil
}

// Close stops receiving, waits for the receiving goroutine to return and
// closes the subscription connection. It leaves the caller's client open.
// Closing twice is harmless.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()

	b.cancel()
	// Closing the PubSub closes its connection, which ends a Receive that is
	// blocked reading (the context alone does not).
	psErr := b.ps.Close()
	<-b.done
	if err := errors.Join(psErr, b.psClient.Close()); err != nil {
		return fmt.Errorf("close redis broker: %w", err)
	}
	return nil
}

// receiveLoop is the broker's single receiving goroutine, owned by the
// broker: New starts it and Close waits for it. It alone reads
// from ps, and it is what drives go-redis to reconnect: each Receive on a
// PubSub without a connection dials one and resubscribes.
func (b *Broker) receiveLoop(ctx context.Context) {
	defer close(b.done)
	var (
		lost        bool // the connection failed, and nothing has been received since
		failures    int  // consecutive receive errors
		pingPending bool // a health-check ping is out and nothing has been received since
	)
	for {
		var msg any
		var err error
		if pingPending {
			// A read that outlives its context is, to go-redis, a dead
			// connection: it closes it, and the next Receive reconnects.
			rctx, cancel := context.WithTimeout(ctx, redisPongTimeout)
			msg, err = b.ps.Receive(rctx)
			cancel()
		} else {
			// A read that outlives this timeout leaves the connection be.
			// (Should it cut a reply in half, the next read fails to
			// parse, which replaces the connection and ends in Resync.)
			msg, err = b.ps.ReceiveTimeout(ctx, redisIdleCheck)
		}
		if ctx.Err() != nil {
			return
		}
		if err != nil && !pingPending && isNetTimeout(err) {
			// Quiet for a while: ask for a pong to prove the connection
			// still works. A failed ping has already replaced it.
			if err = b.ps.Ping(ctx); err == nil {
				pingPending = true
				continue
			}
		}
		if err != nil {
			pingPending = false
			failures++
			if !lost {
				lost = true
				b.log.Warn().Err(err).Msg("redis subscription connection lost; reconnecting")
			} else {
				b.log.Debug().Err(err).Int("attempt", failures).Msg("redis subscription still reconnecting")
			}
			// The first failure after go-redis replaced the connection is
			// retried at once: the new connection is most likely ready.
			if failures > 1 && !sleepContext(ctx, retryDelay(failures)) {
				return
			}
			continue
		}
		pingPending = false
		failures = 0

		resync := lost
		switch m := msg.(type) {
		case *redis.Message:
			b.deliver(m)
		case *redis.Subscription:
			// The first confirmation on a new connection (Count 1) that no
			// Subscribe call of ours asked for is go-redis resubscribing,
			// which can happen without this loop seeing an error (the
			// connection replaced by a failed Subscribe or ping).
			if m.Kind == "subscribe" && !b.confirm(m.Channel) && m.Count == 1 {
				resync = true
			}
		case *redis.Pong:
		}
		if resync {
			lost = false
			b.log.Warn().Int("topics", b.topicCount()).Msg("redis subscriptions re-established; resyncing from the store")
			b.h.Resync()
		}
	}
}

// deliver hands a message for a subscribed topic to the handler.
func (b *Broker) deliver(m *redis.Message) {
	topic, ok := strings.CutPrefix(m.Channel, b.prefix)
	if !ok {
		return
	}
	b.mu.Lock()
	_, subscribed := b.topics[topic]
	b.mu.Unlock()
	if subscribed {
		b.h.Deliver(topic, []byte(m.Payload))
	}
}

// confirm reports whether a subscribe confirmation for channel answers a
// Subscribe call of ours, and if so releases that call.
func (b *Broker) confirm(channel string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	confirmed, ok := b.pending[channel]
	if ok {
		close(confirmed)
		delete(b.pending, channel)
	}
	return ok
}

func (b *Broker) topicCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.topics)
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// retryDelay doubles from redisRetryMin with each consecutive failure, up to
// redisRetryMax.
func retryDelay(failures int) time.Duration {
	d := redisRetryMin
	for i := 2; i < failures && d < redisRetryMax; i++ {
		d *= 2
	}
	return min(d, redisRetryMax)
}

// sleepContext waits for d, and reports false if ctx ended first.
func sleepContext(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func isNetTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// redisClientName makes s acceptable to CLIENT SETNAME, which refuses spaces
// and anything outside printable ASCII.
func redisClientName(s string) string {
	return strings.Map(func(r rune) rune {
		if r < '!' || r > '~' {
			return '_'
		}
		return r
	}, s)
}

func randomBrokerID() (string, error) {
	var p [4]byte
	if _, err := rand.Read(p[:]); err != nil {
		return "", fmt.Errorf("random broker id: %w", err)
	}
	return hex.EncodeToString(p[:]), nil
}

// NewClient connects to the Redis of a redis:// URL, naming the connection
// name in CLIENT LIST. The caller closes it after the broker.
func NewClient(url, name string) (*redis.Client, error) {
	opts, err := redis.ParseURL(url)
	if err != nil {
		return nil, err
	}
	opts.ClientName = name
	return redis.NewClient(opts), nil
}
