// Package realtime is the hub of one node's WebSocket subscribers: the
// topics they subscribe to, through the Feed seam; ordered, gap-free
// delivery of each referral's events with repair from the store; presence
// and typing; snapshot topics; and the wake-ups exchanged with other nodes
// through the broker. It never touches a socket: connections are
// Subscribers, handed in by the transport.
package realtime

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/broker"
	"patientpass/hub/metrics"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// Config tunes the hub. Zero values take the defaults.
type Config struct {
	// Node names this process in broker messages. A random suffix is
	// always added, so two processes given the same name (two nodes on one
	// host) still tell their messages apart.
	Node string
	// RepairGrace is how long a gap in a referral's events may wait for the
	// missing publication before it is read from the store (default 10ms):
	// concurrent commits publish out of order, and the missing event is
	// usually a moment behind.
	RepairGrace time.Duration
	// SweepInterval is how often every topic is compared with the store, to
	// repair a lost publication that no later event revealed (default 30s).
	SweepInterval time.Duration
}

func (c *Config) defaults() {
	if len(c.Node) > 200 {
		c.Node = c.Node[:200] // the envelope gives the name one byte of length
	}
	c.Node += "~" + rooms.NewID()[:8]
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
	publishers = 4
	// maxPublishBatch bounds the publications one loop sends in a round
	// trip.
	maxPublishBatch = 128
	publishBacklog  = 4096
	// brokerOpTimeout bounds one broker call made by the hub's loop.
	brokerOpTimeout = 2 * time.Second
	// maxFailedEnds bounds the session ends kept for retry while the broker
	// does not take them.
	maxFailedEnds = 1024
	// resyncChecks bounds the session checks run at once after a broker
	// reconnection, so a broker blip does not flood the store.
	resyncChecks = 8
)

// Subscriber is one connection as the hub sees it. The transport (package
// ws) implements it.
type Subscriber interface {
	// Caller is who is connected.
	Caller() rooms.Caller
	// SessionID names the session the connection belongs to.
	SessionID() string
	// Send queues f without ever blocking: a subscriber that cannot take it
	// closes itself as too slow (4008) and resumes after reconnecting. It
	// reports whether f was queued.
	Send(f Frame) bool
	// SendWait queues f of a replay the subscriber asked for, waiting for
	// room; it fails when the connection closes or ctx ends.
	SendWait(ctx context.Context, f Frame) error
	// Close closes the connection with d once its writer gets to it.
	Close(d Disconnect)
	// Abort drops the connection at once (the shutdown deadline passed).
	Abort()
	// CheckSession reads the session again and closes the connection with
	// 4001 when it has ended.
	CheckSession()
}

// Hub is the real-time hub of one node. It is the service's Publisher.
type Hub struct {
	log    zerolog.Logger
	cfg    Config
	broker broker.Broker
	m      *metrics.Metrics

	// feeds are fixed before the hub is used (AddFeed).
	feeds      map[string]Feed
	eventFeeds []EventFeed

	mu      sync.Mutex
	topics  map[string]topic              // guarded by mu
	subs    map[Subscriber]struct{}       // guarded by mu
	bySess  map[string]map[Subscriber]int // guarded by mu: connections per session
	closing bool                          // guarded by mu

	// repMu guards republish, the newest failed event publication of each
	// topic (the store repairs everything before it), and ends, every
	// failed session end in order (each names other sessions, so none may
	// stand in for another). It is taken under topic locks, so it is a
	// lock of its own.
	repMu     sync.Mutex
	republish map[string][]byte
	ends      [][]byte

	pubQ  [publishers]chan publication
	kick  chan struct{}
	done  chan struct{}
	loops sync.WaitGroup
	conns sync.WaitGroup

	// work counts the goroutines that may touch the store (repairs,
	// resyncs, their timers), so Shutdown returns only after they have.
	workMu  sync.Mutex
	stopped bool // guarded by workMu
	work    sync.WaitGroup
}

var _ rooms.Publisher = (*Hub)(nil)
var _ broker.Handler = (*Hub)(nil)

type publication struct {
	topic   string
	payload []byte
}

