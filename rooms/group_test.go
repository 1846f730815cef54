package rooms_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"patientpass/rooms"
)

// gatedStore is a real store whose next group, once armed, waits at the
// gate until it is opened, with one group at a time: the commands that
// arrive meanwhile queue, and the group after it holds them all.
type gatedStore struct {
	rooms.Store
	armed atomic.Bool
	// panicNext makes the next group panic before it commits.
	panicNext atomic.Bool
	held      chan struct{} // closed when the armed group reaches the gate
	open      chan struct{} // closed to let it through

	mu    sync.Mutex
	sizes []int // of the groups run, in order
}

func newGatedStore(s rooms.Store) *gatedStore {
	return &gatedStore{Store: s, held: make(chan struct{}), open: make(chan struct{})}
}

func (g *gatedStore) GroupsAtOnce() int { return 1 }

func (g *gatedStore) InTxGroup(ctx context.Context, lock []string, fns []func(rooms.Tx) error) ([]error, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.held)
		<-g.open
	}
	g.mu.Lock()
	g.sizes = append(g.sizes, len(fns))
	g.mu.Unlock()
	if g.panicNext.CompareAndSwap(true, false) {
		panic("a body of the group panicked")
	}
	return g.Store.InTxGroup(ctx, lock, fns)
}

// gatedWorld is base with a service of its own that groups through a
// gatedStore over base's store.
func gatedWorld(base *world) (*world, *gatedStore) {
	g := newGatedStore(base.store)
	w := *base
	w.svc = rooms.NewService(rooms.Config{Store: g, Clock: base.clock, Publisher: base.pub, Node: "test"})
	return &w, g
}

// holdGroup sends first as the group held at the gate, then starts each of
// rest, waits until they all queue behind it, and opens the gate: rest then
// run as one group. It returns once every command has returned.
func holdGroup(t *testing.T, w *world, g *gatedStore, first func(), rest ...func()) {
	t.Helper()
	g.mu.Lock()
	g.sizes = nil
	g.mu.Unlock()
	g.armed.Store(true)
	var wg sync.WaitGroup
	wg.Go(first)
	<-g.held
	for _, fn := range rest {
		wg.Go(fn)
	}
	deadline := time.Now().Add(30 * time.Second)
	for w.svc.GroupStats().Waiting < len(rest) {
		if time.Now().After(deadline) {
			t.Fatalf("%d commands waiting for a group; want %d", w.svc.GroupStats().Waiting, len(rest))
		}
		time.Sleep(time.Millisecond)
	}
	close(g.open)
	wg.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	// The held group, then the queued commands all in one (then the
	// refusals' audit entries, in groups of their own).
	if len(g.sizes) < 2 || g.sizes[0] != 1 || g.sizes[1] != len(rest) {
		t.Fatalf("groups of %v ran; want the held one (1) and then the %d queued commands in one", g.sizes, len(rest))
	}
}

