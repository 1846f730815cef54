package hub

import (
	"context"
	"encoding/json"
	"errors"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/wire"
	"patientpass/rooms"
)

// RealtimeConfig tunes the WebSocket hub. Zero values take the defaults.
type RealtimeConfig struct {
	// Node names this process in broker messages. A random suffix is
	// always added, so two processes given the same name (two nodes on one
	// host) still tell their messages apart.
	Node string
	// SendQueue is how many frames may wait for a connection's writer
	// before the connection is closed with 4008 (default 1024).
	SendQueue int
	// WriteTimeout bounds every write to a socket (default 10s).
	WriteTimeout time.Duration
	// PingInterval is how often an idle connection is pinged; a ping
	// unanswered for another PingInterval closes it (default 25s).
	PingInterval time.Duration
	// RepairGrace is how long a gap in a referral's events may wait for the
	// missing publication before it is read from the store (default 10ms):
	// concurrent commits publish out of order, and the missing event is
	// usually a moment behind.
	RepairGrace time.Duration
	// SweepInterval is how often every topic is compared with the store, to
	// repair a lost publication that no later event revealed (default 30s).
	SweepInterval time.Duration
}

func (c *RealtimeConfig) defaults() {
	c.Node += "~" + rooms.NewID()[:8]
	if c.SendQueue <= 0 {
		c.SendQueue = 1024
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.RepairGrace <= 0 {
		c.RepairGrace = 10 * time.Millisecond
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = 30 * time.Second
	}
}

const (
	// sessionsTopic carries session ends to every node.
	sessionsTopic = "sessions"
	// topicLinger is how long a topic without subscribers is kept (and
	// listened to on the broker), so a client that reconnects finds it warm.
	topicLinger = 30 * time.Second
	// presenceHeartbeat is how often a node re-announces who is in each of
	// its rooms; presenceTTL is how long an announcement counts, so a node
	// that dies drops out of presence within it.
	presenceHeartbeat = 10 * time.Second
	presenceTTL       = 3 * presenceHeartbeat
	// publishers is how many goroutines publish to the broker; a topic
	// always goes through the same one, so its publications keep their order.
	publishers     = 4
	publishBacklog = 4096
	// brokerOpTimeout bounds one broker call made by the hub's loop.
	brokerOpTimeout = 2 * time.Second
)

// envelope is what the hub sends through the broker. The broker is only a
// wake-up: an event envelope lets other nodes deliver without reading the
// store, and one that is lost is repaired from it.
type envelope struct {
	Kind string `json:"k"` // "event", "presence", "typing", "end"
	Node string `json:"n"`
	// Event is the committed event (kind event).
	Event *rooms.Event `json:"e,omitempty"`
	// Users is who is in the room on Node (kind presence), and Query asks
	// the other nodes to announce theirs.
	Users []wire.Person `json:"u,omitempty"`
	Query bool          `json:"q,omitempty"`
	// User is who is typing (kind typing).
	User *wire.Person `json:"p,omitempty"`
	// SessionID or UserID names the sessions that ended (kind end).
	SessionID string `json:"s,omitempty"`
	UserID    string `json:"i,omitempty"`
}

// realtime is the hub of WebSocket connections on one node: it holds the
// topics local clients subscribe to, delivers each referral's events in seq
// order without gaps, and talks to other nodes through the broker.
type realtime struct {
	svc   *rooms.Service
	store rooms.Store
	clock rooms.Clock
	// sessions reads and touches the sessions of connections.
	sessions *sessionManager
	log      zerolog.Logger
	cfg      RealtimeConfig
	broker   Broker
	m        *metrics

	mu      sync.Mutex
	topics  map[string]*topic
	conns   map[*conn]struct{}
	closing bool

	// repMu guards republish: publications that failed, by topic, to
	// retry. It is taken under topic locks, so it is a lock of its own.
	repMu     sync.Mutex
	republish map[string][]byte

	pubQ    [publishers]chan publication
	kick    chan struct{}
	done    chan struct{}
	loops   sync.WaitGroup
	connsWG sync.WaitGroup
}

type publication struct {
	topic   string
	payload []byte
}

// newRealtime starts a hub; newBroker builds its broker with the hub as the
// handler (nil: the in-process broker).
func newRealtime(svc *rooms.Service, sessions *sessionManager, log zerolog.Logger, cfg RealtimeConfig, newBroker func(BrokerHandler) (Broker, error)) (*realtime, error) {
	cfg.defaults()
	h := &realtime{
		svc: svc, store: svc.Store(), clock: svc.Clock(), sessions: sessions, log: log, cfg: cfg, m: &metrics{},
		topics: map[string]*topic{}, conns: map[*conn]struct{}{}, republish: map[string][]byte{},
		kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if newBroker == nil {
		newBroker = func(bh BrokerHandler) (Broker, error) { return NewMemoryBroker(bh), nil }
	}
	b, err := newBroker(h)
	if err != nil {
		return nil, err
	}
	h.broker = b
	for i := range h.pubQ {
		h.pubQ[i] = make(chan publication, publishBacklog)
		h.loops.Go(func() { h.publishLoop(h.pubQ[i]) })
	}
	h.loops.Go(h.loop)
	h.wake() // subscribe to session ends now, not on the first tick
	return h, nil
}

// Publish is the service's publisher: it delivers a committed event to this
// node's subscribers at once and wakes the other nodes through the broker,
// without waiting for it.
func (h *realtime) Publish(ctx context.Context, e rooms.Event) {
	name := wire.ReferralTopic(e.ReferralID)
	if t := h.lookup(name); t != nil {
		t.offer(e)
	}
	h.publish(name, envelope{Kind: "event", Event: &e})
}

// publish hands env to the publisher goroutine of its topic. A full backlog
// is remembered for the loop to retry, as a failed publication is.
func (h *realtime) publish(topicName string, env envelope) {
	env.Node = h.cfg.Node
	payload, err := json.Marshal(env)
	if err != nil {
		h.log.Error().Err(err).Str("kind", env.Kind).Msg("encode broker envelope")
		return
	}
	sum := fnv.New32a()
	_, _ = sum.Write([]byte(topicName))
	select {
	case h.pubQ[sum.Sum32()%publishers] <- publication{topic: topicName, payload: payload}:
	default:
		h.publishFailed(topicName, payload)
	}
}

func (h *realtime) publishLoop(q chan publication) {
	for {
		select {
		case p := <-q:
			ctx, cancel := context.WithTimeout(context.Background(), brokerOpTimeout)
			err := h.broker.Publish(ctx, p.topic, p.payload)
			cancel()
			if err != nil {
				h.publishFailed(p.topic, p.payload)
			}
		case <-h.done:
			return
		}
	}
}

// publishFailed keeps the newest failed event publication of a topic for
// the loop to send again: other nodes repair everything before it from the
// store once it arrives. Ephemeral publications are not retried.
func (h *realtime) publishFailed(topicName string, payload []byte) {
	h.m.publishFailures.Add(1)
	if !strings.HasPrefix(topicName, "referral:") && topicName != sessionsTopic {
		return
	}
	h.repMu.Lock()
	h.republish[topicName] = payload
	h.repMu.Unlock()
}

// Deliver receives the broker's messages. The hub's own are skipped: it
// delivered them locally when it published them.
func (h *realtime) Deliver(topicName string, payload []byte) {
	var env envelope
	if err := json.Unmarshal(payload, &env); err != nil {
		h.log.Warn().Err(err).Msg("unreadable broker message")
		return
	}
	if env.Node == h.cfg.Node {
		return
	}
	if env.Kind == "end" {
		h.endLocal(env.SessionID, env.UserID)
		return
	}
	t := h.lookup(topicName)
	if t == nil {
		return
	}
	switch env.Kind {
	case "event":
		if env.Event != nil {
			t.offer(*env.Event)
		}
	case "presence":
		t.remotePresence(env.Node, env.Users, env.Query)
	case "typing":
		if env.User != nil {
			t.typing(*env.User, nil)
		}
	}
}

// Resync is called after the broker reconnected: whatever was published
// meanwhile is read from the store, presence is announced again, and every
// connection's session is checked, since a session end may have been
// missed.
func (h *realtime) Resync() {
	for _, t := range h.topicList() {
		t.rejoin()
	}
	h.mu.Lock()
	conns := make([]*conn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	go func() {
		// A few at a time: a broker blip must not flood the store.
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for _, c := range conns {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				c.checkSession()
			})
		}
		wg.Wait()
	}()
}

func (h *realtime) lookup(name string) *topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.topics[name]
}

