package hub_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"patientpass/hub/auth"
	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

func TestWSRefusesForeignOriginAndMissingSession(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)

		_, res, err := e.client().rawDial(e.base)
		if err == nil || res == nil || res.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no session: %v, %v; want 401", res, err)
		}
		for _, origin := range []string{"https://evil.example", "", e.base + ".evil.example", strings.Replace(e.base, "http:", "https:", 1)} {
			_, res, err := c.rawDial(origin)
			if err == nil || res == nil || res.StatusCode != http.StatusForbidden {
				t.Fatalf("origin %q: %v, %v; want 403", origin, res, err)
			}
		}
		denied := e.audit(rooms.AuditFilter{ActorID: u.ID, Event: "ws.connect", Outcome: rooms.OutcomeDenied})
		if len(denied) != 4 || denied[0].Detail == "" {
			t.Fatalf("audit of refused origins: %+v; want 4 denied ws.connect entries naming the origin", denied)
		}

		ws, res, err := c.rawDial(e.base)
		if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("own origin: %v, %v; want 101", res, err)
		}
		ws.CloseNow()
	})
}

func TestWSSubscribeReplaysThenGoesLive(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rm := e.room() // seq 1 created, 2 submitted
		referrer, specialist, rc, sc, id := rm.referrer, rm.specialist, rm.rc, rm.sc, rm.id
		for i := range 3 {
			if res := rc.do("POST", "/api/referrals/"+id+"/messages", map[string]any{"ref": "m" + string(rune('a'+i)), "body": "update"}); res.status != 201 {
				t.Fatalf("post = %d %s", res.status, res.raw)
			}
		}

		swc, srec := sc.ws(e.base, "")
		if head := subscribe(t, swc, id, 3); head != 5 {
			t.Fatalf("subscribed head = %d; want 5", head)
		}
		topic := wire.ReferralTopic(id)
		if got := srec.seqs(topic); !contiguous(got, 4, 5) {
			t.Fatalf("replay after 3 = %v; want 4, 5", got)
		}
		var ev rooms.Event
		srec.mu.Lock()
		_ = json.Unmarshal(srec.events[topic][0].Event, &ev)
		srec.mu.Unlock()
		if ev.Kind != rooms.EventMessage || ev.ReferralID != id || ev.Seq != 4 || ev.Author.ID != referrer.ID {
			t.Fatalf("replayed event %+v; want the referrer's message at seq 4", ev)
		}

		rwc, _ := rc.ws(e.base, "")
		ack := post(t, rwc, id, "MRI booked for 14:00")
		if ack.Seq != 6 || ack.Referral != id {
			t.Fatalf("ack %+v; want seq 6", ack)
		}
		srec.waitSeq(t, topic, 6)
		if got := srec.seqs(topic); !contiguous(got, 4, 6) {
			t.Fatalf("events = %v; want 4, 5, 6", got)
		}
		// The same ref again takes effect once and is answered alike.
		again, err := rwc.Send(context.Background(), wire.ClientFrame{Type: wire.TypeMessage, Ref: ack.Ref, Referral: id, Body: "MRI booked for 14:00"})
		if err != nil || again.Seq != 6 {
			t.Fatalf("repeated ref: %+v, %v; want the first ack, seq 6", again, err)
		}
		if r, _ := e.store.Referral(context.Background(), id); r.HeadSeq != 6 {
			t.Fatalf("head after a repeated ref = %d; want 6", r.HeadSeq)
		}
		srec.waitPresence(t, specialist.ID)
		if st := swc.Stats(); st.Duplicates != 0 || st.Gaps != 0 {
			t.Fatalf("stats %+v; want no duplicates or gaps", st)
		}
		if e.metric("patientpass_ws_events_delivered_total") < 3 || e.metric("patientpass_ws_connections") != 2 {
			t.Fatal("metrics do not count the deliveries and connections")
		}
		subs := e.audit(rooms.AuditFilter{ActorID: specialist.ID, Event: "referral.subscribe", Outcome: rooms.OutcomeSuccess})
		if len(subs) != 1 || subs[0].ReferralID != id {
			t.Fatalf("subscription audit %+v; want one entry for the referral", subs)
		}
	})
}

