package realtime_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/metrics"
	"patientpass/hub/realtime"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// waitFor bounds every wait: a lost frame fails the test rather than hanging
// it.
const waitFor = 10 * time.Second

// newHub is a single-node hub over the in-process broker, shut down when
// the test ends.
func newHub(t *testing.T, cfg realtime.Config, feeds ...realtime.Feed) *realtime.Hub {
	t.Helper()
	h, err := realtime.New(cfg, zerolog.Nop(), metrics.New(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range feeds {
		h.AddFeed(f)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = h.Shutdown(ctx)
	})
	return h
}

// fakeSub is a connection as the hub sees it: it records every frame it is
// given and the disconnect it is asked for.
type fakeSub struct {
	caller  rooms.Caller
	session string

	mu     sync.Mutex
	frames []wire.ServerFrame    // guarded by mu
	closed []realtime.Disconnect // guarded by mu
	change chan struct{}
}

var _ realtime.Subscriber = (*fakeSub)(nil)

func newFakeSub(userID string) *fakeSub {
	return &fakeSub{
		caller:  rooms.Caller{User: rooms.User{ID: userID, Name: "User " + userID, Status: rooms.UserActive}},
		session: "session-" + userID, change: make(chan struct{}, 1),
	}
}

func (s *fakeSub) Caller() rooms.Caller { return s.caller }
func (s *fakeSub) SessionID() string    { return s.session }
func (s *fakeSub) Abort()               {}
func (s *fakeSub) CheckSession()        {}

func (s *fakeSub) Send(f realtime.Frame) bool {
	var sf wire.ServerFrame
	if err := json.Unmarshal(f.Data, &sf); err != nil {
		panic("the hub sent a frame that is not JSON: " + string(f.Data))
	}
	s.mu.Lock()
	s.frames = append(s.frames, sf)
	s.mu.Unlock()
	select {
	case s.change <- struct{}{}:
	default:
	}
	return true
}

func (s *fakeSub) SendWait(_ context.Context, f realtime.Frame) error {
	s.Send(f)
	return nil
}

func (s *fakeSub) Close(d realtime.Disconnect) {
	s.mu.Lock()
	s.closed = append(s.closed, d)
	s.mu.Unlock()
}

// snapshot returns the frames received so far.
func (s *fakeSub) received() []wire.ServerFrame {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]wire.ServerFrame(nil), s.frames...)
}

// waitFrames waits until at least n frames have arrived and returns them.
func (s *fakeSub) waitFrames(t *testing.T, n int) []wire.ServerFrame {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		if got := s.received(); len(got) >= n {
			return got
		}
		select {
		case <-s.change:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waited %s for %d frames; have %+v", waitFor, n, s.received())
		}
	}
}

// wait waits until cond holds over the frames received.
func (s *fakeSub) wait(t *testing.T, what string, cond func([]wire.ServerFrame) bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for !cond(s.received()) {
		select {
		case <-s.change:
		case <-time.After(20 * time.Millisecond):
		case <-deadline:
			t.Fatalf("waited %s for %s; have %+v", waitFor, what, s.received())
		}
	}
}

// boardFeed is a snapshot feed of "board:KEY" topics that only allowed may
// subscribe to. Its state is a number, n; a snapshot is {"n":n} and so is
// an update, which replaces it.
type boardFeed struct {
	allowed string
	mu      sync.Mutex
	n       int // guarded by mu
}

var errNotYourBoard = rooms.NotFound("board")

func (*boardFeed) Kind() string { return "board" }
func (*boardFeed) Keyed() bool  { return true }

func (f *boardFeed) Authorize(_ context.Context, c rooms.Caller, _ string, _ int64) error {
	if c.User.ID != f.allowed {
		return errNotYourBoard
	}
	return nil
}

func (f *boardFeed) Snapshot(context.Context, rooms.Caller, string) (any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return map[string]int{"n": f.n}, nil
}

// set changes the board to n and publishes the update, as a feed's owner
// does: state first, then the update.
func (f *boardFeed) set(t *testing.T, h *realtime.Hub, topic string, n int) {
	t.Helper()
	f.mu.Lock()
	f.n = n
	f.mu.Unlock()
	if err := h.Update(topic, map[string]int{"n": n}); err != nil {
		t.Fatal(err)
	}
}

// boardData decodes a board frame's data.
func boardData(t *testing.T, f wire.ServerFrame) int {
	t.Helper()
	var d struct{ N int }
	if err := json.Unmarshal(f.Data, &d); err != nil {
		t.Fatalf("board frame %s: %v", f.Data, err)
	}
	return d.N
}

