package hub

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"patientpass/hub/wire"
	"patientpass/rooms"
)

const (
	// repairPage is how many events one store read repairs or replays.
	repairPage = 500
	// maxPending bounds the events a topic holds while it waits for a
	// missing one; beyond it the store fills the gap.
	maxPending = 1024
	// repairRetry is the pause after a store read failed.
	repairRetry = time.Second
)

// topic is one referral's room on this node. Its lock orders everything
// delivered to the room's subscribers: every event goes out under it, in
// seq order, exactly once per subscriber.
//
// Lock order: realtime.mu, then topic.mu, then conn.mu.
type topic struct {
	h          *realtime
	name       string
	referralID string

	mu   sync.Mutex
	subs map[*conn]*subscription
	// delivered is the seq of the last event given to live subscribers, or
	// -1 until the first subscriber has caught up from the store.
	delivered int64
	// pending holds events that arrived ahead of a gap.
	pending map[int64]rooms.Event
	// A repair reads the store after delivered. Only one runs at a time;
	// again asks it to read once more, armed that one is scheduled.
	repairing, again, armed bool
	idleSince               time.Time
	// local counts this node's subscriptions per user; remote is what the
	// other nodes announced.
	local  map[string]*presenceCount
	remote map[string]remotePresence
	shown  string // the presence last sent, to send only changes
}

type presenceCount struct {
	person wire.Person
	n      int
}

type remotePresence struct {
	users   []wire.Person
	expires time.Time
}

// subscription is one connection's subscription to a topic. next is the
// seq the subscriber needs next: the replay advances it until the
// subscription is live, then only the topic does, under its lock.
type subscription struct {
	t    *topic
	c    *conn
	next int64
	live bool
}

func newTopic(h *realtime, name, referralID string) *topic {
	return &topic{
		h: h, name: name, referralID: referralID, delivered: -1,
		subs: map[*conn]*subscription{}, pending: map[int64]rooms.Event{},
		local: map[string]*presenceCount{}, remote: map[string]remotePresence{},
	}
}

// inUse reports whether the topic has subscribers or lost its last one
// within topicLinger.
func (t *topic) inUse(now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs) > 0 || now.Sub(t.idleSince) < topicLinger
}

// add registers c's subscription, not yet live, and announces the user if
// they were not in the room yet.
func (t *topic) add(c *conn, after int64) *subscription {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := &subscription{t: t, c: c, next: after + 1}
	t.subs[c] = s
	t.h.m.subscriptions.Add(1)
	u := c.caller.User
	if p, ok := t.local[u.ID]; ok {
		p.n++
	} else {
		t.local[u.ID] = &presenceCount{person: wire.Person{ID: u.ID, Name: u.Name}, n: 1}
		t.presenceChangedLocked(true)
	}
	return s
}

// remove ends c's subscription.
func (t *topic) remove(c *conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.subs[c]; !ok {
		return
	}
	delete(t.subs, c)
	t.h.m.subscriptions.Add(-1)
	if len(t.subs) == 0 {
		t.idleSince = time.Now()
	}
	u := c.caller.User
	if p := t.local[u.ID]; p != nil {
		if p.n--; p.n == 0 {
			delete(t.local, u.ID)
			t.presenceChangedLocked(true)
		}
	}
}

// catchUp replays the stored events after s.next-1 to the subscriber, then
// makes it live once it holds everything the topic has delivered, so the
// seam between replay and live has neither gap nor duplicate. The
// subscribed frame, with the head, goes out before any live event.
func (t *topic) catchUp(ctx context.Context, s *subscription) error {
	for {
		events, err := t.h.store.Events(ctx, t.referralID, s.next-1, repairPage)
		if err != nil {
			return err
		}
		for _, e := range events {
			if err := s.c.enqueueWait(ctx, outFrame{data: eventFrame(t.name, e), event: true}); err != nil {
				return err
			}
			s.next = e.Seq + 1
		}
		if len(events) == repairPage {
			continue
		}
		t.mu.Lock()
		if t.delivered < 0 {
			// The first subscriber here: the topic starts where its
			// replay ended, and reads the store once more for whatever
			// committed before the broker listened.
			t.delivered = s.next - 1
			t.drainLocked()
			t.startRepairLocked()
		}
		if s.next-1 >= t.delivered {
			s.live = true
			head := s.next - 1
			s.c.enqueue(outFrame{data: mustFrame(wire.ServerFrame{Type: wire.TypeSubscribed, Topic: t.name, Head: &head})})
			s.c.enqueue(outFrame{data: t.presenceFrameLocked()})
			t.mu.Unlock()
			return nil
		}
		t.mu.Unlock()
	}
}

// offer takes an event from a commit on this node or from the broker.
func (t *topic) offer(e rooms.Event) {
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case t.delivered < 0:
		// Not caught up yet: the first subscriber's replay decides.
		if len(t.pending) < maxPending {
			t.pending[e.Seq] = e
		}
	case e.Seq <= t.delivered:
	case e.Seq == t.delivered+1:
		t.deliverLocked(e)
		t.drainLocked()
	default:
		if len(t.pending) < maxPending {
			t.pending[e.Seq] = e
		}
		t.scheduleRepairLocked()
	}
}

