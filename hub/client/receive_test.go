package client

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"patientpass/hub/wire"
)

func eventFrame(topic string, seq int64) []byte {
	return []byte(fmt.Sprintf(`{"type":"event","topic":%q,"seq":%d,"event":{"seq":%d,"kind":"message"}}`, topic, seq, seq))
}

func TestEventsCountDuplicatesAndGaps(t *testing.T) {
	var got []int64
	c := newTestClient(t, Options{OnEvent: func(e Event) { got = append(got, e.Seq) }})
	const topic = "referral:r1"
	if _, err := c.addSubscription(topic, 2); err != nil {
		t.Fatal(err)
	}
	// 3 follows the subscription's after; 3 again is a duplicate; 5 skips
	// 4; 4 then arrives late and is a duplicate too (5 is already seen); 1
	// is older than the after.
	seqs := []int64{3, 3, 5, 4, 6, 1}
	for _, seq := range seqs {
		c.handleFrame(eventFrame(topic, seq), time.Now())
	}
	want := Stats{Events: 6, Duplicates: 3, Gaps: 1}
	if s := c.Stats(); s != want {
		t.Errorf("Stats = %+v, want %+v", s, want)
	}
	if !reflect.DeepEqual(got, seqs) {
		t.Errorf("OnEvent saw %v, want every event in arrival order %v", got, seqs)
	}
	if last := c.LastSeq(topic); last != 6 {
		t.Errorf("LastSeq = %d, want the highest seq 6", last)
	}
}

func TestEventsOfTopicsNotHeldStillArrive(t *testing.T) {
	var got []Event
	c := newTestClient(t, Options{OnEvent: func(e Event) { got = append(got, e) }})
	at := time.Date(2025, 3, 1, 9, 30, 0, 0, time.UTC)
	c.handleFrame(eventFrame("referral:never", 1), at)
	c.handleFrame(eventFrame("referral:never", 3), at)
	if len(got) != 2 || got[0].Topic != "referral:never" || !got[1].Received.Equal(at) {
		t.Fatalf("OnEvent saw %+v, want both events with their receive time", got)
	}
	if string(got[0].Event) != `{"seq":1,"kind":"message"}` {
		t.Errorf("Event = %s, want the stored event as sent", got[0].Event)
	}
	if s := c.Stats(); s.Events != 2 || s.Gaps != 1 {
		t.Errorf("Stats = %+v, want 2 events and the skipped seq 2 as a gap", s)
	}
}

func TestUnsubscribeKeepsCountingLateEvents(t *testing.T) {
	c := newTestClient(t, Options{})
	const topic = "referral:r1"
	if _, err := c.addSubscription(topic, 0); err != nil {
		t.Fatal(err)
	}
	c.handleFrame(eventFrame(topic, 1), time.Now())
	if err := c.Unsubscribe(context.Background(), topic); err != nil {
		t.Fatal(err)
	}
	c.handleFrame(eventFrame(topic, 2), time.Now())
	if s := c.Stats(); s.Events != 2 || s.Duplicates != 0 || s.Gaps != 0 {
		t.Errorf("Stats = %+v, want an in-order event after unsubscribing to count as normal", s)
	}
}

func TestMalformedFramesAreCounted(t *testing.T) {
	var frames int
	c := newTestClient(t, Options{
		OnEvent: func(Event) { frames++ },
		OnFrame: func(wire.ServerFrame) { frames++ },
	})
	for _, data := range []string{`not json`, `{}`, `[1,2]`, `{"type":"event","seq":"one"}`} {
		c.handleFrame([]byte(data), time.Now())
	}
	if s := c.Stats(); s.Malformed != 4 || s.Events != 0 {
		t.Errorf("Stats = %+v, want 4 malformed frames", s)
	}
	if frames != 0 {
		t.Errorf("callbacks saw %d malformed frames, want none", frames)
	}
}