// updatesOf returns the data of the update frames, in order.
func updatesOf(frames []wire.ServerFrame) []string {
	var out []string
	for _, f := range frames {
		if f.Type == wire.TypeUpdate {
			out = append(out, string(f.Data))
		}
	}
	return out
}

// The hub may send a subscriber a fresh snapshot at any time (once this
// node's broker channel for the topic is subscribed, and after a broker
// outage), so the tests allow snapshots beyond the first and check what a
// client would show: the first frame is a snapshot, every update arrives
// once and in order, and the last frame shows the board as it is.
func TestSnapshotFeedSendsTheSnapshotThenUpdates(t *testing.T) {
	feed := &boardFeed{allowed: "u1", n: 1}
	h := newHub(t, realtime.Config{Node: "test"}, feed)
	sub := newFakeSub("u1")
	s, err := h.Subscribe(context.Background(), sub, "board:p1", 0)
	if err != nil {
		t.Fatalf("subscribe to board:p1: %v", err)
	}
	defer s.End()
	got := sub.waitFrames(t, 1)
	if got[0].Type != wire.TypeSnapshot || got[0].Topic != "board:p1" || string(got[0].Data) != `{"n":1}` {
		t.Fatalf("first frame %+v; want the snapshot {\"n\":1} on board:p1", got[0])
	}
	feed.set(t, h, "board:p1", 2)
	sub.wait(t, `the update {"n":2}`, func(fs []wire.ServerFrame) bool { return len(updatesOf(fs)) == 1 })
	got = sub.received()
	if u := updatesOf(got); u[0] != `{"n":2}` || got[len(got)-1].Topic != "board:p1" {
		t.Fatalf("frames %+v; want the update {\"n\":2} on board:p1", got)
	}

	// Another board's update does not reach this subscriber.
	if err := h.Update("board:p2", map[string]int{"n": 3}); err != nil {
		t.Fatal(err)
	}
	feed.set(t, h, "board:p1", 4)
	sub.wait(t, `the update {"n":4}`, func(fs []wire.ServerFrame) bool { return len(updatesOf(fs)) >= 2 })
	got = sub.received()
	if u := updatesOf(got); len(u) != 2 || u[1] != `{"n":4}` {
		t.Fatalf("updates %v; want {\"n\":2} then {\"n\":4}, and nothing of board:p2", u)
	}
	if last := got[len(got)-1]; boardData(t, last) != 4 {
		t.Fatalf("the last frame %s %s shows a board that is not the current one (4)", last.Type, last.Data)
	}
}
func TestSnapshotFeedRefusals(t *testing.T) {
	feed := &boardFeed{allowed: "u1", n: 1}
	h := newHub(t, realtime.Config{Node: "test"}, feed)
	ctx := context.Background()

	t.Run("an unauthorised caller gets the feed's error", func(t *testing.T) {
		sub := newFakeSub("u2")
		if _, err := h.Subscribe(ctx, sub, "board:p1", 0); !errors.Is(err, errNotYourBoard) {
			t.Fatalf("subscribe as u2: %v; want the feed's not_found", err)
		}
		if got := sub.received(); len(got) != 0 {
			t.Fatalf("the refused subscriber was sent %+v", got)
		}
	})
	for _, name := range []string{"wallboard:p1", "board", "board:", "board:a b", "referral:x"} {
		t.Run("topic "+name+" is refused naming the topic", func(t *testing.T) {
			_, err := h.Subscribe(ctx, newFakeSub("u1"), name, 0)
			var de *rooms.Error
			if !errors.As(err, &de) || de.Code != rooms.CodeInvalid || de.Field != "topic" {
				t.Fatalf("subscribe to %q: %v; want invalid naming topic", name, err)
			}
			if err := h.CheckTopic(name); err == nil {
				t.Fatalf("CheckTopic(%q) = nil", name)
			}
		})
	}
}

// cardsFeed is a board whose state is a set of cards: a snapshot lists
// them, an update adds one. A client that misses an update, or takes a
// snapshot older than updates it already applied, shows a board without
// some cards. The snapshot read of a subscribe (its context carries
// joiningKey) blocks, once entered is signalled, until release.
type cardsFeed struct {
	mu      sync.Mutex
	cards   []int // guarded by mu
	reads   int   // guarded by mu
	entered chan struct{}
	release chan struct{}
}

type joiningKey struct{}

func (*cardsFeed) Kind() string { return "board" }
func (*cardsFeed) Keyed() bool  { return true }
func (*cardsFeed) Authorize(context.Context, rooms.Caller, string, int64) error {
	return nil
}

