package hub_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"patientpass/hub/broker/redisbroker/redistest"
	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// readFrame reads one server frame from a raw socket.
func readFrame(ctx context.Context, ws *websocket.Conn) (wire.ServerFrame, error) {
	_, data, err := ws.Read(ctx)
	if err != nil {
		return wire.ServerFrame{}, err
	}
	var f wire.ServerFrame
	if err := json.Unmarshal(data, &f); err != nil {
		return wire.ServerFrame{}, fmt.Errorf("frame %q: %w", data, err)
	}
	return f, nil
}

// waitClosed waits until the client has stopped for good and returns its
// close code.
func waitClosed(t *testing.T, what string, wc *wsclient.Client) websocket.StatusCode {
	t.Helper()
	select {
	case <-wc.Done():
	case <-time.After(waitFor):
		t.Fatalf("%s: the socket is still open", what)
	}
	return websocket.CloseStatus(wc.Err())
}

// messageEvents returns the room's stored message events by seq.
func messageEvents(t *testing.T, e *env, referralID string) map[int64]rooms.MessageBody {
	t.Helper()
	evs, err := e.svc.RoomEvents(context.Background(), referralID, 0, 100000)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]rooms.MessageBody{}
	for _, ev := range evs {
		if ev.Kind != rooms.EventMessage {
			continue
		}
		var b rooms.MessageBody
		if err := json.Unmarshal(ev.Body, &b); err != nil {
			t.Fatalf("message body %s: %v", ev.Body, err)
		}
		out[ev.Seq] = b
	}
	return out
}

// --- 3. A session that ends takes its sockets with it. ---