// Commands that arrive together share one group, and each keeps its own
// outcome: refused ones (a stale plan base, an illegal transition, a
// section that does not exist, a referral the caller may not see) fail
// alone, and the others commit, in seq order, with the audit chain intact.
func TestGroupedCommandsKeepTheirOwnOutcomes(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w, g := gatedWorld(base)
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityEmergency)
		head := r.HeadSeq

		const messages, edits = 20, 10
		var (
			mu       sync.Mutex
			outcomes = map[string]int{}
		)
		record := func(what string, err error) {
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				outcomes[what+" ok"]++
			default:
				outcomes[what+" "+string(rooms.CodeOf(err))]++
			}
		}
		var rest []func()
		for i := range messages {
			rest = append(rest, func() {
				_, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: fmt.Sprintf("m%d", i), ReferralID: r.ID, Body: "x"})
				record("message", err)
			})
		}
		for i := range edits {
			rest = append(rest, func() {
				// All on base revision 0: the first to run commits, the
				// others meet its revision and conflict.
				_, _, err := w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: fmt.Sprintf("p%d", i), ReferralID: r.ID,
					Section: "imaging", BaseRevision: 0, Text: fmt.Sprintf("MRI %d", i)})
				record("edit", err)
			})
		}
		rest = append(rest,
			func() {
				_, _, err := w.svc.Transition(ctx, w.bedManager, rooms.Transition{Ref: "t1", ReferralID: r.ID, To: rooms.StatusTransferred})
				record("transition", err)
			},
			func() {
				_, _, err := w.svc.EditPlan(ctx, w.specialist, rooms.EditPlan{Ref: "p-bad", ReferralID: r.ID, Section: "not_a_section", Text: "x"})
				record("bad section", err)
			},
			func() {
				_, err := w.svc.PostMessage(ctx, w.outsider, rooms.PostMessage{Ref: "o1", ReferralID: r.ID, Body: "x"})
				record("outsider", err)
			},
		)
		holdGroup(t, w, g, func() {
			_, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "first", ReferralID: r.ID, Body: "held"})
			record("message", err)
		}, rest...)

		want := map[string]int{
			"message ok": messages + 1, "edit ok": 1, "edit conflict": edits - 1,
			"transition invalid": 1, "bad section invalid": 1, "outsider not_found": 1,
		}
		if fmt.Sprint(outcomes) != fmt.Sprint(want) {
			t.Errorf("outcomes %v\nwant     %v", outcomes, want)
		}
		es := w.events(t, r.ID)
		for i, e := range es {
			if e.Seq != int64(i+1) {
				t.Fatalf("event %d has seq %d; want gapless 1..n", i, e.Seq)
			}
		}
		if got := int64(len(es)); got != head+messages+1+1 {
			t.Errorf("%d events; want %d: the messages and one plan edit after the %d there were", got, head+messages+2, head)
		}
		got, err := w.svc.Referral(ctx, w.specialist, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if s := got.Plan.Section("imaging"); s.Revision != 1 {
			t.Errorf("imaging at revision %d; want 1, one edit committed", s.Revision)
		}
		if got.Status != rooms.StatusSubmitted {
			t.Errorf("status %s; want submitted, the illegal move refused", got.Status)
		}
		if a := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.plan_edit", Outcome: rooms.OutcomeInvalid}); len(a) != edits {
			t.Errorf("%d refused plan edits audited; want %d", len(a), edits)
		}
		if a := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.message", Outcome: rooms.OutcomeSuccess}); len(a) != messages+1 {
			t.Errorf("%d messages audited; want %d", len(a), messages+1)
		}
		if _, broken, err := rooms.VerifyAudit(ctx, w.store); err != nil || broken != nil {
			t.Fatalf("audit verify: %v %v", broken, err)
		}
		if st := w.svc.GroupStats(); st.Alone != 0 {
			t.Errorf("%d commands ran alone; want none: every refusal was undone inside its group", st.Alone)
		}
	})
}

