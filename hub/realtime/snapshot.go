package realtime

import (
	"context"
	"fmt"
	"sync"
	"time"

	"patientpass/hub/wire"
)

// snapshotTopic is a topic of a SnapshotFeed on this node. A new subscriber
// is sent the feed's snapshot, then every update published after the
// snapshot was read: updates that arrive while the snapshot is being read
// wait for it, so none is lost between the two and none comes before it.
type snapshotTopic struct {
	h     *Hub
	feed  SnapshotFeed
	topic string
	// public is the name the topic's frames carry: the topic's own, or
	// the kind of a scoped feed ("user" for "user:ID").
	public string
	key    string

	mu       sync.Mutex
	subs     map[Subscriber]*snapshotSub // guarded by mu
	lifetime                             // guarded by mu
}

// snapshotSub is one subscriber's place: until its snapshot has gone out,
// updates queue in held.
type snapshotSub struct {
	live bool
	held []heldUpdate
	// seen is, for ordered updates, the seq of what the subscriber holds
	// about each key: its snapshot's, then each update's.
	seen map[string]int64
	// gen numbers the snapshot reads for this subscriber: only the latest
	// may be sent, or an older snapshot would overwrite updates the client
	// already holds (a refresh and the subscribe's own read can overlap).
	gen int
}

// heldUpdate is an update waiting for its subscriber's snapshot.
type heldUpdate struct {
	frame []byte
	key   string
	seq   int64
}

// fresh reports whether an update about key as of seq is newer than what
// the subscriber holds, and notes that it now holds it.
func (ss *snapshotSub) fresh(key string, seq int64) bool {
	if key == "" {
		return true
	}
	if have, ok := ss.seen[key]; ok && seq <= have {
		return false
	}
	if ss.seen == nil {
		ss.seen = map[string]int64{}
	}
	ss.seen[key] = seq
	return true
}

// maxHeld bounds the updates held for one subscriber while its snapshot is
// read; past it the subscriber is too slow and reconnects.
const maxHeld = 256

func newSnapshotTopic(h *Hub, f SnapshotFeed, name, public, key string) *snapshotTopic {
	return &snapshotTopic{h: h, feed: f, topic: name, public: public, key: key, subs: map[Subscriber]*snapshotSub{}, lifetime: newLifetime()}
}

func (t *snapshotTopic) name() string       { return t.topic }
func (t *snapshotTopic) publicName() string { return t.public }

func (t *snapshotTopic) join(ctx context.Context, s Subscriber, _ int64) error {
	t.mu.Lock()
	t.subs[s] = &snapshotSub{}
	t.h.m.Subscriptions.Inc()
	t.mu.Unlock()
	return t.sendSnapshot(ctx, s)
}

// sendSnapshot reads the feed's snapshot for s and sends it, then the
// updates held meanwhile. It sends under the topic's lock, so it never
// waits for room in s's queue (that would hold up every other subscriber):
// a subscriber that cannot take it closes itself as too slow.
func (t *snapshotTopic) sendSnapshot(ctx context.Context, s Subscriber) error {
	t.mu.Lock()
	ss, ok := t.subs[s]
	if !ok {
		t.mu.Unlock()
		return nil
	}
	ss.live = false
	ss.gen++
	gen := ss.gen
	t.mu.Unlock()
	data, err := t.feed.Snapshot(ctx, s.Caller(), t.key)
	if err != nil {
		return err
	}
	frame := dataFrame(wire.TypeSnapshot, t.public, appendJSON(nil, data))
	if len(frame) > wire.MaxFrame {
		return fmt.Errorf("snapshot of %s is %d bytes, more than a frame holds", t.topic, len(frame))
	}
	var seen map[string]int64
	if os, ok := data.(OrderedSnapshot); ok {
		seen = os.OrderSeqs()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if cur, ok := t.subs[s]; !ok || cur != ss || ss.gen != gen {
		return nil // unsubscribed meanwhile, or a newer read owns it
	}
	if !s.Send(Frame{Data: frame}) {
		return nil
	}
	ss.seen = seen
	for _, u := range ss.held {
		if ss.fresh(u.key, u.seq) {
			s.Send(Frame{Data: u.frame})
		}
	}
	ss.held, ss.live = nil, true
	return nil
}

// deliver sends an update frame to every subscriber, holding it for those
// whose snapshot has not gone out yet. An ordered update (key set) older
// than what a subscriber holds about key is dropped for it.
func (t *snapshotTopic) deliver(frame []byte, key string, seq int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, ss := range t.subs {
		switch {
		case ss.live:
			if ss.fresh(key, seq) {
				s.Send(Frame{Data: frame})
			}
		case len(ss.held) < maxHeld:
			ss.held = append(ss.held, heldUpdate{frame: frame, key: key, seq: seq})
		default:
			s.Close(DisconnectTooSlow)
		}
	}
}

func (t *snapshotTopic) remove(s Subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[s]; !ok {
		return
	}
	delete(t.subs, s)
	t.h.m.Subscriptions.Dec()
	if len(t.subs) == 0 {
		t.idleSince = time.Now()
	}
}

func (t *snapshotTopic) inUse(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inUseLocked(len(t.subs), now)
}

func (t *snapshotTopic) hold(delta int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.joining += delta
}

// rejoin sends every subscriber a fresh snapshot: updates published while
// the broker did not listen (before this node subscribed, or during an
// outage) are not stored anywhere the hub could replay them from, and a
// snapshot replaces whatever the client holds.
func (t *snapshotTopic) rejoin() {
	t.mu.Lock()
	subs := make([]Subscriber, 0, len(t.subs))
	for s := range t.subs {
		subs = append(subs, s)
	}
	t.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	t.h.goWork(func() {
		for _, s := range subs {
			ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
			err := t.sendSnapshot(ctx, s)
			cancel()
			if err != nil {
				t.h.log.Warn().Err(err).Str("topic", t.topic).Msg("refresh a snapshot failed; the client resubscribes")
				s.Close(DisconnectTooSlow)
			}
		}
	})
}

func (t *snapshotTopic) heartbeat(time.Time) {}
func (t *snapshotTopic) repair()             {}