func TestWSLoginAgainInTheSameBrowserClosesTheOldSessionsSocket(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rm := e.room()
		sc, id := rm.sc, rm.id
		wc, _ := sc.ws(e.base, "")
		subscribe(t, wc, id, 0)
		raw, _, err := sc.rawDial(e.base)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.CloseNow()
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if err := raw.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"referral:`+id+`","after":0}`)); err != nil {
			t.Fatal(err)
		}
		for {
			f, err := readFrame(ctx, raw)
			if err != nil {
				t.Fatalf("raw subscribe: %v", err)
			}
			if f.Type == wire.TypeSubscribed {
				break
			}
		}
		head := func() int64 {
			r, err := e.store.Referral(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			return r.HeadSeq
		}
		before := head()

		// The same browser (same cookie jar) logs in again.
		if res := sc.do("POST", "/api/session", map[string]any{"email": rm.specialist.Email, "password": testPassword}); res.status != 200 {
			t.Fatalf("login again = %d %s", res.status, res.raw)
		}
		// A command sent on the old session's socket once its session has
		// ended is neither acknowledged nor executed.
		_ = raw.Write(ctx, websocket.MessageText, []byte(`{"type":"message","ref":"after-login","referral":"`+id+`","body":"on a dead session"}`))
		if code := waitClosed(t, "after logging in again", wc); code != wire.CloseSessionEnded {
			t.Fatalf("old session's socket closed with %v; want 4001", wc.Err())
		}
		for {
			f, err := readFrame(ctx, raw)
			if err != nil {
				if code := websocket.CloseStatus(err); code != wire.CloseSessionEnded {
					t.Fatalf("raw socket of the old session ended with %v; want close 4001", err)
				}
				break
			}
			if f.Type == wire.TypeAck {
				t.Fatalf("the old session's socket acknowledged %+v", f)
			}
		}
		if got := head(); got != before {
			t.Fatalf("head %d → %d: a command on the ended session was executed", before, got)
		}

		// The new session works.
		again, _ := sc.ws(e.base, "")
		if ack := post(t, again, id, "on the new session"); ack.Seq != before+1 {
			t.Fatalf("ack on the new session %+v; want seq %d", ack, before+1)
		}
	})
}

func TestClusterLoginAgainOnOneNodeClosesTheOldSocketOnTheOther(t *testing.T) {
	cl := newCluster(t, 2, redistest.Client(t))
	a := cl.nodes[0]
	rm := a.room()
	onB, _ := cl.ws(rm.sc, 1)
	subscribe(t, onB, rm.id, 0)
	// rm.sc's requests go to node A.
	if res := rm.sc.do("POST", "/api/session", map[string]any{"email": rm.specialist.Email, "password": testPassword}); res.status != 200 {
		t.Fatalf("login again on A = %d %s", res.status, res.raw)
	}
	if code := waitClosed(t, "node B after logging in again on A", onB); code != wire.CloseSessionEnded {
		t.Fatalf("node B closed with %v; want 4001", onB.Err())
	}
}

func TestWSEndingAnotherSessionClosesItsSocketsOnly(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	here, there := e.login(u.Email), e.login(u.Email)
	id := here.newReferral()
	hereWS, _ := here.ws(e.base, "")
	thereWS, _ := there.ws(e.base, "")
	subscribe(t, thereWS, id, 0)

	var elsewhere string
	for _, s := range here.do("GET", "/api/me/sessions", nil).body["sessions"].([]any) {
		if m := s.(map[string]any); m["current"] != true {
			elsewhere = m["id"].(string)
		}
	}
	if res := here.do("DELETE", "/api/me/sessions/"+elsewhere, nil); res.status != 204 {
		t.Fatalf("end the other session = %d %s", res.status, res.raw)
	}
	if code := waitClosed(t, "the ended session", thereWS); code != wire.CloseSessionEnded {
		t.Fatalf("the ended session's socket closed with %v; want 4001", thereWS.Err())
	}
	// The session that ended the other keeps its socket.
	post(t, hereWS, id, "still connected")
	select {
	case <-hereWS.Done():
		t.Fatalf("the current session's socket was closed: %v", hereWS.Err())
	default:
	}
}

// --- 9. Rate limits. ---

func TestWSRateLimitAnswersEveryFrameAndLosesNothingAcknowledged(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	id := rm.id
	ws, _, err := rm.sc.rawDial(e.base)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	const n = 500
	type answer struct {
		ack bool
		seq int64
	}
	answers := map[string]answer{}
	var readErr error
	var last time.Time
	read := make(chan struct{})
	go func() {
		defer close(read)
		for len(answers) < n {
			f, err := readFrame(ctx, ws)
			if err != nil {
				readErr = err
				return
			}
			last = time.Now()
			switch {
			case f.Type == wire.TypeAck:
			case f.Type == wire.TypeError && f.Code == string(rooms.CodeRateLimited):
			default:
				readErr = fmt.Errorf("unexpected frame %+v", f)
				return
			}
			if _, dup := answers[f.Ref]; dup {
				readErr = fmt.Errorf("ref %q answered twice", f.Ref)
				return
			}
			answers[f.Ref] = answer{ack: f.Type == wire.TypeAck, seq: f.Seq}
		}
	}()
	start := time.Now()
	for i := range n {
		frame := fmt.Sprintf(`{"type":"message","ref":"flood-%03d","referral":%q,"body":"flood %03d"}`, i, id, i)
		if err := ws.Write(ctx, websocket.MessageText, []byte(frame)); err != nil {
			t.Fatalf("write frame %d: %v", i, err)
		}
	}
	<-read
	if readErr != nil {
		t.Fatalf("after %d answers: %v", len(answers), readErr)
	}
	elapsed := last.Sub(start)

	acks, limited := 0, 0
	for ref, a := range answers {
		if !strings.HasPrefix(ref, "flood-") {
			t.Fatalf("answer for ref %q, which was never sent", ref)
		}
		if a.ack {
			acks++
		} else {
			limited++
		}
	}
	// The bucket starts full (the burst) and refills at the rate; nothing
	// can be acknowledged beyond that over the time the flood took.
	const rate, burst = 50, 100
	bound := burst + int(math.Ceil(rate*elapsed.Seconds())) + 1
	t.Logf("%d acks, %d rate_limited in %v (bound %d)", acks, limited, elapsed, bound)
	if acks+limited != n {
		t.Fatalf("%d acks + %d rate_limited; want every one of %d frames answered", acks, limited, n)
	}
	if acks < burst || acks > bound {
		t.Fatalf("%d acks; want between the burst (%d) and burst + rate×%v = %d", acks, burst, elapsed, bound)
	}
	// A server slower than the rate (a loaded machine: each command is a
	// commit) reads the frames no faster than they are allowed, and none is
	// refused; the bound above is the limit either way.
	if bound < n && limited == 0 {
		t.Fatalf("nothing was rate limited, though %d frames came faster than the rate allows (%d)", n, bound)
	}

	// Every acknowledged command is stored, with its own body; nothing
	// refused is.
	stored := messageEvents(t, e, id)
	if len(stored) != acks {
		t.Fatalf("%d messages stored; want the %d acknowledged", len(stored), acks)
	}
	for ref, a := range answers {
		if !a.ack {
			continue
		}
		want := "flood " + strings.TrimPrefix(ref, "flood-")
		if b, ok := stored[a.seq]; !ok || b.Body != want {
			t.Fatalf("ack of %s at seq %d: stored %+v (found %v); want %q", ref, a.seq, b, ok, want)
		}
	}
	if got := testutil.ToFloat64(e.metrics.RateLimitedCommands); got != float64(limited) {
		t.Fatalf("rate_limited commands metric = %v; want %d", got, limited)
	}
	// The refusals are audited, but at most once a second.
	var audited int
	for _, a := range e.audit(rooms.AuditFilter{ActorID: rm.specialist.ID, Event: "ws.frame", Outcome: rooms.OutcomeDenied}) {
		if strings.HasPrefix(a.Detail, "rate_limited") {
			audited++
		}
	}
	least := min(limited, 1) // none to audit when the loaded server was slower than the rate
	if most := int(elapsed/time.Second) + 1; audited < least || audited > most {
		t.Fatalf("%d rate_limited audit entries over %v for %d refusals; want %d to %d", audited, elapsed, limited, least, most)
	}
}

func TestWSClientResendsRateLimitedCommandsUntilEachIsAcknowledgedOnce(t *testing.T) {
	// A slow bucket: the reader takes one frame at a time, so the commands
	// must come faster than a commit takes even under the race detector;
	// 60 at once run far past a burst of 5 refilled at 10 a second.
	e := newEnvWith(t, openEmbedded(t), func(c *envConfig) {
		c.WS.CommandRate, c.WS.CommandBurst = 10, 5
	})
	rm := e.room()
	wc, rec := rm.sc.ws(e.base, "")
	before := len(messageEvents(t, e, rm.id))

	const n = 60
	seqs := make([]int64, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			ack, err := wc.Message(ctx, rm.id, fmt.Sprintf("concurrent %03d", i))
			seqs[i], errs[i] = ack.Seq, err
		})
	}
	wg.Wait()
	seen := map[int64]bool{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if seen[seqs[i]] {
			t.Fatalf("seq %d acknowledged twice", seqs[i])
		}
		seen[seqs[i]] = true
	}
	if got := testutil.ToFloat64(e.metrics.RateLimitedCommands); got == 0 {
		t.Fatal("no command was rate limited; the test shows nothing about re-sending")
	}
	stored := messageEvents(t, e, rm.id)
	bodies := map[string]bool{}
	for _, b := range stored {
		bodies[b.Body] = true
	}
	if len(stored)-before != n || len(bodies) != len(stored) {
		t.Fatalf("%d new messages, %d distinct bodies; want exactly %d, no duplicates", len(stored)-before, len(bodies), n)
	}
	for seq := range seen {
		if _, ok := stored[seq]; !ok {
			t.Fatalf("acknowledged seq %d is not stored", seq)
		}
	}
	if st := wc.Stats(); st.Reconnects != 0 {
		t.Fatalf("the client reconnected %d times", st.Reconnects)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, s := range rec.states {
		if !s.Connected {
			t.Fatalf("the client was disconnected: %+v", s)
		}
	}
}

// dialOutcome opens a raw socket with c's session, subscribes it to the
// referral, and reports whether it was accepted (the subscription went
// live) or refused (an error frame rate_limited, then close 1008).
func dialOutcome(c *client, referralID string) (ws *websocket.Conn, accepted bool, err error) {
	ws, _, err = c.rawDial(c.e.base)
	if err != nil {
		return nil, false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// Refused sockets may already be closing; their write may fail.
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"referral:`+referralID+`","after":0}`))
	f, err := readFrame(ctx, ws)
	for err == nil && (f.Type == wire.TypeEvent || f.Type == wire.TypePresence) {
		f, err = readFrame(ctx, ws)
	}
	switch {
	case err != nil:
		ws.CloseNow()
		return nil, false, fmt.Errorf("first answer: %w", err)
	case f.Type == wire.TypeSubscribed:
		return ws, true, nil
	case f.Type != wire.TypeError || f.Code != string(rooms.CodeRateLimited) || f.Message == "":
		ws.CloseNow()
		return nil, false, fmt.Errorf("first answer %+v; want subscribed, or an error frame rate_limited", f)
	}
	defer ws.CloseNow()
	for {
		if _, err := readFrame(ctx, ws); err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				return nil, false, fmt.Errorf("refused socket ended with %v; want close 1008", err)
			}
			return nil, false, nil
		}
	}
}

