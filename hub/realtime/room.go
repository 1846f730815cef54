package realtime

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"patientpass/hub/wire"
)

const (
	// repairPage is how many events one store read repairs or replays.
	repairPage = 500
	// maxPending bounds the events a room holds while it waits for a
	// missing one; beyond it the store fills the gap.
	maxPending = 1024
	// repairRetry is the pause after a store read failed.
	repairRetry = time.Second
	// repairTimeout bounds one store read of a repair.
	repairTimeout = 10 * time.Second
	// tailFrames and tailBytes bound the recent event frames a room keeps
	// to replay from memory. A client that reconnects within seconds asks
	// for a handful of events, and a room that has lost its subscribers
	// lingers (topicLinger) still receiving its events, so a reconnect
	// storm resumes from memory instead of queueing one store read per
	// client; a longer absence reads the store, as before. The bounds keep
	// an idle room small: 64 frames of a few hundred bytes, fewer when
	// large plan edits fill the bytes.
	tailFrames = 64
	tailBytes  = 64 << 10
)

// room is a topic of an EventFeed on this node: one referral's room. Its
// lock orders everything delivered to the room's subscribers: every event
// goes out under it, in seq order, exactly once per subscriber.
//
// Lock order: Hub.mu, then room.mu, then the subscriber's own lock.
type room struct {
	h     *Hub
	feed  EventFeed
	topic string
	key   string

	mu   sync.Mutex
	subs map[Subscriber]*roomSub // guarded by mu
	// delivered is the seq of the last event given to live subscribers, or
	// -1 until the first subscriber has caught up from the store.
	delivered int64
	// pending holds the frames of events that arrived ahead of a gap.
	pending map[int64]pendingFrame
	// tail holds the frames of the last events delivered, in seq order and
	// without gaps, the last being delivered's: tail[i] is event
	// tailFirst+i. tailSize is their bytes. A replay after a seq inside it
	// needs no store read.
	tail      []tailFrame
	tailFirst int64
	tailSize  int
	// A repair reads the store after delivered. Only one runs at a time;
	// again asks it to read once more, armed that one is scheduled.
	repairing, again, armed bool
	lifetime
	// local counts this node's subscriptions per user; remote is what the
	// other nodes announced.
	local  map[string]*presenceCount
	remote map[string]remotePresence
	shown  string // the presence last sent, to send only changes
}

type pendingFrame struct {
	data []byte
	at   time.Time
}

// tailFrame is one event's frame in a room's tail.
type tailFrame struct {
	seq  int64
	data []byte
}

type presenceCount struct {
	person wire.Person
	n      int
}

type remotePresence struct {
	users   []wire.Person
	expires time.Time
}

// roomSub is one subscriber's place in a room. next is the seq the
// subscriber needs next: the replay advances it until the subscription is
// live, then only the room does, under its lock.
type roomSub struct {
	next int64
	live bool
}

func newRoom(h *Hub, f EventFeed, name, key string) *room {
	return &room{
		h: h, feed: f, topic: name, key: key, delivered: -1, lifetime: newLifetime(),
		subs: map[Subscriber]*roomSub{}, pending: map[int64]pendingFrame{},
		local: map[string]*presenceCount{}, remote: map[string]remotePresence{},
	}
}

func (t *room) name() string       { return t.topic }
func (t *room) publicName() string { return t.topic }

// inUse reports whether the room has subscribers or lost its last one
// within topicLinger.
func (t *room) inUse(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.inUseLocked(len(t.subs), now)
}

func (t *room) hold(delta int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.joining += delta
}

// join registers s, not yet live, announces the user if they were not in
// the room yet, and catches s up from the store.
func (t *room) join(ctx context.Context, s Subscriber, after int64) error {
	t.mu.Lock()
	rs := &roomSub{next: after + 1}
	t.subs[s] = rs
	t.h.m.Subscriptions.Inc()
	u := s.Caller().User
	if p, ok := t.local[u.ID]; ok {
		p.n++
	} else {
		t.local[u.ID] = &presenceCount{person: wire.Person{ID: u.ID, Name: u.Name}, n: 1}
		t.presenceChangedLocked(true)
	}
	t.mu.Unlock()
	return t.catchUp(ctx, s, rs)
}