// New starts a hub. newBroker builds its broker with the hub as the
// handler (nil: the in-process broker of a single node). Add the feeds
// before the hub is used.
func New(cfg Config, log zerolog.Logger, m *metrics.Metrics, newBroker func(broker.Handler) (broker.Broker, error)) (*Hub, error) {
	cfg.defaults()
	h := &Hub{
		log: log, cfg: cfg, m: m, feeds: map[string]Feed{},
		topics: map[string]topic{}, subs: map[Subscriber]struct{}{}, bySess: map[string]map[Subscriber]int{},
		republish: map[string][]byte{}, kick: make(chan struct{}, 1), done: make(chan struct{}),
	}
	if newBroker == nil {
		newBroker = func(bh broker.Handler) (broker.Broker, error) { return broker.NewMemory(bh), nil }
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

// AddFeed makes a kind of topic available. Call it before the hub is used.
func (h *Hub) AddFeed(f Feed) {
	h.feeds[f.Kind()] = f
	if ef, ok := f.(EventFeed); ok {
		h.eventFeeds = append(h.eventFeeds, ef)
	}
}

// Broker is the broker the hub uses, for readiness checks.
func (h *Hub) Broker() broker.Broker { return h.broker }

// Node is this node's name in broker messages.
func (h *Hub) Node() string { return h.cfg.Node }

// goWork runs fn on a goroutine Shutdown waits for, unless the hub has
// stopped.
func (h *Hub) goWork(fn func()) bool {
	h.workMu.Lock()
	defer h.workMu.Unlock()
	if h.stopped {
		return false
	}
	h.work.Add(1)
	go func() {
		defer h.work.Done()
		fn()
	}()
	return true
}

// afterWork runs fn after d on a timer Shutdown waits for.
func (h *Hub) afterWork(d time.Duration, fn func()) {
	h.workMu.Lock()
	defer h.workMu.Unlock()
	if h.stopped {
		return
	}
	h.work.Add(1)
	time.AfterFunc(d, func() {
		defer h.work.Done()
		select {
		case <-h.done:
		default:
			fn()
		}
	})
}

// Publish is the service's publisher: it encodes a committed event's frame
// once, delivers it to this node's subscribers at once, and wakes the other
// nodes through the broker with the same bytes, without waiting for it.
func (h *Hub) Publish(ctx context.Context, e rooms.Event) {
	for _, f := range h.eventFeeds {
		key, ok := f.Route(e)
		if !ok {
			continue
		}
		name := f.Kind() + ":" + key
		// One buffer holds the envelope, and the frame is its tail.
		env := header(kindEvent, h.cfg.Node, 16+512+len(e.Body))
		env = binary.BigEndian.AppendUint64(env, uint64(e.Seq))
		env = binary.BigEndian.AppendUint64(env, uint64(e.At.UnixMicro()))
		start := len(env)
		env = appendEventFrame(env, name, e)
		frame := env[start:len(env):len(env)]
		if t, ok := h.lookup(name).(*room); ok {
			t.offer(e.Seq, frame, e.At)
		}
		h.publish(name, env)
	}
}

// Update sends data to every subscriber of a snapshot feed's topic, on
// every node: an update frame {"type":"update","topic":…,"data":…}.
func (h *Hub) Update(topicName string, data any) error {
	raw := appendJSON(nil, data)
	public := topicName
	if kind, _, ok := strings.Cut(topicName, ":"); ok {
		if _, scoped := h.feeds[kind].(ScopedFeed); scoped {
			public = kind
		}
	}
	frame := dataFrame(wire.TypeUpdate, public, raw)
	if len(frame) > wire.MaxFrame {
		return fmt.Errorf("update of %s is %d bytes, more than a frame holds", topicName, len(frame))
	}
	key, seq := orderOf(data)
	if t, ok := h.lookup(topicName).(*snapshotTopic); ok {
		t.deliver(frame, key, seq)
	}
	var env []byte
	if key == "" {
		env = append(header(kindUpdate, h.cfg.Node, len(frame)), frame...)
	} else {
		env = appendShort(header(kindOrdered, h.cfg.Node, 1+len(key)+8+len(frame)), key)
		env = append(binary.BigEndian.AppendUint64(env, uint64(seq)), frame...)
	}
	h.publish(topicName, env)
	return nil
}

// publish hands a payload to the publisher goroutine of its topic. A full
// backlog is remembered for the loop to retry, as a failed publication is.
func (h *Hub) publish(topicName string, payload []byte) {
	sum := fnv.New32a()
	_, _ = sum.Write([]byte(topicName))
	select {
	case h.pubQ[sum.Sum32()%publishers] <- publication{topic: topicName, payload: payload}:
	default:
		h.publishFailed(topicName, payload)
	}
}

// publishLoop sends a queue's publications to the broker: each time, all
// that are waiting (up to maxPublishBatch), in their order, in one round
// trip (Broker.PublishAll).
func (h *Hub) publishLoop(q chan publication) {
	msgs := make([]broker.Message, 0, maxPublishBatch)
	for {
		select {
		case p := <-q:
			msgs = append(msgs[:0], broker.Message{Topic: p.topic, Payload: p.payload})
		drain:
			for len(msgs) < maxPublishBatch {
				select {
				case p := <-q:
					msgs = append(msgs, broker.Message{Topic: p.topic, Payload: p.payload})
				default:
					break drain
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), brokerOpTimeout)
			errs := h.broker.PublishAll(ctx, msgs)
			cancel()
			for i, err := range errs {
				if err != nil {
					h.publishFailed(msgs[i].Topic, msgs[i].Payload)
				}
			}
			clear(msgs)
		case <-h.done:
			return
		}
	}
}

// publishFailed keeps the newest failed event publication of a topic for
// the loop to send again: other nodes repair everything before it from the
// store once it arrives. Ephemeral publications are not retried.
func (h *Hub) publishFailed(topicName string, payload []byte) {
	h.m.PublishFailures.Inc()
	if len(payload) == 0 {
		return
	}
	h.repMu.Lock()
	defer h.repMu.Unlock()
	switch payload[0] {
	case kindEvent:
		h.republish[topicName] = payload
	case kindEnd:
		if len(h.ends) >= maxFailedEnds {
			// Past this the other nodes are unreachable anyway; when the
			// broker comes back they resync, reading every socket's
			// session again.
			h.ends = h.ends[1:]
		}
		h.ends = append(h.ends, payload)
	}
}

// Deliver receives the broker's messages. The hub's own are skipped by
// their header alone: it delivered them locally when it published them.
func (h *Hub) Deliver(topicName string, payload []byte) {
	if fromNode(payload, h.cfg.Node) {
		return
	}
	env, err := decodeEnvelope(payload)
	if err != nil {
		h.log.Warn().Err(err).Int("bytes", len(payload)).Msg("unreadable broker message")
		return
	}
	if env.kind == kindEnd {
		h.endLocal(env.sessionID, env.user)
		return
	}
	switch t := h.lookup(topicName).(type) {
	case *room:
		switch env.kind {
		case kindEvent:
			t.offer(env.seq, env.body, env.at)
		case kindPresence:
			t.remotePresence(env.node, env.body, env.query)
		case kindTyping:
			t.typing(env.user, env.body, nil)
		}
	case *snapshotTopic:
		switch env.kind {
		case kindUpdate:
			t.deliver(env.body, "", 0)
		case kindOrdered:
			t.deliver(env.body, env.user, env.seq)
		}
	}
}

// Resync is called after the broker reconnected: whatever was published
// meanwhile is read from the store, presence is announced again, and every
// connection's session is checked, since a session end may have been
// missed.
func (h *Hub) Resync() {
	for _, t := range h.topicList() {
		t.rejoin()
	}
	h.mu.Lock()
	subs := make([]Subscriber, 0, len(h.subs))
	for s := range h.subs {
		subs = append(subs, s)
	}
	h.mu.Unlock()
	h.goWork(func() {
		sem := make(chan struct{}, resyncChecks)
		var wg sync.WaitGroup
		for _, s := range subs {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				s.CheckSession()
			})
		}
		wg.Wait()
	})
}