func TestSubscribeIsAnsweredBySubscribed(t *testing.T) {
	c := newTestClient(t, Options{})
	const topic = "referral:r1"
	sub, err := c.addSubscription(topic, 7)
	if err != nil {
		t.Fatal(err)
	}
	if last := c.LastSeq(topic); last != 7 {
		t.Errorf("LastSeq before any event = %d, want the after 7", last)
	}
	c.handleFrame([]byte(`{"type":"subscribed","topic":"referral:r1","head":12}`), time.Now())
	head, err := c.awaitSubscription(context.Background(), topic, sub)
	if err != nil || head != 12 {
		t.Errorf("Subscribe = %d, %v, want head 12", head, err)
	}
	if _, err := c.Subscribe(context.Background(), topic, 0); err == nil {
		t.Error("second Subscribe to a held topic succeeded, want it refused")
	}
}

func TestRefusedSubscriptionIsForgotten(t *testing.T) {
	var others []wire.ServerFrame
	c := newTestClient(t, Options{OnFrame: func(f wire.ServerFrame) { others = append(others, f) }})
	const topic = "referral:r1"
	sub, err := c.addSubscription(topic, 0)
	if err != nil {
		t.Fatal(err)
	}
	c.handleFrame([]byte(`{"type":"error","topic":"referral:r1","code":"forbidden","message":"not in this room"}`), time.Now())
	_, err = c.awaitSubscription(context.Background(), topic, sub)
	var refusal *ServerError
	if !errors.As(err, &refusal) || refusal.Code != "forbidden" || refusal.Topic != topic {
		t.Fatalf("Subscribe = %v, want a forbidden *ServerError naming the topic", err)
	}
	if len(others) != 0 {
		t.Errorf("OnFrame saw %v, want the refusal claimed by Subscribe", others)
	}
	c.mu.Lock()
	frames := c.resubscribeFramesLocked(1)
	c.mu.Unlock()
	if len(frames) != 0 {
		t.Errorf("a refused topic would be resubscribed: %s", frames)
	}
	if _, err := c.addSubscription(topic, 0); err != nil {
		t.Errorf("subscribing again after a refusal: %v", err)
	}
}

func TestRefusedResubscriptionIsForgottenAndReported(t *testing.T) {
	var others []wire.ServerFrame
	c := newTestClient(t, Options{OnFrame: func(f wire.ServerFrame) { others = append(others, f) }})
	const topic = "referral:r1"
	if _, err := c.addSubscription(topic, 0); err != nil {
		t.Fatal(err)
	}
	c.handleFrame([]byte(`{"type":"subscribed","topic":"referral:r1","head":0}`), time.Now())
	// After a reconnect, access has been withdrawn.
	c.handleFrame([]byte(`{"type":"error","topic":"referral:r1","code":"forbidden","message":"not in this room"}`), time.Now())
	if len(others) != 1 || others[0].Code != "forbidden" {
		t.Errorf("OnFrame saw %+v, want the refusal nobody waited for", others)
	}
	c.mu.Lock()
	_, held := c.subs[topic]
	c.mu.Unlock()
	if held {
		t.Error("refused topic still held; it would be retried on every reconnect")
	}
}