func TestWSCommandsAnswerWithAckOrError(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		rm := e.room()
		sc, id := rm.sc, rm.id
		swc, srec := sc.ws(e.base, "")
		subscribe(t, swc, id, 0)
		ctx := context.Background()

		ack, err := swc.Send(ctx, wire.ClientFrame{Type: wire.TypeTransition, Referral: id, To: "in_triage"})
		if err != nil || ack.Seq != 3 {
			t.Fatalf("transition: %+v, %v; want ack seq 3", ack, err)
		}
		zero, text := int64(0), "Dexamethasone 16 mg"
		if ack, err = swc.Send(ctx, wire.ClientFrame{Type: wire.TypePlanEdit, Referral: id, Section: "imaging", BaseRevision: &zero, Text: &text}); err != nil || ack.Seq != 4 {
			t.Fatalf("plan edit: %+v, %v; want ack seq 4", ack, err)
		}
		_, err = swc.Send(ctx, wire.ClientFrame{Type: wire.TypePlanEdit, Referral: id, Section: "imaging", BaseRevision: &zero, Text: &text})
		var se *wsclient.ServerError
		if !errors.As(err, &se) || se.Code != "conflict" || se.Field != "base_revision" || !strings.Contains(string(se.Current), `"revision":1`) {
			t.Fatalf("stale plan edit: %v; want conflict on base_revision with the current section", err)
		}
		_, err = swc.Send(ctx, wire.ClientFrame{Type: wire.TypeTransition, Referral: id, To: "accepted"})
		if !errors.As(err, &se) || se.Code != "invalid" {
			t.Fatalf("accept without an outcome: %v; want invalid", err)
		}
		if _, err = swc.Message(ctx, id, "   "); !errors.As(err, &se) || se.Code != "invalid" || se.Field != "body" {
			t.Fatalf("blank message: %v; want invalid naming body", err)
		}
		if err := swc.Read(ctx, id, 4); err != nil {
			t.Fatal(err)
		}
		srec.waitSeq(t, wire.ReferralTopic(id), 4)
		waitUntil(t, "the read marker", func() bool {
			res := sc.do("GET", "/api/referrals/"+id, nil)
			return res.body["read_seq"] == 4.0
		})
		if r, _ := e.store.Referral(ctx, id); r.HeadSeq != 4 {
			t.Fatalf("head = %d after refused commands; want 4", r.HeadSeq)
		}
	})
}

// waitUntil polls cond until it holds, or fails.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", waitFor, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestWSFramesForAReferralTheUserCannotSee(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		outsider := e.user("RBL", rooms.UserActive, rooms.RoleClinician)
		rc, oc := e.login(referrer.Email), e.login(outsider.Email)
		id := rc.newReferral()
		owc, orec := oc.ws(e.base, "")
		ctx := context.Background()

		_, err := owc.Subscribe(ctx, wire.ReferralTopic(id), 0)
		var se *wsclient.ServerError
		if !errors.As(err, &se) || se.Code != "not_found" || se.Topic != wire.ReferralTopic(id) {
			t.Fatalf("outsider subscribe: %v; want not_found naming the topic", err)
		}
		if _, err = owc.Message(ctx, id, "let me in"); !errors.As(err, &se) || se.Code != "not_found" {
			t.Fatalf("outsider message: %v; want not_found", err)
		}
		if err := owc.Typing(id); err != nil {
			t.Fatal(err)
		}
		orec.wait(t, "the typing refusal", func(r *recorder) bool {
			_, ok := r.frameOf(wire.TypeError, func(f wire.ServerFrame) bool { return f.Referral == id && f.Code == "not_found" })
			return ok
		})
		// The referrer's own post is not delivered to the outsider.
		rwc, _ := rc.ws(e.base, "")
		post(t, rwc, id, "for the team only")
		if r, _ := e.store.Referral(ctx, id); r.HeadSeq != 3 {
			t.Fatalf("head = %d; the outsider's message must change nothing", r.HeadSeq)
		}
		if st := owc.Stats(); st.Events != 0 {
			t.Fatalf("outsider received %d events", st.Events)
		}
		for _, event := range []string{"referral.subscribe", "referral.message", "referral.typing"} {
			if es := e.audit(rooms.AuditFilter{ActorID: outsider.ID, Event: event, Outcome: rooms.OutcomeDenied}); len(es) != 1 || es[0].ReferralID != id {
				t.Fatalf("audit of the refused %s: %+v; want one denied entry for the referral", event, es)
			}
		}
	})
}

