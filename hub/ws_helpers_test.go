package hub_test

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
	"patientpass/rooms"
)

// waitFor bounds every wait in the WebSocket tests: long enough for a slow
// CI machine, short enough that a lost event fails the test rather than
// hanging it.
const waitFor = 20 * time.Second

// recorder keeps what a WebSocket client received.
type recorder struct {
	mu     sync.Mutex
	events map[string][]wsclient.Event
	frames []wire.ServerFrame
	states []wsclient.State
	change chan struct{}
}

func newRecorder() *recorder {
	return &recorder{events: map[string][]wsclient.Event{}, change: make(chan struct{}, 1)}
}

func (r *recorder) notify() {
	select {
	case r.change <- struct{}{}:
	default:
	}
}

func (r *recorder) options(o *wsclient.Options) {
	o.OnEvent = func(ev wsclient.Event) {
		r.mu.Lock()
		r.events[ev.Topic] = append(r.events[ev.Topic], ev)
		r.mu.Unlock()
		r.notify()
	}
	o.OnFrame = func(f wire.ServerFrame) {
		r.mu.Lock()
		r.frames = append(r.frames, f)
		r.mu.Unlock()
		r.notify()
	}
	o.OnState = func(s wsclient.State) {
		r.mu.Lock()
		r.states = append(r.states, s)
		r.mu.Unlock()
		r.notify()
	}
}

// wait waits until cond holds over what was received, or fails.
func (r *recorder) wait(t *testing.T, what string, cond func(r *recorder) bool) {
	t.Helper()
	deadline := time.After(waitFor)
	for {
		r.mu.Lock()
		ok := cond(r)
		r.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-r.change:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("waited %s for %s; have %d topics of events, frames %v, states %v", waitFor, what, len(r.events), r.frames, r.states)
		}
	}
}

// seen waits up to d for an event on topic with a seq of at least seq, and
// reports whether one came. Unlike waitSeq it does not fail the test, so
// a test's own goroutines may call it.
func (r *recorder) seen(topic string, seq int64, d time.Duration) bool {
	deadline := time.After(d)
	for {
		r.mu.Lock()
		evs := r.events[topic]
		ok := len(evs) > 0 && evs[len(evs)-1].Seq >= seq
		r.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-r.change:
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			return false
		}
	}
}

// seqs returns the seqs received on topic, in order.
func (r *recorder) seqs(topic string) []int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s []int64
	for _, ev := range r.events[topic] {
		s = append(s, ev.Seq)
	}
	return s
}

// waitSeq waits until the last event received on topic has seq head.
func (r *recorder) waitSeq(t *testing.T, topic string, head int64) {
	t.Helper()
	r.wait(t, fmt.Sprintf("seq %d on %s", head, topic), func(r *recorder) bool {
		evs := r.events[topic]
		return len(evs) > 0 && evs[len(evs)-1].Seq >= head
	})
}

// waitPresence waits until the latest presence frame lists exactly the
// users ids, in any order.
func (r *recorder) waitPresence(t *testing.T, ids ...string) {
	t.Helper()
	want := slices.Sorted(slices.Values(ids))
	r.wait(t, fmt.Sprintf("presence of %v", ids), func(r *recorder) bool {
		for i := len(r.frames) - 1; i >= 0; i-- {
			if r.frames[i].Type == wire.TypePresence {
				var got []string
				for _, u := range r.frames[i].Users {
					got = append(got, u.ID)
				}
				slices.Sort(got)
				return slices.Equal(got, want)
			}
		}
		return false
	})
}

// frameOf returns the first frame of type typ matching match, if any.
func (r *recorder) frameOf(typ string, match func(wire.ServerFrame) bool) (wire.ServerFrame, bool) {
	for _, f := range r.frames {
		if f.Type == typ && (match == nil || match(f)) {
			return f, true
		}
	}
	return wire.ServerFrame{}, false
}