func TestSubscribeGivingUpWithdrawsTheSubscription(t *testing.T) {
	c := newTestClient(t, Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Subscribe(ctx, "referral:r1", 0); !errors.Is(err, context.Canceled) {
		t.Fatalf("Subscribe with an ended context: %v, want context.Canceled", err)
	}
	if _, err := c.addSubscription("referral:r1", 0); err != nil {
		t.Errorf("topic still held after Subscribe gave up: %v", err)
	}
}

func TestUnsubscribeFailsAWaitingSubscribe(t *testing.T) {
	c := newTestClient(t, Options{})
	sub, err := c.addSubscription("referral:r1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Unsubscribe(context.Background(), "referral:r1"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.awaitSubscription(context.Background(), "referral:r1", sub); !errors.Is(err, errUnsubscribed) {
		t.Errorf("waiting Subscribe after Unsubscribe: %v, want errUnsubscribed", err)
	}
}

func TestResubscribeResumesFromTheLastSeqOncePerConnection(t *testing.T) {
	c := newTestClient(t, Options{})
	for topic, after := range map[string]int64{"referral:a": 3, "referral:b": 0} {
		if _, err := c.addSubscription(topic, after); err != nil {
			t.Fatal(err)
		}
	}
	c.handleFrame(eventFrame("referral:a", 4), time.Now())
	c.handleFrame(eventFrame("referral:a", 5), time.Now())

	c.mu.Lock()
	first := c.resubscribeFramesLocked(1)
	again := c.resubscribeFramesLocked(1)
	next := c.resubscribeFramesLocked(2)
	c.mu.Unlock()

	if got, want := decodeAll(t, first), map[string]int64{"referral:a": 5, "referral:b": 0}; !reflect.DeepEqual(got, want) {
		t.Errorf("resubscribed %v, want %v", got, want)
	}
	if len(again) != 0 {
		t.Errorf("resubscribed twice on one connection: %s", again)
	}
	if len(next) != 2 {
		t.Errorf("resubscribed %d topics on the next connection, want 2", len(next))
	}
}

// decodeAll checks that every frame is one the server accepts and returns
// the after of each subscribe frame by topic.
func decodeAll(t *testing.T, frames [][]byte) map[string]int64 {
	t.Helper()
	afters := make(map[string]int64)
	for _, data := range frames {
		f, err := wire.DecodeClientFrame(data)
		if err != nil {
			t.Fatalf("server would refuse %s: %v", data, err)
		}
		if f.Type != wire.TypeSubscribe || f.After == nil {
			t.Fatalf("frame %s is not a subscribe with an after", data)
		}
		afters[f.Topic] = *f.After
	}
	return afters
}

func TestSendIsAnsweredByItsAck(t *testing.T) {
	c := newTestClient(t, Options{})
	cmd, ref, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Referral: "r1", Body: "bed 4 free"})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := hex.DecodeString(ref); err != nil || len(b) != 16 {
		t.Errorf("ref %q is not 16 random bytes in hex", ref)
	}
	if f, err := wire.DecodeClientFrame(cmd.frame); err != nil || f.Ref != ref {
		t.Errorf("frame %s: decoded ref %q, %v; want a valid frame carrying ref %q", cmd.frame, f.Ref, err, ref)
	}
	c.handleFrame([]byte(`{"type":"ack","ref":"`+ref+`","referral":"r1","seq":9}`), time.Now())
	ack, err := c.awaitCommand(context.Background(), ref, cmd)
	if want := (Ack{Ref: ref, Referral: "r1", Seq: 9}); err != nil || ack != want {
		t.Errorf("Send = %+v, %v, want %+v", ack, err, want)
	}
}

func TestSendIsAnsweredByItsRefusal(t *testing.T) {
	c := newTestClient(t, Options{})
	text := "new plan"
	base := int64(2)
	cmd, ref, err := c.addCommand(wire.ClientFrame{Type: wire.TypePlanEdit, Ref: "edit-1", Referral: "r1", Section: "plan", BaseRevision: &base, Text: &text})
	if err != nil {
		t.Fatal(err)
	}
	c.handleFrame([]byte(`{"type":"error","ref":"edit-1","code":"conflict","message":"edited meanwhile","current":{"revision":3,"text":"x"}}`), time.Now())
	_, err = c.awaitCommand(context.Background(), ref, cmd)
	var refusal *ServerError
	if !errors.As(err, &refusal) || refusal.Code != "conflict" || refusal.Ref != "edit-1" || string(refusal.Current) != `{"revision":3,"text":"x"}` {
		t.Errorf("Send = %v, want the conflict with the current section", err)
	}
}

func TestUnansweredCommandsAreResentInOrderWithTheirRefs(t *testing.T) {
	c := newTestClient(t, Options{})
	var cmds []*command
	for i := range 3 {
		cmd, _, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Referral: "r1", Body: fmt.Sprint("message ", i)})
		if err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	second, _ := wire.DecodeClientFrame(cmds[1].frame)
	c.handleFrame([]byte(`{"type":"ack","ref":"`+second.Ref+`","referral":"r1","seq":1}`), time.Now())

	c.mu.Lock()
	first := c.resendFramesLocked(1)
	again := c.resendFramesLocked(1)
	c.mu.Unlock()

	want := [][]byte{cmds[0].frame, cmds[2].frame}
	if !reflect.DeepEqual(first, want) {
		t.Errorf("re-sent %s, want the unanswered frames byte for byte, in order: %s", first, want)
	}
	if len(again) != 0 {
		t.Errorf("re-sent twice on one connection: %s", again)
	}
}