func (f *cardsFeed) Snapshot(ctx context.Context, _ rooms.Caller, _ string) (any, error) {
	f.mu.Lock()
	f.reads++
	cards := slices.Clone(f.cards) // the snapshot is as of the start of its read
	f.mu.Unlock()
	if ctx.Value(joiningKey{}) != nil {
		f.entered <- struct{}{}
		<-f.release
	}
	return map[string][]int{"cards": cards}, nil
}

func (f *cardsFeed) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

// add puts card on the board and publishes the update.
func (f *cardsFeed) add(t *testing.T, h *realtime.Hub, topic string, card int) {
	t.Helper()
	f.mu.Lock()
	f.cards = append(f.cards, card)
	f.mu.Unlock()
	if err := h.Update(topic, map[string]int{"add": card}); err != nil {
		t.Fatal(err)
	}
}

// shown is the board a client shows after frames: a snapshot replaces it,
// an update adds its card.
func shown(t *testing.T, frames []wire.ServerFrame) []int {
	t.Helper()
	var cards []int
	for _, f := range frames {
		var d struct {
			Cards []int
			Add   int
		}
		if err := json.Unmarshal(f.Data, &d); err != nil {
			t.Fatalf("frame %s: %v", f.Data, err)
		}
		switch f.Type {
		case wire.TypeSnapshot:
			cards = slices.Clone(d.Cards)
		case wire.TypeUpdate:
			if !slices.Contains(cards, d.Add) {
				cards = append(cards, d.Add)
			}
		}
	}
	slices.Sort(cards)
	return cards
}

func TestSnapshotFeedHoldsUpdatesPublishedWhileTheSnapshotIsRead(t *testing.T) {
	feed := &cardsFeed{cards: []int{1}, entered: make(chan struct{}), release: make(chan struct{})}
	h := newHub(t, realtime.Config{Node: "test"}, feed)
	sub := newFakeSub("u1")
	subscribed := make(chan error, 1)
	go func() {
		s, err := h.Subscribe(context.WithValue(context.Background(), joiningKey{}, true), sub, "board:p1", 0)
		if err == nil {
			t.Cleanup(s.End)
		}
		subscribed <- err
	}()
	select {
	case <-feed.entered:
	case <-time.After(waitFor):
		t.Fatal("Snapshot was never called")
	}
	// The node subscribes the topic's broker channel as soon as the topic
	// exists, and then refreshes its subscribers' snapshots. Let that
	// happen while the subscribe's own snapshot is still being read, if it
	// does (it need not: the refresh may have found nobody yet).
	for deadline := time.Now().Add(time.Second); feed.readCount() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	t.Logf("%d snapshot reads while the subscribe's own was blocked", feed.readCount())
	// These must wait for the snapshot, not overtake it, and not vanish.
	for card := 2; card <= 4; card++ {
		feed.add(t, h, "board:p1", card)
	}
	close(feed.release)
	if err := <-subscribed; err != nil {
		t.Fatal(err)
	}
	sub.wait(t, "the snapshot and the held updates", func(fs []wire.ServerFrame) bool { return len(updatesOf(fs)) >= 3 })
	if got := sub.received(); got[0].Type != wire.TypeSnapshot {
		t.Fatalf("first frame %+v; want the snapshot", got[0])
	}
	// Live from here: the next update goes straight out.
	feed.add(t, h, "board:p1", 5)
	sub.wait(t, "the update after the snapshot", func(fs []wire.ServerFrame) bool {
		return slices.Contains(updatesOf(fs), `{"add":5}`)
	})
	got := sub.received()
	if u := updatesOf(got); !slices.Equal(u, []string{`{"add":2}`, `{"add":3}`, `{"add":4}`, `{"add":5}`}) {
		t.Fatalf("updates %v; want 2, 3, 4, 5 once each, in order", u)
	}
	if cards := shown(t, got); !slices.Equal(cards, []int{1, 2, 3, 4, 5}) {
		var trace []string
		for _, f := range got {
			trace = append(trace, f.Type+" "+string(f.Data))
		}
		t.Fatalf("the client shows cards %v; want 1…5 (frames: %v)", cards, trace)
	}
}

// roomFeed is an event feed of "room:KEY" topics over a fake store of
// events. Once armed, one read signals entered and blocks until released.
type roomFeed struct {
	mu      sync.Mutex
	events  []rooms.Event // guarded by mu: the store
	calls   int           // guarded by mu: reads so far
	armed   bool          // guarded by mu
	entered chan struct{}
	release chan struct{}
}

func (*roomFeed) Kind() string { return "room" }
func (*roomFeed) Keyed() bool  { return true }
func (*roomFeed) Authorize(context.Context, rooms.Caller, string, int64) error {
	return nil
}
func (*roomFeed) Route(e rooms.Event) (string, bool) { return e.ReferralID, true }