func (h *Hub) lookup(name string) topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.topics[name]
}

func (h *Hub) topicList() []topic {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := make([]topic, 0, len(h.topics))
	for _, t := range h.topics {
		list = append(list, t)
	}
	return list
}

// wake asks the loop to reconcile broker subscriptions now.
func (h *Hub) wake() {
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// loop owns the broker subscriptions: it alone subscribes and unsubscribes,
// so the two never race for a topic. It also retries failed publications,
// re-announces presence and sweeps topics for lost publications.
func (h *Hub) loop() {
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
				t.heartbeat(now)
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
func (h *Hub) reconcile(subscribed map[string]bool) {
	now := time.Now()
	h.mu.Lock()
	want := map[string]topic{sessionsTopic: nil}
	for name, t := range h.topics {
		if t.inUse(now) {
			want[name] = t
			continue
		}
		delete(h.topics, name)
		h.m.Topics.Dec()
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

func (h *Hub) retryPublications() {
	h.repMu.Lock()
	pending, ends := h.republish, h.ends
	h.republish, h.ends = map[string][]byte{}, nil
	h.repMu.Unlock()
	for i, payload := range ends {
		ctx, cancel := context.WithTimeout(context.Background(), brokerOpTimeout)
		err := h.broker.Publish(ctx, sessionsTopic, payload)
		cancel()
		if err != nil {
			h.repMu.Lock()
			h.ends = append(append([][]byte(nil), ends[i:]...), h.ends...)
			h.repMu.Unlock()
			break
		}
	}
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

// EndSessions closes, on every node, the connections of a session
// (sessionID) or of every session of a user (userID) with 4001.
func (h *Hub) EndSessions(sessionID, userID string) {
	h.endLocal(sessionID, userID)
	env := header(kindEnd, h.cfg.Node, 2+len(sessionID)+len(userID))
	env = appendShort(appendShort(env, sessionID), userID)
	h.publish(sessionsTopic, env)
}

func (h *Hub) endLocal(sessionID, userID string) {
	h.mu.Lock()
	var ending []Subscriber
	for s := range h.subs {
		if (sessionID != "" && s.SessionID() == sessionID) || (userID != "" && s.Caller().User.ID == userID) {
			ending = append(ending, s)
		}
	}
	h.mu.Unlock()
	for _, s := range ending {
		s.Close(DisconnectSessionEnded)
	}
}

// ErrTooManyConnections refuses a connection beyond Register's limit.
var ErrTooManyConnections = errors.New("too many connections for this session")

// errShuttingDown refuses a connection while the hub shuts down.
var errShuttingDown = errors.New("shutting down")

// Register adds a connection. perSession bounds the connections one
// session may hold on this node (0: no bound). It fails when the hub is
// shutting down, or with ErrTooManyConnections.
func (h *Hub) Register(s Subscriber, perSession int) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return errShuttingDown
	}
	id := s.SessionID()
	if perSession > 0 && len(h.bySess[id]) >= perSession {
		return ErrTooManyConnections
	}
	if h.bySess[id] == nil {
		h.bySess[id] = map[Subscriber]int{}
	}
	h.bySess[id][s]++
	h.subs[s] = struct{}{}
	h.conns.Add(1)
	h.m.Connections.Inc()
	return nil
}

// Unregister removes a connection that Register added, once it has ended.
func (h *Hub) Unregister(s Subscriber, sessionID string) {
	h.mu.Lock()
	delete(h.subs, s)
	if m := h.bySess[sessionID]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(h.bySess, sessionID)
		}
	}
	h.mu.Unlock()
	h.m.Connections.Dec()
	h.conns.Done()
}

// Accepting reports whether new connections are taken.
func (h *Hub) Accepting() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return !h.closing
}