func TestAckAfterSendGaveUpGoesToOnFrame(t *testing.T) {
	var others []wire.ServerFrame
	c := newTestClient(t, Options{OnFrame: func(f wire.ServerFrame) { others = append(others, f) }})
	cmd, ref, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Referral: "r1", Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.awaitCommand(ctx, ref, cmd); !errors.Is(err, context.Canceled) {
		t.Fatalf("Send with an ended context: %v, want context.Canceled", err)
	}
	c.handleFrame([]byte(`{"type":"ack","ref":"`+ref+`","referral":"r1","seq":3}`), time.Now())
	if len(others) != 1 || others[0].Type != wire.TypeAck || others[0].Ref != ref {
		t.Errorf("OnFrame saw %+v, want the late ack", others)
	}
}

func TestAnswerThatRacesTheContextWins(t *testing.T) {
	c := newTestClient(t, Options{})
	cmd, ref, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Referral: "r1", Body: "hello"})
	if err != nil {
		t.Fatal(err)
	}
	c.handleFrame([]byte(`{"type":"ack","ref":"`+ref+`","referral":"r1","seq":3}`), time.Now())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Whichever case select picks, a committed command reports its ack.
	for range 20 {
		if ack, err := c.awaitCommand(ctx, ref, cmd); err != nil || ack.Seq != 3 {
			t.Fatalf("Send = %+v, %v, want the ack that arrived", ack, err)
		}
	}
}

func TestSendRefusesWhatIsNotACommand(t *testing.T) {
	c := newTestClient(t, Options{})
	for _, typ := range []string{wire.TypeSubscribe, wire.TypeTyping, wire.TypeRead, ""} {
		if _, err := c.Send(context.Background(), wire.ClientFrame{Type: typ, Referral: "r1"}); err == nil {
			t.Errorf("Send of a %q frame succeeded, want it refused", typ)
		}
	}
	if _, _, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Ref: "same", Referral: "r1", Body: "a"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.addCommand(wire.ClientFrame{Type: wire.TypeMessage, Ref: "same", Referral: "r1", Body: "b"}); err == nil {
		t.Error("a second command with a waiting ref was accepted")
	}
}

func TestFramesNobodyWaitsForGoToOnFrame(t *testing.T) {
	var others []string
	c := newTestClient(t, Options{OnFrame: func(f wire.ServerFrame) { others = append(others, f.Type) }})
	frames := []string{
		`{"type":"presence","topic":"referral:r1","users":[{"id":"u1","name":"A"}]}`,
		`{"type":"typing","topic":"referral:r1","user":{"id":"u1","name":"A"}}`,
		`{"type":"snapshot","topic":"wallboard","data":{"beds":3}}`,
		`{"type":"update","topic":"user","data":{}}`,
		`{"type":"ack","ref":"unknown","seq":1}`,
		`{"type":"error","referral":"r1","code":"forbidden","message":"no"}`,
		`{"type":"subscribed","topic":"referral:unknown","head":4}`,
		`{"type":"something_new"}`,
	}
	for _, data := range frames {
		c.handleFrame([]byte(data), time.Now())
	}
	want := []string{"presence", "typing", "snapshot", "update", "ack", "error", "subscribed", "something_new"}
	if !reflect.DeepEqual(others, want) {
		t.Errorf("OnFrame saw %v, want %v", others, want)
	}
}

func TestFireAndForgetFramesAreValid(t *testing.T) {
	seq := int64(4)
	for _, f := range []wire.ClientFrame{
		{Type: wire.TypeTyping, Referral: "r1"},
		{Type: wire.TypeRead, Referral: "r1", Seq: &seq},
		{Type: wire.TypeUnsubscribe, Topic: "referral:r1"},
	} {
		data := encode(f)
		if _, err := wire.DecodeClientFrame(data); err != nil {
			t.Errorf("server would refuse %s: %v", data, err)
		}
	}
	var f map[string]json.RawMessage
	if err := json.Unmarshal(subscribeFrame("referral:r1", 0), &f); err != nil || string(f["after"]) != "0" {
		t.Errorf("subscribe from 0 = %v, want after:0 sent explicitly", f)
	}
}