func (f *roomFeed) Events(_ context.Context, _ string, after int64, limit int) ([]rooms.Event, error) {
	f.mu.Lock()
	f.calls++
	armed := f.armed
	f.armed = false
	f.mu.Unlock()
	if armed {
		// Deliberately deaf to ctx: a store read that takes its time.
		f.entered <- struct{}{}
		<-f.release
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []rooms.Event
	for _, e := range f.events {
		if e.Seq > after && len(out) < limit {
			out = append(out, e)
		}
	}
	return out, nil
}

func (f *roomFeed) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func TestShutdownWaitsForTheRepairsItStarted(t *testing.T) {
	feed := &roomFeed{entered: make(chan struct{}), release: make(chan struct{})}
	h, err := realtime.New(realtime.Config{Node: "test", RepairGrace: time.Millisecond}, zerolog.Nop(), metrics.New(), nil)
	if err != nil {
		t.Fatal(err)
	}
	h.AddFeed(feed)
	sub := newFakeSub("u1")
	if _, err := h.Subscribe(context.Background(), sub, "room:r1", 0); err != nil {
		t.Fatal(err)
	}
	// The first subscriber's catch-up and the repair that follows it.
	deadline := time.Now().Add(waitFor)
	for feed.readCount() < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the first subscriber's repair never read the store")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// Seqs 1 and 2 commit, but only 2 is published: a gap, so a repair is
	// scheduled after RepairGrace and reads the store, which blocks.
	ev := func(seq int64) rooms.Event {
		return rooms.Event{ReferralID: "r1", Seq: seq, Kind: rooms.EventMessage, At: time.Now(), Body: json.RawMessage(`{}`)}
	}
	feed.mu.Lock()
	feed.events = []rooms.Event{ev(1), ev(2)}
	feed.armed = true
	feed.mu.Unlock()
	h.Publish(context.Background(), ev(2))
	select {
	case <-feed.entered:
	case <-time.After(waitFor):
		t.Fatal("no repair read the store after a gap")
	}

	returned := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		returned <- h.Shutdown(ctx)
	}()
	select {
	case err := <-returned:
		close(feed.release)
		t.Fatalf("Shutdown returned (%v) while a repair it started was still reading the store", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(feed.release)
	select {
	case err := <-returned:
		if err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Shutdown did not return once the repair ended")
	}
}

// orderedUpdate is an update about a key as of a seq.
type orderedUpdate struct {
	Key string `json:"key"`
	Seq int64  `json:"seq"`
}

func (u orderedUpdate) OrderKey() (string, int64) { return u.Key, u.Seq }

// An update older than what a subscriber already holds about the same key
// is not sent to it: commits on one referral may publish out of order.
func TestOrderedUpdatesNeverGoBackwards(t *testing.T) {
	feed := &boardFeed{allowed: "u1", n: 1}
	h := newHub(t, realtime.Config{Node: "test"}, feed)
	sub := newFakeSub("u1")
	s, err := h.Subscribe(context.Background(), sub, "board:p1", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.End()
	sub.waitFrames(t, 1)
	for _, u := range []orderedUpdate{{"a", 2}, {"a", 1}, {"b", 1}, {"a", 2}, {"a", 3}} {
		if err := h.Update("board:p1", u); err != nil {
			t.Fatal(err)
		}
	}
	sub.wait(t, "a at seq 3", func(fs []wire.ServerFrame) bool {
		return slices.Contains(updatesOf(fs), `{"key":"a","seq":3}`)
	})
	// The hub may send a fresh snapshot at any time (once the broker
	// listens on the topic), which replaces what the client holds; this
	// feed's snapshots carry no seqs, so an update held across one rightly
	// goes out again after it. Between two snapshots no key may go back or
	// repeat, and the updates after the first snapshot are those of the
	// sequence with the older and the repeated state dropped.
	var all []string
	seen := map[string]int64{}
	for _, f := range sub.received() {
		switch f.Type {
		case wire.TypeSnapshot:
			seen = map[string]int64{}
		case wire.TypeUpdate:
			var u orderedUpdate
			if err := json.Unmarshal(f.Data, &u); err != nil {
				t.Fatal(err)
			}
			if have, ok := seen[u.Key]; ok && u.Seq <= have {
				t.Fatalf("updates %v: %s after seq %d of the same key, with no snapshot between", updatesOf(sub.received()), f.Data, have)
			}
			seen[u.Key] = u.Seq
			all = append(all, string(f.Data))
		}
	}
	if want := []string{`{"key":"a","seq":2}`, `{"key":"b","seq":1}`, `{"key":"a","seq":3}`}; !slices.Equal(all, want) && len(sub.received()) == len(all)+1 {
		t.Fatalf("updates %v after one snapshot; want %v", all, want)
	}
}