func (h *realtime) topicList() []*topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := make([]*topic, 0, len(h.topics))
	for _, t := range h.topics {
		list = append(list, t)
	}
	return list
}

// wake asks the loop to reconcile broker subscriptions now.
func (h *realtime) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// loop owns the broker subscriptions: it alone subscribes and unsubscribes,
// so the two never race for a topic. It also retries failed publications,
// re-announces presence and sweeps topics for lost publications.
func (h *realtime) loop() {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	subscribed := map[string]bool{}
	lastHeartbeat, lastSweep := time.Now(), time.Now()
	for {
		select {
		case <-h.kick:
		case <-tick.C:
		case <-h.done:
			return
		}
		h.reconcile(subscribed)
		h.retryPublications()
		now := time.Now()
		if now.Sub(lastHeartbeat) >= presenceHeartbeat {
			lastHeartbeat = now
			for _, t := range h.topicList() {
				t.announce()
				t.expirePresence(now)
			}
		}
		if now.Sub(lastSweep) >= h.cfg.SweepInterval {
			lastSweep = now
			for _, t := range h.topicList() {
				t.repair()
			}
		}
	}
}

// reconcile makes the broker subscriptions match the topics held, forgetting
// topics idle for longer than topicLinger. A topic newly subscribed is
// repaired from the store, for what was published before the broker
// listened, and announces its presence asking the others for theirs.
func (h *realtime) reconcile(subscribed map[string]bool) {
	now := time.Now()
	h.mu.Lock()
	want := map[string]*topic{sessionsTopic: nil}
	for name, t := range h.topics {
		if t.inUse(now) {
			want[name] = t
			continue
		}
		delete(h.topics, name)
		h.m.topics.Add(-1)
	}
	h.mu.Unlock()
	for name := range subscribed {
		if _, ok := want[name]; !ok {
			ctx, cancel := context.WithTimeout(context.Background(), brokerOpTimeout)
			_ = h.broker.Unsubscribe(ctx, name)
			cancel()
			delete(subscribed, name)
		}
	}
	for name, t := range want {
		if subscribed[name] {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), brokerOpTimeout)
		err := h.broker.Subscribe(ctx, name)
		cancel()
		if err != nil {
			// The broker is down; the next tick tries again, and Resync
			// repairs once it is back.
			h.log.Debug().Err(err).Str("topic", name).Msg("broker subscribe failed; retrying")
			return
		}
		subscribed[name] = true
		if t != nil {
			t.rejoin()
		}
	}
}