func TestWSRefusesMalformedFrames(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	c := e.login(u.Email)
	ws, _, err := c.rawDial(e.base)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	cases := []struct {
		frame      string
		field, ref string
	}{
		{`{"type":"message","ref":"r1","referral":"x","body":"hi","extra":1}`, "extra", "r1"},
		{`{"type":"subscribe"}`, "topic", ""},
		{`{"type":"message","ref":"r2","referral":"x","body":"hi"} {}`, "", ""},
		{"{\"type\":\"message\",\"ref\":\"r3\",\"referral\":\"x\",\"body\":\"\xff\"}", "", ""},
		{`{"type":"subscribe","topic":"beds:mscc"}`, "topic", ""},
		{`{"type":"subscribe","topic":"referral:x","after":-1}`, "after", ""},
		{`[]`, "", ""},
	}
	for _, tc := range cases {
		if err := ws.Write(ctx, websocket.MessageText, []byte(tc.frame)); err != nil {
			t.Fatal(err)
		}
		_, data, err := ws.Read(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.frame, err)
		}
		var f wire.ServerFrame
		if err := json.Unmarshal(data, &f); err != nil || f.Type != wire.TypeError || f.Field != tc.field || f.Ref != tc.ref || f.Message == "" {
			t.Fatalf("%s → %s; want an error frame naming field %q and ref %q", tc.frame, data, tc.field, tc.ref)
		}
	}
	if err := ws.Write(ctx, websocket.MessageBinary, []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"type":"error"`) {
		t.Fatalf("binary frame → %s, %v; want an error frame", data, err)
	}
	if es := e.audit(rooms.AuditFilter{ActorID: u.ID, Event: "ws.frame", Outcome: rooms.OutcomeInvalid}); len(es) < 5 {
		t.Fatalf("%d refused frames audited; want at least 5", len(es))
	}
	// Larger than the limit: the connection is closed with 1009.
	big := `{"type":"message","ref":"r","referral":"x","body":"` + strings.Repeat("a", wire.MaxFrame) + `"}`
	_ = ws.Write(ctx, websocket.MessageText, []byte(big))
	_, _, err = ws.Read(ctx)
	if websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("oversized frame: %v; want close 1009", err)
	}
}

func TestWSTypingReachesOthersInTheRoom(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	referrer, specialist, rc, sc, id := rm.referrer, rm.specialist, rm.rc, rm.sc, rm.id
	rwc, rrec := rc.ws(e.base, "")
	swc, srec := sc.ws(e.base, "")
	subscribe(t, rwc, id, 0)
	subscribe(t, swc, id, 0)
	rrec.waitPresence(t, referrer.ID, specialist.ID)
	if err := rwc.Typing(id); err != nil {
		t.Fatal(err)
	}
	srec.wait(t, "the referrer typing", func(r *recorder) bool {
		f, ok := r.frameOf(wire.TypeTyping, nil)
		return ok && f.User != nil && f.User.ID == referrer.ID && f.Topic == wire.ReferralTopic(id)
	})
	post(t, rwc, id, "sync point")
	rrec.waitSeq(t, wire.ReferralTopic(id), 3)
	rrec.mu.Lock()
	_, own := rrec.frameOf(wire.TypeTyping, nil)
	rrec.mu.Unlock()
	if own {
		t.Fatal("the typist was shown their own typing")
	}
	// Leaving the room updates the others' presence.
	if err := swc.Unsubscribe(context.Background(), wire.ReferralTopic(id)); err != nil {
		t.Fatal(err)
	}
	rrec.waitPresence(t, referrer.ID)
}

func TestWSSessionEndClosesSockets(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		wc, _ := c.ws(e.base, "")
		if res := c.do("DELETE", "/api/session", nil); res.status != 204 {
			t.Fatalf("logout = %d", res.status)
		}
		select {
		case <-wc.Done():
		case <-time.After(waitFor):
			t.Fatal("socket still open after logout")
		}
		if code := websocket.CloseStatus(wc.Err()); code != wire.CloseSessionEnded {
			t.Fatalf("close after logout: %v; want 4001", wc.Err())
		}

		// Suspension ends every session of the user, sockets included.
		_, admin, secret := e.enrolledAdmin("RJR")
		v := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		vc := e.login(v.Email)
		vwc, _ := vc.ws(e.base, "")
		e.clock.Advance(time.Minute)
		_ = secret
		if res := admin.do("POST", "/api/admin/users/"+v.ID+"/suspend", nil); res.status != 200 {
			t.Fatalf("suspend = %d %s", res.status, res.raw)
		}
		select {
		case <-vwc.Done():
		case <-time.After(waitFor):
			t.Fatal("socket still open after suspension")
		}
		if code := websocket.CloseStatus(vwc.Err()); code != wire.CloseSessionEnded {
			t.Fatalf("close after suspension: %v; want 4001", vwc.Err())
		}
	})
}

func TestWSStalledReaderIsClosedWith4008(t *testing.T) {
	e := newEnvWith(t, openEmbedded(t), func(c *envConfig) {
		c.WS.SendQueueBytes = 64 << 10
		c.WS.WriteTimeout = time.Minute
	})
	rm := e.room()
	referrer, sc, id := rm.referrer, rm.sc, rm.id

	// The stalled reader: a small receive buffer, and nobody reads it.
	dialer := &net.Dialer{Control: func(_, _ string, raw syscall.RawConn) error {
		return raw.Control(func(fd uintptr) {
			_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		})
	}}
	h := http.Header{"Origin": {e.base}}
	for _, ck := range sc.cookies() {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	stalled, _, err := websocket.Dial(ctx, e.base+"/ws", &websocket.DialOptions{
		HTTPHeader: h, HTTPClient: &http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.CloseNow()
	if err := stalled.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"referral:`+id+`","after":0}`)); err != nil {
		t.Fatal(err)
	}

	// A healthy subscriber sees every post while the stalled one blocks
	// nothing: the posts all complete.
	hwc, hrec := sc.ws(e.base, "")
	subscribe(t, hwc, id, 0)
	// Posts go straight to the service, four at a time, with large
	// bodies, until the stalled reader's queue overflows. Each worker
	// waits for the healthy subscriber to have its post before the next,
	// so that subscriber never has more than four posts (40 KB) queued and
	// the slow-consumer close counted can only be the stalled reader's: a
	// healthy reader held up by a loaded machine must not stand in for it.
	body := strings.Repeat("x", rooms.MaxMessageLen-10)
	const posts, workers = 2000, 4
	topic := wire.ReferralTopic(id)
	var posted atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := w; i < posts; i += workers {
				if e.metric("patientpass_ws_slow_consumer_closes_total") >= 1 {
					return
				}
				ev, err := e.svc.PostMessage(context.Background(), rooms.Caller{User: referrer}, rooms.PostMessage{Ref: rooms.NewID(), ReferralID: id, Body: body})
				if err != nil {
					t.Error(err)
					return
				}
				posted.Add(1)
				if !hrec.seen(topic, ev.Seq, waitFor) {
					t.Errorf("the healthy subscriber did not get seq %d", ev.Seq)
					return
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if e.metric("patientpass_ws_slow_consumer_closes_total") < 1 {
		t.Fatalf("no slow-consumer close after %d posts", posted.Load())
	}
	t.Logf("the stalled reader was closed after %d posts of %d bytes", posted.Load(), len(body))
	head, _ := e.store.Referral(context.Background(), id)
	hrec.waitSeq(t, wire.ReferralTopic(id), head.HeadSeq)

	// Reading again, the stalled client finds the 4008 close after what
	// was in flight. The wait starts now: the posts before may have taken
	// most of the dial's on a loaded machine.
	readCtx, cancelRead := context.WithTimeout(context.Background(), waitFor)
	defer cancelRead()
	for {
		_, _, err := stalled.Read(readCtx)
		if err != nil {
			if code := websocket.CloseStatus(err); code != wire.CloseTooSlow {
				t.Fatalf("stalled reader ended with %v; want close 4008", err)
			}
			break
		}
	}
	if st := hwc.Stats(); st.Gaps != 0 || st.Duplicates != 0 || st.Reconnects != 0 {
		t.Fatalf("healthy subscriber stats %+v", st)
	}
}

func TestWSShutdownClosesWith1001(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	c := e.login(u.Email)
	_, rec := c.ws(e.base, "")
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := e.hub.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	rec.wait(t, "a 1001 close", func(r *recorder) bool {
		for _, s := range r.states {
			if !s.Connected && s.CloseCode == wire.CloseGoingAway {
				return true
			}
		}
		return false
	})
	if _, res, err := c.rawDial(e.base); err == nil || res == nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after shutdown: %v, %v; want 503", res, err)
	}
	if n := e.metric("patientpass_ws_connections"); n != 0 {
		t.Fatalf("%v connections after shutdown", n)
	}
}