func TestWSSocketsPerSessionAreBounded(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	const limit = 16 // ws.Config's default

	var open []*websocket.Conn
	t.Cleanup(func() {
		for _, ws := range open {
			ws.CloseNow()
		}
	})
	for i := range 20 {
		ws, accepted, err := dialOutcome(rm.sc, rm.id)
		if err != nil {
			t.Fatalf("socket %d: %v", i+1, err)
		}
		if accepted != (i < limit) {
			t.Fatalf("socket %d accepted = %v; want the first %d only", i+1, accepted, limit)
		}
		if accepted {
			open = append(open, ws)
		}
	}
	denied := 0
	for _, a := range e.audit(rooms.AuditFilter{ActorID: rm.specialist.ID, Event: "ws.connect", Outcome: rooms.OutcomeDenied}) {
		if strings.Contains(a.Detail, "sockets_per_session") {
			denied++
		}
	}
	if denied != 4 {
		t.Fatalf("%d ws.connect denials naming sockets_per_session; want 4", denied)
	}
	if got := testutil.ToFloat64(e.metrics.RateLimitedSockets); got != 4 {
		t.Fatalf(`patientpass_ws_rate_limited_total{what="sockets"} = %v; want 4`, got)
	}
	// Another session of the same user is counted apart.
	if _, accepted, err := dialOutcome(e.login(rm.specialist.Email), rm.id); err != nil || !accepted {
		t.Fatalf("a socket of another session: accepted %v, %v; want accepted", accepted, err)
	}
	// A socket that closes frees its place.
	open[0].CloseNow()
	open = open[1:]
	waitUntil(t, "the closed socket to be let go", func() bool {
		return e.metric("patientpass_ws_connections") == limit
	})
	ws, accepted, err := dialOutcome(rm.sc, rm.id)
	if err != nil || !accepted {
		t.Fatalf("a socket after one closed: accepted %v, %v; want accepted", accepted, err)
	}
	open = append(open, ws)
}