// deliverLocked gives e, the next event, to every live subscriber that
// does not have it yet. Enqueueing never blocks: a subscriber whose queue
// is full is closed with 4008 and resumes after reconnecting.
func (t *topic) deliverLocked(e rooms.Event) {
	t.delivered = e.Seq
	if len(t.subs) == 0 {
		return
	}
	f := outFrame{data: eventFrame(t.name, e), event: true, at: e.At}
	for _, s := range t.subs {
		if s.live && e.Seq >= s.next {
			s.next = e.Seq + 1
			s.c.enqueue(f)
		}
	}
}

// drainLocked delivers the pending events that follow on, drops those
// already delivered, and schedules a repair if a gap remains.
func (t *topic) drainLocked() {
	for {
		e, ok := t.pending[t.delivered+1]
		if !ok {
			break
		}
		delete(t.pending, e.Seq)
		t.deliverLocked(e)
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
func (t *topic) scheduleRepairLocked() {
	if t.armed || t.repairing {
		t.again = t.again || t.repairing
		return
	}
	t.armed = true
	time.AfterFunc(t.h.cfg.RepairGrace, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.armed = false
		if len(t.pending) > 0 {
			t.startRepairLocked()
		}
	})
}

// repair reads the store for events this node has not delivered.
func (t *topic) repair() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startRepairLocked()
}

func (t *topic) startRepairLocked() {
	if t.repairing {
		t.again = true
		return
	}
	if t.delivered < 0 {
		return // the first subscriber's catch-up reads the store anyway
	}
	t.repairing = true
	go t.runRepair()
}

// runRepair delivers, in order, the stored events after delivered.
func (t *topic) runRepair() {
	for {
		t.mu.Lock()
		from := t.delivered
		t.again = false
		t.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		events, err := t.h.store.Events(ctx, t.referralID, from, repairPage)
		cancel()

		t.mu.Lock()
		if err != nil {
			t.h.log.Warn().Err(err).Str("topic", t.name).Msg("repair from the store failed; retrying")
			t.repairing = false
			t.armed = true
			time.AfterFunc(repairRetry, func() {
				t.mu.Lock()
				defer t.mu.Unlock()
				t.armed = false
				t.startRepairLocked()
			})
			t.mu.Unlock()
			return
		}
		repaired := 0
		for _, e := range events {
			if e.Seq == t.delivered+1 {
				t.deliverLocked(e)
				repaired++
			}
		}
		t.drainLocked()
		if repaired > 0 {
			t.h.m.gapRepairs.Add(1)
			t.h.m.repairedEvents.Add(int64(repaired))
		}
		if len(events) < repairPage && !t.again {
			t.repairing = false
			t.mu.Unlock()
			return
		}
		t.mu.Unlock()
	}
}

// presenceChangedLocked sends the room's presence to its live subscribers
// if it changed, and tells the other nodes when this node's part changed.
func (t *topic) presenceChangedLocked(localChanged bool) {
	f := t.presenceFrameLocked()
	if string(f) != t.shown {
		t.shown = string(f)
		for _, s := range t.subs {
			if s.live {
				s.c.enqueue(outFrame{data: f})
			}
		}
	}
	if localChanged {
		t.announceLocked(false)
	}
}

func (t *topic) localUsersLocked() []wire.Person {
	users := make([]wire.Person, 0, len(t.local))
	for _, p := range t.local {
		users = append(users, p.person)
	}
	return users
}

// presenceFrameLocked is the room's presence: everyone subscribed on any
// node, each once, by name.
func (t *topic) presenceFrameLocked() []byte {
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
	b, _ := json.Marshal(struct {
		Type  string        `json:"type"`
		Topic string        `json:"topic"`
		Users []wire.Person `json:"users"`
	}{wire.TypePresence, t.name, users})
	return b
}

// remotePresence records who another node has in the room; query asks
// this node to announce its own.
func (t *topic) remotePresence(node string, users []wire.Person, query bool) {
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

// announce tells the other nodes who is in the room here, if anyone is.
func (t *topic) announce() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.local) > 0 {
		t.announceLocked(false)
	}
}

// rejoin is for a topic whose broker channel has just been (re)subscribed:
// it reads the store for what was published while nobody listened, and
// announces its presence asking the other nodes for theirs.
func (t *topic) rejoin() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.startRepairLocked()
	t.announceLocked(true)
}

// announceLocked publishes who is in the room on this node; query asks the
// other nodes to answer with theirs.
func (t *topic) announceLocked(query bool) {
	t.h.publish(t.name, envelope{Kind: "presence", Users: t.localUsersLocked(), Query: query})
}

// expirePresence forgets nodes that stopped announcing (a node that died).
func (t *topic) expirePresence(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
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

// typing shows who is typing to the room's live subscribers, except the
// typist's own connections (from is the sender's connection on this node,
// nil when it came from another node).
func (t *topic) typing(who wire.Person, from *conn) {
	f := mustFrame(wire.ServerFrame{Type: wire.TypeTyping, Topic: t.name, User: &who})
	t.mu.Lock()
	defer t.mu.Unlock()
	for c, s := range t.subs {
		if s.live && c != from && c.caller.User.ID != who.ID {
			c.enqueue(outFrame{data: f})
		}
	}
}

// eventFrame is the frame of a stored event.
func eventFrame(topicName string, e rooms.Event) []byte {
	body, err := json.Marshal(e)
	if err != nil {
		panic("marshal event: " + err.Error()) // our own plain struct
	}
	return mustFrame(wire.ServerFrame{Type: wire.TypeEvent, Topic: topicName, Seq: e.Seq, Event: body})
}

func mustFrame(f wire.ServerFrame) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		panic("marshal frame: " + err.Error()) // our own plain struct
	}
	return b
}