func TestWSIdleSessionClosesOnTheNextFrame(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	rc := e.login(referrer.Email)
	id := rc.newReferral()
	wc, _ := rc.ws(e.base, "")
	e.clock.Advance(auth.IdleTimeout + time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if _, err := wc.Message(ctx, id, "after the session timed out"); err == nil {
		t.Fatal("a message on an idle session was acknowledged")
	}
	<-wc.Done()
	if code := websocket.CloseStatus(wc.Err()); code != wire.CloseSessionEnded {
		t.Fatalf("closed with %v; want 4001", wc.Err())
	}
	if r, _ := e.store.Referral(context.Background(), id); r.HeadSeq != 2 {
		t.Fatalf("head = %d; the message must not have been stored", r.HeadSeq)
	}
}

// A connection that sends nothing is still closed when its session
// times out: its timer reads the session again when its time is up.
func TestWSClosesWhenTheSessionTimesOutWithoutAFrame(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	rc := e.login(referrer.Email)
	id := rc.newReferral()
	// Activity keeps the session to two seconds short of its absolute
	// timeout, which no activity extends.
	for left := auth.AbsoluteTimeout; left > 2*time.Second; {
		step := min(20*time.Minute, left-2*time.Second)
		e.clock.Advance(step)
		left -= step
		wantStatus(t, "GET /api/me", rc.do("GET", "/api/me", nil), 200)
	}
	wc, rec := rc.ws(e.base, "")
	// Subscribed, the connection has been registered and has set its
	// timer for the session's time, two seconds from now.
	subscribe(t, wc, id, 0)
	rec.waitSeq(t, wire.ReferralTopic(id), 2)
	e.clock.Advance(time.Minute)
	select {
	case <-wc.Done():
	case <-time.After(waitFor):
		t.Fatal("the connection of a timed-out session is still open")
	}
	if code := websocket.CloseStatus(wc.Err()); code != wire.CloseSessionEnded {
		t.Fatalf("closed with %v; want 4001", wc.Err())
	}
}

func TestWSClosesAConnectionThatKeepsSendingRefusedFrames(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	c := e.login(u.Email)
	id := c.newReferral()
	ws, _, err := c.rawDial(e.base)
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	// Beyond the head is refused naming after.
	_ = ws.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe","topic":"referral:`+id+`","after":3}`))
	if _, data, err := ws.Read(ctx); err != nil || !strings.Contains(string(data), `"field":"after"`) {
		t.Fatalf("subscribe after the head → %s, %v; want an error naming after", data, err)
	}
	go func() {
		for range 100 {
			if ws.Write(ctx, websocket.MessageText, []byte(`{"type":"nonsense"}`)) != nil {
				return
			}
		}
	}()
	for {
		if _, _, err := ws.Read(ctx); err != nil {
			if websocket.CloseStatus(err) != websocket.StatusPolicyViolation {
				t.Fatalf("ended with %v; want close 1008", err)
			}
			return
		}
	}
}

func TestWSPingClosesAPeerThatDoesNotAnswer(t *testing.T) {
	e := newEnvWith(t, openEmbedded(t), func(c *envConfig) {
		c.WS.PingInterval = 300 * time.Millisecond
	})
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	c := e.login(u.Email)
	id := c.newReferral()
	// The Go client reads all the time, so it answers every ping.
	wc, _ := c.ws(e.base, "")
	// A raw socket nobody reads never answers one.
	mute, _, err := c.rawDial(e.base)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.CloseNow()
	// The node registers a socket just after its handshake, so the count
	// may lag the dial by a moment.
	for wait := time.Now().Add(waitFor); e.metric("patientpass_ws_connections") != 2; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(wait) {
			t.Fatalf("%v connections; want 2", e.metric("patientpass_ws_connections"))
		}
	}
	deadline := time.Now().Add(waitFor)
	for e.metric("patientpass_ws_connections") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the peer that answers no ping is still connected")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// Several pings later the answering client is still there.
	time.Sleep(5 * 300 * time.Millisecond)
	select {
	case <-wc.Done():
		t.Fatalf("the client that answers pings was closed: %v", wc.Err())
	default:
	}
	post(t, wc, id, "still here")
}