// cookies returns the client's cookies for the server.
func (c *client) cookies() []*http.Cookie {
	u, _ := url.Parse(c.e.base)
	return c.http.Jar.Cookies(u)
}

// ws connects a WebSocket client as the logged-in browser c, to the node at
// base (the env's own server when empty), and closes it when the test ends.
func (c *client) ws(origin, base string) (*wsclient.Client, *recorder) {
	c.e.t.Helper()
	if base == "" {
		base = c.e.base
	}
	rec := newRecorder()
	opts := wsclient.Options{URL: base, Origin: origin, Cookies: c.cookies(), MinBackoff: 20 * time.Millisecond, MaxBackoff: 500 * time.Millisecond}
	rec.options(&opts)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	wc, err := wsclient.Dial(ctx, opts)
	if err != nil {
		c.e.t.Fatalf("dial %s: %v", base, err)
	}
	c.e.t.Cleanup(func() {
		_ = wc.Close()
		<-wc.Done()
	})
	return wc, rec
}

// subscribe subscribes wc to a referral's room and returns the head.
func subscribe(t *testing.T, wc *wsclient.Client, referralID string, after int64) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	head, err := wc.Subscribe(ctx, wire.ReferralTopic(referralID), after)
	if err != nil {
		t.Fatalf("subscribe to %s after %d: %v", referralID, after, err)
	}
	return head
}

// post sends a message over the socket and returns its ack.
func post(t *testing.T, wc *wsclient.Client, referralID, body string) wsclient.Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	ack, err := wc.Message(ctx, referralID, body)
	if err != nil {
		t.Fatalf("post to %s: %v", referralID, err)
	}
	return ack
}

// rawDial opens a WebSocket with coder/websocket directly, for tests of
// what the protocol refuses.
func (c *client) rawDial(origin string) (*websocket.Conn, *http.Response, error) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	var parts []string
	for _, ck := range c.cookies() {
		parts = append(parts, ck.Name+"="+ck.Value)
	}
	if len(parts) > 0 {
		h.Set("Cookie", strings.Join(parts, "; "))
	}
	return websocket.Dial(ctx, c.e.base+"/ws", &websocket.DialOptions{HTTPHeader: h})
}

// room is a submitted referral made by a referring clinician, with a
// specialist of the receiving team; both are logged in.
type room struct {
	id                   string
	referrer, specialist rooms.User
	rc, sc               *client
}

func (e *env) room() room {
	e.t.Helper()
	r := room{referrer: e.user("RJR", rooms.UserActive, rooms.RoleClinician), specialist: e.user("RET", rooms.UserActive, rooms.RoleSpecialist)}
	r.rc, r.sc = e.login(r.referrer.Email), e.login(r.specialist.Email)
	r.id = r.rc.newReferral()
	return r
}

// newReferral creates a submitted referral as the browser c and returns its id.
func (c *client) newReferral() string {
	c.e.t.Helper()
	res := c.do("POST", "/api/referrals", referralBody(rooms.NewID()))
	if res.status != 201 {
		c.e.t.Fatalf("create referral = %d %s", res.status, res.raw)
	}
	return res.body["id"].(string)
}

// metric reads one unlabelled value from the node's metrics, as a scrape
// of its metrics listener would.
func (e *env) metric(name string) float64 {
	e.t.Helper()
	rec := httptest.NewRecorder()
	e.metrics.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	sc := bufio.NewScanner(rec.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				e.t.Fatalf("metric %s = %q", name, v)
			}
			return f
		}
	}
	e.t.Fatalf("metric %s not in /metrics", name)
	return 0
}

// contiguous reports whether seqs are from, from+1, … to.
func contiguous(seqs []int64, from, to int64) bool {
	if int64(len(seqs)) != to-from+1 {
		return false
	}
	for i, s := range seqs {
		if s != from+int64(i) {
			return false
		}
	}
	return true
}