func (h *realtime) retryPublications() {
	h.repMu.Lock()
	pending := h.republish
	h.republish = map[string][]byte{}
	h.repMu.Unlock()
	for name, payload := range pending {
		ctx, cancel := context.WithTimeout(context.Background(), brokerOpTimeout)
		err := h.broker.Publish(ctx, name, payload)
		cancel()
		if err != nil {
			h.repMu.Lock()
			if _, newer := h.republish[name]; !newer {
				h.republish[name] = payload
			}
			h.repMu.Unlock()
		}
	}
}

// EndSessions closes, on every node, the sockets of a session (sessionID)
// or of every session of a user (userID) with 4001.
func (h *realtime) EndSessions(sessionID, userID string) {
	h.endLocal(sessionID, userID)
	h.publish(sessionsTopic, envelope{Kind: "end", SessionID: sessionID, UserID: userID})
}

func (h *realtime) endLocal(sessionID, userID string) {
	h.mu.Lock()
	var ending []*conn
	for c := range h.conns {
		if (sessionID != "" && c.sessionID() == sessionID) || (userID != "" && c.caller.User.ID == userID) {
			ending = append(ending, c)
		}
	}
	h.mu.Unlock()
	for _, c := range ending {
		c.closeWith(wire.CloseSessionEnded, "session ended")
	}
}

// register adds a connection; false when the hub is shutting down.
func (h *realtime) register(c *conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.conns[c] = struct{}{}
	h.connsWG.Add(1)
	h.m.connections.Add(1)
	return true
}

func (h *realtime) unregister(c *conn) {
	h.mu.Lock()
	delete(h.conns, c)
	h.mu.Unlock()
	h.m.connections.Add(-1)
	h.connsWG.Done()
}

// accepting reports whether new connections are taken.
func (h *realtime) accepting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closing
}

// join subscribes c to a referral's topic, creating the topic when c is its
// first subscriber here. The subscription starts replaying after after.
func (h *realtime) join(c *conn, name, referralID string, after int64) (*topic, *subscription) {
	h.mu.Lock()
	defer h.mu.Unlock()
	t, ok := h.topics[name]
	if !ok {
		t = newTopic(h, name, referralID)
		h.topics[name] = t
		h.m.topics.Add(1)
		h.wake()
	}
	return t, t.add(c, after)
}

// Shutdown closes every connection with 1001 after its queued frames are
// written, waits for them (until ctx ends), then stops the hub and closes
// the broker.
func (h *realtime) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil
	}
	h.closing = true
	for c := range h.conns {
		c.closeWith(wire.CloseGoingAway, "server shutting down")
	}
	h.mu.Unlock()
	drained := make(chan struct{})
	go func() {
		h.connsWG.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = errors.New("connections still open at shutdown deadline")
		h.mu.Lock()
		for c := range h.conns {
			c.abort()
		}
		h.mu.Unlock()
	}
	close(h.done)
	h.loops.Wait()
	return errors.Join(err, h.broker.Close())
}