// remove ends s's subscription.
func (t *room) remove(s Subscriber) {
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
	u := s.Caller().User
	if p := t.local[u.ID]; p != nil {
		if p.n--; p.n == 0 {
			delete(t.local, u.ID)
			t.presenceChangedLocked(true)
		}
	}
}

// catchUp replays the events after rs.next-1 to the subscriber, then makes
// it live once it holds everything the room has delivered, so the seam
// between replay and live has neither gap nor duplicate. The subscribed
// frame, with the head, goes out before any live event.
//
// A room that has delivered events replays from its tail when the tail
// holds the next event the subscriber needs, and from the store when it
// does not; a room nobody has caught up yet always reads the store. The
// frames are sent outside the lock, waiting for room in the subscriber's
// queue, so each round sends what the room had delivered when it began,
// and the next round checks again: the subscription goes live only under
// the lock, at a moment when it holds exactly what the room delivered.
func (t *room) catchUp(ctx context.Context, s Subscriber, rs *roomSub) error {
	for {
		t.mu.Lock()
		if t.delivered >= 0 && rs.next-1 >= t.delivered {
			t.goLiveLocked(s, rs)
			t.mu.Unlock()
			return nil
		}
		frames := t.tailAfterLocked(rs.next - 1)
		t.mu.Unlock()
		if frames != nil {
			t.h.m.ReplaysFromMemory.Inc()
			for _, f := range frames {
				if err := s.SendWait(ctx, Frame{Data: f.data, Event: true}); err != nil {
					return err
				}
				rs.next = f.seq + 1
			}
			continue
		}
		t.h.m.ReplaysFromStore.Inc()
		events, err := t.feed.Events(ctx, t.key, rs.next-1, repairPage)
		if err != nil {
			return err
		}
		replayed := make([]tailFrame, 0, len(events))
		for _, e := range events {
			f := tailFrame{seq: e.Seq, data: EventFrame(t.topic, e)}
			if err := s.SendWait(ctx, Frame{Data: f.data, Event: true}); err != nil {
				return err
			}
			rs.next = e.Seq + 1
			replayed = append(replayed, f)
		}
		if len(events) == repairPage {
			continue
		}
		t.mu.Lock()
		if t.delivered < 0 {
			// The first subscriber here: the room starts where its replay
			// ended, its tail holds the end of that replay, and it reads
			// the store once more for whatever committed before the broker
			// listened.
			t.delivered = rs.next - 1
			t.seedTailLocked(replayed)
			t.drainLocked()
			t.startRepairLocked()
		}
		if rs.next-1 >= t.delivered {
			t.goLiveLocked(s, rs)
			t.mu.Unlock()
			return nil
		}
		t.mu.Unlock()
	}
}

// goLiveLocked makes a caught-up subscriber live: it is sent the subscribed
// frame, with the head it has, and the room's presence, and from now on
// every event the room delivers after its head.
func (t *room) goLiveLocked(s Subscriber, rs *roomSub) {
	rs.live = true
	head := rs.next - 1
	s.Send(Frame{Data: EncodeFrame(wire.ServerFrame{Type: wire.TypeSubscribed, Topic: t.topic, Head: &head})})
	s.Send(Frame{Data: t.presenceFrameLocked()})
}

// tailAfterLocked returns the frames of the tail after seq after, up to
// repairPage of them, or nil when the tail does not hold event after+1 (it
// is older than the tail, or not delivered yet). The slice is a copy: the
// frames themselves are never changed.
func (t *room) tailAfterLocked(after int64) []tailFrame {
	if len(t.tail) == 0 || after+1 < t.tailFirst || after+1 > t.delivered {
		return nil
	}
	from := after + 1 - t.tailFirst
	return slices.Clone(t.tail[from:min(int64(len(t.tail)), from+repairPage)])
}