func TestWSSocketsPerSessionHoldUnderConcurrentDials(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	const dials, limit = 40, 16
	var mu sync.Mutex
	var open []*websocket.Conn
	refused := 0
	var wg sync.WaitGroup
	for range dials {
		wg.Go(func() {
			ws, accepted, err := dialOutcome(rm.sc, rm.id)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if accepted {
				open = append(open, ws)
			} else {
				refused++
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, ws := range open {
			ws.CloseNow()
		}
	})
	if len(open) != limit || refused != dials-limit {
		t.Fatalf("%d accepted, %d refused of %d dialled at once; want exactly %d accepted", len(open), refused, dials, limit)
	}
	if got := testutil.ToFloat64(e.metrics.RateLimitedSockets); got != dials-limit {
		t.Fatalf("sockets refused metric = %v; want %d", got, dials-limit)
	}
	if n := e.metric("patientpass_ws_connections"); n != limit {
		t.Fatalf("%v connections; want %d", n, limit)
	}
}

// --- A plan edit that is large once escaped. ---

// planEdit puts text in the imaging section of the referral's plan over
// REST.
func planEdit(c *client, referralID, text string) response {
	return c.do("PUT", "/api/referrals/"+referralID+"/plan/imaging", map[string]any{"ref": rooms.NewID(), "base_revision": 0, "text": text})
}

func TestWSPlanEditOfMarkupCharactersReachesSubscribersAndTheRoomGoesOn(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rm := e.room() // seq 1 created, 2 submitted
		topic := wire.ReferralTopic(rm.id)
		wc, rec := rm.rc.ws(e.base, "")
		subscribe(t, wc, rm.id, 0)

		// Each '<' is 6 bytes where JSON is encoded escaping HTML.
		text := strings.Repeat("<", rooms.MaxPlanTextLen)
		res := planEdit(rm.sc, rm.id, text)
		if res.status != 200 {
			t.Fatalf("plan edit of %d '<' = %d %s", len(text), res.status, res.raw[:min(len(res.raw), 300)])
		}
		rec.waitSeq(t, topic, 3)
		rec.mu.Lock()
		got := rec.events[topic][len(rec.events[topic])-1].Event
		rec.mu.Unlock()
		var ev rooms.Event
		var body rooms.PlanEditBody
		if err := json.Unmarshal(got, &ev); err != nil || json.Unmarshal(ev.Body, &body) != nil {
			t.Fatalf("plan_edit event %.200s: %v", got, err)
		}
		if ev.Kind != rooms.EventPlanEdit || body.Text != text || len(got) > wire.MaxFrame {
			t.Fatalf("event %s of %d bytes with %d bytes of text; want the plan_edit with the text intact, under %d bytes", ev.Kind, len(got), len(body.Text), wire.MaxFrame)
		}

		// The room goes on: later events arrive in order, on the same
		// connection.
		pc, _ := rm.sc.ws(e.base, "")
		for i := range 3 {
			post(t, pc, rm.id, fmt.Sprintf("after the plan %d", i))
		}
		rec.waitSeq(t, topic, 6)
		if seqs := rec.seqs(topic); !contiguous(seqs, 1, 6) {
			t.Fatalf("seqs %v; want 1…6 in order", seqs)
		}
		if st := wc.Stats(); st.Reconnects != 0 || st.Gaps != 0 || st.Duplicates != 0 {
			t.Fatalf("subscriber stats %+v; want no reconnect, gap or duplicate", st)
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		for _, s := range rec.states {
			if !s.Connected {
				t.Fatalf("the subscriber was disconnected: %+v", s)
			}
		}
	})
}

func TestPlanEditOfFourByteCharactersIsRefusedOverTheByteBudget(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	// 20,000 characters, the most allowed, but 80,000 bytes.
	res := planEdit(rm.sc, rm.id, strings.Repeat("😀", rooms.MaxPlanTextLen))
	wantError(t, "plan edit of 20,000 emoji", res, 400, "invalid", "text")
	if r, _ := e.store.Referral(context.Background(), rm.id); r.HeadSeq != 2 {
		t.Fatalf("head = %d; the refused edit must store nothing", r.HeadSeq)
	}
	// Within the budget it is accepted.
	if res := planEdit(rm.sc, rm.id, strings.Repeat("😀", rooms.MaxPlanTextBytes/4-2)); res.status != 200 {
		t.Fatalf("plan edit of %d emoji = %d %s", rooms.MaxPlanTextBytes/4-2, res.status, res.raw[:min(len(res.raw), 300)])
	}
}

func TestWSGoClientSendsAPlanEditOfMarkupCharacters(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	wc, rec := rm.sc.ws(e.base, "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	zero, text := int64(0), strings.Repeat("<", rooms.MaxPlanTextLen)
	ack, err := wc.Send(ctx, wire.ClientFrame{Type: wire.TypePlanEdit, Referral: rm.id, Section: "imaging", BaseRevision: &zero, Text: &text})
	var se *wsclient.ServerError
	if err != nil && !errors.As(err, &se) {
		rec.mu.Lock()
		states := rec.states
		rec.mu.Unlock()
		t.Fatalf("plan edit over the Go client: %v after %d reconnects (states %v); want an ack", err, wc.Stats().Reconnects, states)
	}
	if err != nil || ack.Seq != 3 {
		t.Fatalf("plan edit over the Go client: %+v, %v; want ack seq 3", ack, err)
	}
}

// A flood far past the rate — more rate-limited frames in a second than a
// client re-sending its commands could ever send — closes the socket with
// 1008, rather than costing the node a refusal per frame for ever.
func TestWSFloodOfRateLimitedFramesIsClosed(t *testing.T) {
	e := newEnvWith(t, openEmbedded(t), func(c *envConfig) {
		c.WS.CommandRate, c.WS.CommandBurst = 1, 1
	})
	rm := e.room()
	ws, _, err := rm.sc.rawDial(e.base)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	go func() {
		frame := []byte(`{"type":"typing","referral":"` + rm.id + `"}`)
		for range 5000 {
			if ws.Write(ctx, websocket.MessageText, frame) != nil {
				return
			}
		}
	}()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if code := websocket.CloseStatus(err); code != websocket.StatusPolicyViolation {
				t.Fatalf("ended with %v; want close 1008", err)
			}
			return
		}
	}
}
