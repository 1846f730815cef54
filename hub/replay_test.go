package hub_test

import (
	"context"
	"fmt"
	"testing"

	"patientpass/hub/wire"
)

// TestResubscribeReplaysRecentEventsFromTheRoomsMemory shows that a client
// resuming a room from a recent seq is replayed from the events the room
// has just delivered, with no store read, and that the seam between that
// replay and the live events has neither gap nor duplicate while posts go
// on; a client further behind than the room's memory is replayed from the
// store, and gets the same.
func TestResubscribeReplaysRecentEventsFromTheRoomsMemory(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		topic := wire.ReferralTopic(r.id)
		// The referrer's socket keeps the room live on the node throughout.
		live, liveRec := r.rc.ws(e.base, "")
		head := subscribe(t, live, r.id, 0)
		for i := range 80 {
			head = post(t, live, r.id, fmt.Sprintf("before %d", i)).Seq
		}
		liveRec.waitSeq(t, topic, head)

		// A post running alongside each resubscription, so live events
		// arrive while the replay is under way.
		posting := func(n int) chan error {
			done := make(chan error, 1)
			go func() {
				for i := range n {
					ctx, cancel := context.WithTimeout(context.Background(), waitFor)
					_, err := live.Message(ctx, r.id, fmt.Sprintf("during %d", i))
					cancel()
					if err != nil {
						done <- err
						return
					}
				}
				done <- nil
			}()
			return done
		}

		fromMemory, fromStore := e.metric("patientpass_ws_replays_from_memory_total"), e.metric("patientpass_ws_replays_from_store_total")
		recent, recentRec := r.sc.ws(e.base, "")
		after := head - 10
		during := posting(20)
		subscribe(t, recent, r.id, after)
		if err := <-during; err != nil {
			t.Fatal(err)
		}
		head += 20
		recentRec.waitSeq(t, topic, head)
		if got := recentRec.seqs(topic); !contiguous(got, after+1, head) {
			t.Fatalf("resumed after %d, got seqs %v; want %d to %d once each", after, got, after+1, head)
		}
		if got := e.metric("patientpass_ws_replays_from_memory_total"); got <= fromMemory {
			t.Errorf("replays from memory went from %v to %v: the recent events were not replayed from the room", fromMemory, got)
		}
		if got := e.metric("patientpass_ws_replays_from_store_total"); got != fromStore {
			t.Errorf("replays from the store went from %v to %v for a resume inside the room's memory", fromStore, got)
		}

		// Seq 1 is long out of the room's memory: the store replays it.
		old, oldRec := r.sc.ws(e.base, "")
		during = posting(20)
		subscribe(t, old, r.id, 0)
		if err := <-during; err != nil {
			t.Fatal(err)
		}
		head += 20
		oldRec.waitSeq(t, topic, head)
		if got := oldRec.seqs(topic); !contiguous(got, 1, head) {
			t.Fatalf("resumed after 0, got seqs %v; want 1 to %d once each", got, head)
		}
		if got := e.metric("patientpass_ws_replays_from_store_total"); got <= fromStore {
			t.Errorf("replays from the store stayed at %v for a resume older than the room's memory", got)
		}
		liveRec.waitSeq(t, topic, head)
		if got := liveRec.seqs(topic); !contiguous(got, 1, head) {
			t.Fatalf("the live socket got seqs %v; want 1 to %d once each", got, head)
		}
	})
}