// CheckTopic reports, as an invalid error naming the topic field, whether
// name is not a topic of any feed.
func (h *Hub) CheckTopic(name string) error {
	_, _, err := h.splitTopic(name)
	return err
}

// splitTopic returns a topic's feed and key.
func (h *Hub) splitTopic(name string) (Feed, string, error) {
	kind, key, keyed := strings.Cut(name, ":")
	f, ok := h.feeds[kind]
	if !ok || f.Keyed() != keyed || (keyed && !validKey(key)) {
		return nil, "", rooms.Invalid("topic", "%q is not a topic; subscribe to %s", printable(name), h.topicHelp())
	}
	return f, key, nil
}

func (h *Hub) topicHelp() string {
	var names []string
	for kind, f := range h.feeds {
		if f.Keyed() {
			kind += ":ID"
		}
		names = append(names, kind)
	}
	return strings.Join(names, " or ")
}

// validKey reports whether a topic key is an identifier: ids, ODS codes and
// pathway ids are ASCII letters, digits, '-', '_' and '.'.
func validKey(k string) bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for i := range len(k) {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// printable is at most 100 bytes of s, as text, for an error message.
func printable(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return -1
		}
		return r
	}, strings.ToValidUTF8(s, ""))
	if len(s) > 100 {
		s = strings.ToValidUTF8(s[:100], "")
	}
	return s
}

// Subscription is one subscriber's subscription to a topic.
type Subscription struct {
	t topic
	s Subscriber
}

// Topic is the subscription's topic name, as the subscriber named it.
func (x *Subscription) Topic() string { return x.t.publicName() }

// End ends the subscription.
func (x *Subscription) End() { x.t.remove(x.s) }