// appendTailLocked adds the frame of the event just delivered, seq, and
// drops the oldest beyond tailFrames and tailBytes. A frame that does not
// follow on from the tail (never expected: delivered advances one by one)
// starts the tail again, so it never holds a gap.
func (t *room) appendTailLocked(seq int64, data []byte) {
	if len(t.tail) > 0 && seq != t.tailFirst+int64(len(t.tail)) {
		t.tail, t.tailSize = t.tail[:0], 0
	}
	if len(t.tail) == 0 {
		t.tailFirst = seq
	}
	t.tail = append(t.tail, tailFrame{seq: seq, data: data})
	t.tailSize += len(data)
	drop := 0
	for len(t.tail)-drop > tailFrames || (t.tailSize > tailBytes && len(t.tail)-drop > 1) {
		t.tailSize -= len(t.tail[drop].data)
		drop++
	}
	if drop > 0 {
		// Shift rather than reslice, so the array does not grow without
		// bound as the front moves on.
		n := copy(t.tail, t.tail[drop:])
		clear(t.tail[n:])
		t.tail = t.tail[:n]
		t.tailFirst += int64(drop)
	}
}

// seedTailLocked fills the tail of a room that has just been caught up
// with the end of the first subscriber's replay, which ends at delivered.
func (t *room) seedTailLocked(replayed []tailFrame) {
	if n := len(replayed); n == 0 || replayed[n-1].seq != t.delivered {
		return
	}
	for _, f := range replayed[max(0, len(replayed)-tailFrames):] {
		t.appendTailLocked(f.seq, f.data)
	}
}

// offer takes an event's frame from a commit on this node or from the
// broker.
func (t *room) offer(seq int64, frame []byte, at time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.delivered < 0:
		// Not caught up yet: the first subscriber's replay decides.
		if len(t.pending) < maxPending {
			t.pending[seq] = pendingFrame{frame, at}
		}
	case seq <= t.delivered:
	case seq == t.delivered+1:
		t.deliverLocked(seq, frame, at)
		t.drainLocked()
	default:
		if len(t.pending) < maxPending {
			t.pending[seq] = pendingFrame{frame, at}
		}
		t.scheduleRepairLocked()
	}
}

// deliverLocked gives the next event's frame to every live subscriber that
// does not have it yet. Sending never blocks: a subscriber whose queue is
// full closes itself with 4008 and resumes after reconnecting.
func (t *room) deliverLocked(seq int64, frame []byte, at time.Time) {
	t.delivered = seq
	t.appendTailLocked(seq, frame)
	if len(t.subs) == 0 {
		return
	}
	f := Frame{Data: frame, Event: true, At: at}
	for s, rs := range t.subs {
		if rs.live && seq >= rs.next {
			rs.next = seq + 1
			s.Send(f)
		}
	}
}

// drainLocked delivers the pending events that follow on, drops those
// already delivered, and schedules a repair if a gap remains.
func (t *room) drainLocked() {
	for {
		p, ok := t.pending[t.delivered+1]
		if !ok {
			break
		}
		delete(t.pending, t.delivered+1)
		t.deliverLocked(t.delivered+1, p.data, p.at)
	}
	for seq := range t.pending {
		if seq <= t.delivered {
			delete(t.pending, seq)
		}
	}
	if len(t.pending) > 0 {
		t.scheduleRepairLocked()
	}
}

// scheduleRepairLocked reads the store after RepairGrace, unless the gap
// has closed by then.
func (t *room) scheduleRepairLocked() {
	if t.armed || t.repairing {
		t.again = t.again || t.repairing
		return
	}
	t.armed = true
	t.h.afterWork(t.h.cfg.RepairGrace, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.armed = false
		if len(t.pending) > 0 {
			t.startRepairLocked()
		}
	})
}

// repair reads the store for events this node has not delivered.
func (t *room) repair() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startRepairLocked()
}

func (t *room) startRepairLocked() {
	if t.repairing {
		t.again = true
		return
	}
	if t.delivered < 0 {
		return // the first subscriber's catch-up reads the store anyway
	}
	if t.h.goWork(t.runRepair) {
		t.repairing = true
	}
}