// A ref repeated inside one group is taken once: where the store cannot
// undo the repeat alone, the group runs each command again on its own, and
// every caller gets the one result.
func TestGroupedRepeatsOfARefTakeEffectOnce(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w, g := gatedWorld(base)
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityEmergency)
		head := r.HeadSeq

		const repeats, others = 8, 8
		seqs := make(chan int64, repeats)
		var failed atomic.Int64
		var rest []func()
		for range repeats {
			rest = append(rest, func() {
				e, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "same", ReferralID: r.ID, Body: "once"})
				if err != nil {
					t.Errorf("repeat: %v", err)
					failed.Add(1)
					return
				}
				seqs <- e.Seq
			})
		}
		for i := range others {
			rest = append(rest, func() {
				if _, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: fmt.Sprintf("o%d", i), ReferralID: r.ID, Body: "x"}); err != nil {
					t.Errorf("other message: %v", err)
					failed.Add(1)
				}
			})
		}
		holdGroup(t, w, g, func() {
			if _, err := w.svc.PostMessage(ctx, w.coord, rooms.PostMessage{Ref: "held", ReferralID: r.ID, Body: "held"}); err != nil {
				t.Errorf("held message: %v", err)
			}
		}, rest...)
		close(seqs)
		var first int64 = -1
		for s := range seqs {
			if first >= 0 && s != first {
				t.Errorf("repeats of one ref answered seqs %d and %d; want one", first, s)
			}
			first = s
		}
		es := w.events(t, r.ID)
		if got := int64(len(es)); got != head+1+1+others {
			t.Errorf("%d events; want %d: the held message, the ref once and the others", got, head+2+others)
		}
		onces := 0
		for _, e := range es {
			var body rooms.MessageBody
			if e.Kind == rooms.EventMessage && json.Unmarshal(e.Body, &body) == nil && body.Body == "once" {
				onces++
			}
		}
		if onces != 1 {
			t.Errorf("the repeated ref's message stored %d times; want once", onces)
		}
		if _, broken, err := rooms.VerifyAudit(ctx, w.store); err != nil || broken != nil {
			t.Fatalf("audit verify: %v %v", broken, err)
		}
	})
}

// A caller that gives up while its command waits for a group gets its
// context's error, and nothing of the command runs.
func TestCommandGivenUpBeforeItsGroupDoesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w, g := gatedWorld(base)
		r := w.create(t, "c", rooms.PriorityEmergency)
		head := r.HeadSeq
		g.armed.Store(true)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := w.svc.PostMessage(context.Background(), w.referrer, rooms.PostMessage{Ref: "held", ReferralID: r.ID, Body: "held"}); err != nil {
				t.Errorf("held message: %v", err)
			}
		})
		<-g.held
		ctx, cancel := context.WithCancel(context.Background())
		var err error
		wg.Go(func() {
			_, err = w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "given-up", ReferralID: r.ID, Body: "x"})
		})
		for w.svc.GroupStats().Waiting == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
		close(g.open)
		wg.Wait()
		if !errors.Is(err, context.Canceled) {
			t.Errorf("given-up command: %v; want the context's error", err)
		}
		if got := int64(len(w.events(t, r.ID))); got != head+1 {
			t.Errorf("%d events; want %d, the held message only", got, head+1)
		}
	})
}

// A group that panics before its commit commits nothing, and stops nothing:
// its members run again alone and succeed, and later commands group as
// before.
func TestPanickingGroupRunsItsMembersAlone(t *testing.T) {
	eachStore(t, func(t *testing.T, base *world) {
		w, g := gatedWorld(base)
		ctx := context.Background()
		r := w.create(t, "c", rooms.PriorityEmergency)
		head := r.HeadSeq
		g.panicNext.Store(true)
		var rest []func()
		for i := range 5 {
			rest = append(rest, func() {
				if _, err := w.svc.PostMessage(ctx, w.specialist, rooms.PostMessage{Ref: fmt.Sprintf("m%d", i), ReferralID: r.ID, Body: "x"}); err != nil {
					t.Errorf("message %d: %v", i, err)
				}
			})
		}
		holdGroup(t, w, g, func() {
			if _, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "held", ReferralID: r.ID, Body: "held"}); err != nil {
				t.Errorf("held message: %v", err)
			}
		}, rest...)
		if _, err := w.svc.PostMessage(ctx, w.referrer, rooms.PostMessage{Ref: "after", ReferralID: r.ID, Body: "after"}); err != nil {
			t.Fatalf("a message after the panic: %v", err)
		}
		if got := int64(len(w.events(t, r.ID))); got != head+7 {
			t.Errorf("%d events; want %d: every message once", got, head+7)
		}
		if st := w.svc.GroupStats(); st.Alone == 0 {
			t.Error("no member ran alone after the panic")
		}
	})
}