func TestWSIdleConnectionHoldsOnlyItsReader(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	rm := e.room()
	const n = 20
	var clients []*wsclient.Client
	var recs []*recorder
	for i := range n {
		c := rm.rc
		if i%2 == 1 {
			c = rm.sc
		}
		wc, rec := c.ws(e.base, "")
		subscribe(t, wc, rm.id, 0)
		clients, recs = append(clients, wc), append(recs, rec)
	}
	// Once everything is written (replays, presence), each connection is
	// one goroutine blocked in a read: the writer has returned.
	deadline := time.Now().Add(waitFor)
	for {
		readers, writers, others := connGoroutines()
		if readers == n && writers == 0 && others == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections hold %d readers, %d writers and %d other goroutines; want %d readers only", n, readers, writers, others, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A writer starts again for the next frame.
	ack := post(t, clients[0], rm.id, "after a quiet spell")
	for _, rec := range recs {
		rec.waitSeq(t, wire.ReferralTopic(rm.id), ack.Seq)
	}
}

// connGoroutines counts the goroutines of this process running a
// connection's reader, its writer, or anything else of a connection.
func connGoroutines() (readers, writers, others int) {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		switch {
		case strings.Contains(g, "patientpass/hub/ws.(*conn).writeLoop("):
			writers++
		case strings.Contains(g, "patientpass/hub/ws.(*conn).run("):
			readers++
		case strings.Contains(g, "patientpass/hub/ws.(*conn)."):
			others++
		}
	}
	return readers, writers, others
}