// runRepair delivers, in order, the stored events after delivered.
func (t *room) runRepair() {
	for {
		t.mu.Lock()
		from := t.delivered
		t.again = false
		t.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), repairTimeout)
		events, err := t.feed.Events(ctx, t.key, from, repairPage)
		cancel()

		t.mu.Lock()
		if err != nil {
			t.h.log.Warn().Err(err).Str("topic", t.topic).Msg("repair from the store failed; retrying")
			t.repairing = false
			t.retryRepairLocked()
			t.mu.Unlock()
			return
		}
		repaired := 0
		for _, e := range events {
			if e.Seq == t.delivered+1 {
				t.deliverLocked(e.Seq, EventFrame(t.topic, e), e.At)
				repaired++
			}
		}
		t.drainLocked()
		if repaired > 0 {
			t.h.m.GapRepairs.Inc()
			t.h.m.RepairedEvents.Add(float64(repaired))
		}
		stopping := false
		select {
		case <-t.h.done:
			stopping = true
		default:
		}
		if stopping || (len(events) < repairPage && (!t.again || repaired == 0)) {
			// Done, or the store holds nothing more to fill the gap yet
			// (the event is committed but not yet readable, or a bogus
			// publication): try again after a pause, never in a loop.
			t.repairing = false
			if !stopping && len(t.pending) > 0 && repaired == 0 {
				t.retryRepairLocked()
			}
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

// retryRepairLocked starts a repair again after repairRetry.
func (t *room) retryRepairLocked() {
	t.armed = true
	t.h.afterWork(repairRetry, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.armed = false
		t.startRepairLocked()
	})
}

// presenceChangedLocked sends the room's presence to its live subscribers
// if it changed, and tells the other nodes when this node's part changed.
func (t *room) presenceChangedLocked(localChanged bool) {
	f := t.presenceFrameLocked()
	if string(f) != t.shown {
		t.shown = string(f)
		for s, rs := range t.subs {
			if rs.live {
				s.Send(Frame{Data: f})
			}
		}
	}
	if localChanged {
		t.announceLocked(false)
	}
}

// presenceFrameLocked is the room's presence: everyone subscribed on any
// node, each once, by name.
func (t *room) presenceFrameLocked() []byte {
	seen := map[string]bool{}
	users := []wire.Person{}
	add := func(p wire.Person) {
		if !seen[p.ID] {
			seen[p.ID] = true
			users = append(users, p)
		}
	}
	for _, p := range t.local {
		add(p.person)
	}
	for _, r := range t.remote {
		for _, p := range r.users {
			add(p)
		}
	}
	slices.SortFunc(users, func(a, b wire.Person) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return appendJSON(nil, struct {
		Type  string        `json:"type"`
		Topic string        `json:"topic"`
		Users []wire.Person `json:"users"`
	}{wire.TypePresence, t.topic, users})
}

// remotePresence records who another node has in the room (body is the
// JSON list of its users); query asks this node to announce its own.
func (t *room) remotePresence(node string, body []byte, query bool) {
	var users []wire.Person
	if err := json.Unmarshal(body, &users); err != nil {
		t.h.log.Warn().Err(err).Msg("unreadable presence announcement")
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(users) == 0 {
		delete(t.remote, node)
	} else {
		t.remote[node] = remotePresence{users: users, expires: time.Now().Add(presenceTTL)}
	}
	t.presenceChangedLocked(false)
	if query && len(t.local) > 0 {
		t.announceLocked(false)
	}
}

// heartbeat tells the other nodes who is in the room here, if anyone is,
// and forgets nodes that stopped announcing (a node that died).
func (t *room) heartbeat(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.local) > 0 {
		t.announceLocked(false)
	}
	changed := false
	for node, r := range t.remote {
		if now.After(r.expires) {
			delete(t.remote, node)
			changed = true
		}
	}
	if changed {
		t.presenceChangedLocked(false)
	}
}

// rejoin reads the store for what was published while nobody listened, and
// announces the room's presence asking the other nodes for theirs.
func (t *room) rejoin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startRepairLocked()
	t.announceLocked(true)
}

// announceLocked publishes who is in the room on this node; query asks the
// other nodes to answer with theirs.
func (t *room) announceLocked(query bool) {
	users := make([]wire.Person, 0, len(t.local))
	for _, p := range t.local {
		users = append(users, p.person)
	}
	q := byte(0)
	if query {
		q = 1
	}
	env := append(header(kindPresence, t.h.cfg.Node, 64), q)
	t.h.publish(t.topic, appendJSON(env, users))
}

// typing passes a typing frame to the room's live subscribers, except the
// typist's own connections (from is the typist's connection on this node,
// nil when it came from another node).
func (t *room) typing(userID string, frame []byte, from Subscriber) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for s, rs := range t.subs {
		if rs.live && s != from && s.Caller().User.ID != userID {
			s.Send(Frame{Data: frame})
		}
	}
}