// Subscribe authorises s's subscription to the topic named, through its
// feed, and starts it: an event feed replays the events after after and
// then goes live; a snapshot feed sends its snapshot, then updates. A
// refusal is a *rooms.Error (the feed audits it); other errors are the
// store's or the connection's.
func (h *Hub) Subscribe(ctx context.Context, s Subscriber, name string, after int64) (*Subscription, error) {
	f, key, err := h.splitTopic(name)
	if err != nil {
		return nil, err
	}
	if err := f.Authorize(ctx, s.Caller(), key, after); err != nil {
		return nil, err
	}
	public := name
	if sf, ok := f.(ScopedFeed); ok {
		key = sf.Scope(s.Caller())
		name = f.Kind() + ":" + key
	}
	h.mu.Lock()
	t, ok := h.topics[name]
	if !ok {
		switch f := f.(type) {
		case EventFeed:
			t = newRoom(h, f, name, key)
		case SnapshotFeed:
			t = newSnapshotTopic(h, f, name, public, key)
		default:
			h.mu.Unlock()
			return nil, fmt.Errorf("feed %s sends nothing on subscribe", f.Kind())
		}
		h.topics[name] = t
		h.m.Topics.Inc()
		h.wake()
	}
	// Held under h.mu, so the loop cannot forget the topic (it has no
	// subscriber yet) between here and join.
	t.hold(1)
	h.mu.Unlock()
	defer t.hold(-1)
	if err := t.join(ctx, s, after); err != nil {
		t.remove(s)
		return nil, err
	}
	return &Subscription{t: t, s: s}, nil
}

// Refresh sends every local subscriber of the snapshot feed of kind a fresh
// snapshot: for views that change with the time alone (countdowns, the
// day's counts) and to mend an update a subscriber missed.
func (h *Hub) Refresh(kind string) {
	for _, t := range h.topicList() {
		if st, ok := t.(*snapshotTopic); ok && st.feed.Kind() == kind {
			st.rejoin()
		}
	}
}

// Typing shows, in the room of topicName, that who (the user with id
// userID) is typing, on every node; from is the typist's connection here,
// which is not told.
func (h *Hub) Typing(from Subscriber, topicName string, who wire.Person) {
	frame := EncodeFrame(wire.ServerFrame{Type: wire.TypeTyping, Topic: topicName, User: &who})
	if t, ok := h.lookup(topicName).(*room); ok {
		t.typing(who.ID, frame, from)
	}
	env := header(kindTyping, h.cfg.Node, 1+len(who.ID)+len(frame))
	env = append(appendShort(env, who.ID), frame...)
	h.publish(topicName, env)
}

// lifetime decides when a topic may be forgotten. It is guarded by its
// topic's lock.
type lifetime struct {
	idleSince time.Time // when the last subscriber left (or the topic was made)
	joining   int       // subscriptions being started (Hub.Subscribe)
}

func newLifetime() lifetime { return lifetime{idleSince: time.Now()} }

// inUseLocked reports whether a topic with subs subscribers is in use at
// now: it has subscribers, one is joining, or it lost its last within
// topicLinger.
func (l *lifetime) inUseLocked(subs int, now time.Time) bool {
	return subs > 0 || l.joining > 0 || now.Sub(l.idleSince) < topicLinger
}

// topic is one topic held on this node.
type topic interface {
	name() string
	// publicName is the name subscribers know the topic by.
	publicName() string
	// join adds s and sends what a new subscriber gets.
	join(ctx context.Context, s Subscriber, after int64) error
	remove(s Subscriber)
	// hold counts a subscription being started (+1) or started (-1): a
	// topic with one is in use.
	hold(delta int)
	inUse(now time.Time) bool
	// rejoin is for a topic whose broker channel has just been
	// (re)subscribed: whatever was published meanwhile is recovered.
	rejoin()
	// heartbeat re-announces and expires presence.
	heartbeat(now time.Time)
	// repair compares the topic with the store.
	repair()
}

// Shutdown closes every connection with 1001 after its queued frames are
// written and waits for them; when ctx ends first, the rest are aborted
// (their frames' store calls cancelled) and waited for. Then it stops the
// hub, waits for every goroutine it started, and closes the broker. The
// store may be closed once it returns.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	if h.closing {
		h.mu.Unlock()
		return nil
	}
	h.closing = true
	for s := range h.subs {
		s.Close(DisconnectShutdown)
	}
	h.mu.Unlock()
	drained := make(chan struct{})
	go func() {
		h.conns.Wait()
		close(drained)
	}()
	var err error
	select {
	case <-drained:
	case <-ctx.Done():
		err = errors.New("connections still open at shutdown deadline")
		h.mu.Lock()
		for s := range h.subs {
			s.Abort()
		}
		h.mu.Unlock()
		<-drained
	}
	close(h.done)
	h.loops.Wait()
	h.workMu.Lock()
	h.stopped = true
	h.workMu.Unlock()
	h.work.Wait()
	return errors.Join(err, h.broker.Close())
}