func TestMetricsAreServedApartWithRuntimeAndProcessCollectors(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	for _, name := range []string{"go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_goroutines"} {
		if v := e.metric(name); v <= 0 {
			t.Errorf("%s = %v; want a positive value", name, v)
		}
	}
	if _, err := os.Stat("/proc/self/status"); err == nil {
		if v := e.metric("process_resident_memory_bytes"); v < 1<<20 {
			t.Errorf("process_resident_memory_bytes = %v; want the process's resident memory", v)
		}
	}
	// Not on the public listener: anyone can reach that one.
	res, err := http.Get(e.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Errorf("GET /metrics on the public listener = %d; want 404", res.StatusCode)
	}
}

func TestWSFrameSentWithTheHandshakeIsRead(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
	c := e.login(u.Email)
	id := c.newReferral()
	addr := strings.TrimPrefix(e.base, "http://")
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitFor))

	// The upgrade request and a subscribe frame in one write: the frame
	// reaches the server with the request, before the 101.
	var req strings.Builder
	fmt.Fprintf(&req, "GET /ws HTTP/1.1\r\nHost: %s\r\nOrigin: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", addr, e.base)
	req.WriteString("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n")
	for _, ck := range c.cookies() {
		fmt.Fprintf(&req, "Cookie: %s=%s\r\n", ck.Name, ck.Value)
	}
	req.WriteString("\r\n")
	payload := []byte(`{"type":"subscribe","topic":"referral:` + id + `","after":0}`)
	mask := [4]byte{1, 2, 3, 4}
	frame := append([]byte{0x81, 0x80 | byte(len(payload))}, mask[:]...)
	for i, b := range payload {
		frame = append(frame, b^mask[i%4])
	}
	if _, err := nc.Write(append([]byte(req.String()), frame...)); err != nil {
		t.Fatal(err)
	}

	br := bufio.NewReader(nc)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v, %v; want 101", res, err)
	}
	for {
		var head [2]byte
		if _, err := io.ReadFull(br, head[:]); err != nil {
			t.Fatalf("no subscribed frame for the frame sent with the handshake: %v", err)
		}
		n := int(head[1] & 0x7f)
		if n == 126 {
			var ext [2]byte
			if _, err := io.ReadFull(br, ext[:]); err != nil {
				t.Fatal(err)
			}
			n = int(ext[0])<<8 | int(ext[1])
		}
		data := make([]byte, n)
		if _, err := io.ReadFull(br, data); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"type":"subscribed"`) {
			return
		}
	}
}
