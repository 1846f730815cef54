package webhooks_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/webhooks"
	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// verify is the receiver's side of Standard Webhooks, written from the
// specification rather than from Sign: the HMAC-SHA256 of
// "id.timestamp.body" keyed by the secret's base64-decoded bytes, compared
// in constant time with each "v1," signature of the header, and a
// timestamp within five minutes of now.
func verify(secret string, h http.Header, body []byte, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	n, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(n, 0)); d > 5*time.Minute || d < -5*time.Minute {
		return fmt.Errorf("timestamp %s is %v from now", ts, d)
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", id, ts, body)
	want := mac.Sum(nil)
	for _, s := range strings.Fields(sigs) {
		version, sig, _ := strings.Cut(s, ",")
		got, err := base64.StdEncoding.DecodeString(sig)
		if version == "v1" && err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no valid signature")
}

// receiver is an integrator's endpoint on 127.0.0.1 that records, per
// referral, the seqs it accepted, in the order it accepted them.
type receiver struct {
	t      *testing.T
	addr   string
	secret string
	now    func() time.Time

	mu       sync.Mutex
	ln       net.Listener  // nil while down (connections refused)
	status   int           // answered when not 2xx; guarded by mu
	hold     chan struct{} // when set, requests wait on it; guarded by mu
	arrived  chan string   // each request's webhook-id, when set
	got      map[string][]int64
	ids      map[string]string // webhook-id → referral/seq it carried
	bad      []string
	requests int
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{t: t, got: map[string][]int64{}, ids: map[string]string{}, now: time.Now}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.addr = ln.Addr().String()
	r.serve(ln)
	t.Cleanup(r.down)
	return r
}

func (r *receiver) url() string { return "http://" + r.addr + "/hooks" }

func (r *receiver) serve(ln net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(r.handle), ReadHeaderTimeout: 5 * time.Second}
	r.mu.Lock()
	r.ln = ln
	r.mu.Unlock()
	go func() { _ = srv.Serve(ln) }()
}

// down closes the listener: connections are refused until up.
func (r *receiver) down() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln != nil {
		_ = r.ln.Close()
		r.ln = nil
	}
}

// up listens again on the same address.
func (r *receiver) up() {
	r.t.Helper()
	ln, err := net.Listen("tcp", r.addr)
	if err != nil {
		r.t.Fatalf("listen again on %s: %v", r.addr, err)
	}
	r.serve(ln)
}

func (r *receiver) answer(status int) {
	r.mu.Lock()
	r.status = status
	r.mu.Unlock()
}

func (r *receiver) handle(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(req.Body, 1<<20))
	r.mu.Lock()
	r.requests++
	status, hold, arrived := r.status, r.hold, r.arrived
	r.mu.Unlock()
	if arrived != nil {
		arrived <- req.Header.Get("webhook-id")
	}
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return // the sender gave up: nothing was accepted
		}
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	var p struct {
		Type string `json:"type"`
		ID   string `json:"id"`
		Data struct {
			Referral string `json:"referral"`
			Seq      int64  `json:"seq"`
		} `json:"data"`
	}
	err := verify(r.secret, req.Header, body, r.now())
	if err == nil {
		err = json.Unmarshal(body, &p)
	}
	if err == nil && (p.ID != req.Header.Get("webhook-id") || req.Header.Get("content-type") != "application/json") {
		err = errors.New("the body's id or content type does not match")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.bad = append(r.bad, err.Error())
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	r.got[p.Data.Referral] = append(r.got[p.Data.Referral], p.Data.Seq)
	r.ids[p.ID] = fmt.Sprintf("%s/%d", p.Data.Referral, p.Data.Seq)
	w.WriteHeader(http.StatusNoContent)
}

// received returns, per referral, the seqs accepted so far.
func (r *receiver) received() map[string][]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]int64{}
	for k, v := range r.got {
		out[k] = slices.Clone(v)
	}
	return out
}

// rig is a room service over a store, allowed to send webhooks to
// 127.0.0.1, with a referrer at RJR and an admin at RET, which receives
// the MSCC pathway.
type rig struct {
	store           rooms.Store
	svc             *rooms.Service
	referrer, admin rooms.Caller
	n               int
}

func newRig(t *testing.T, store rooms.Store) *rig {
	t.Helper()
	ctx := context.Background()
	allow, err := rooms.ParseWebhookAllow("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r := &rig{store: store, svc: rooms.NewService(rooms.Config{Store: store, Node: "test", Webhooks: allow})}
	for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester"}} {
		if err := r.svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		t.Fatal(err)
	}
	user := func(org string, n int, role rooms.Role) rooms.Caller {
		u, err := r.svc.CreateUser(ctx, rooms.System, rooms.NewUser{Name: fmt.Sprintf("User %d", n), Email: fmt.Sprintf("u%d@example.nhs.uk", n),
			ProfessionalBody: rooms.BodyGMC, RegistrationNumber: fmt.Sprintf("700000%d", n), Organisation: org,
			Roles: []rooms.Role{role}, Status: rooms.UserActive, PasswordHash: "x"})
		if err != nil {
			t.Fatal(err)
		}
		return rooms.Caller{User: u, ClientAddr: "127.0.0.1"}
	}
	r.referrer, r.admin = user("RJR", 1, rooms.RoleClinician), user("RET", 2, rooms.RoleAdmin)
	return r
}

func (r *rig) subscribe(t *testing.T, rec *receiver) rooms.Webhook {
	t.Helper()
	h, err := r.svc.CreateWebhook(context.Background(), r.admin, rooms.NewWebhook{URL: rec.url(),
		Events: []string{"referral.submitted", "referral.message"}})
	if err != nil {
		t.Fatal(err)
	}
	rec.secret = h.Secret
	return h
}

// referral submits a referral and returns its id.
func (r *rig) referral(t *testing.T) string {
	t.Helper()
	r.n++
	ref, err := r.svc.CreateReferral(context.Background(), r.referrer, rooms.NewReferral{
		Ref: fmt.Sprintf("r%d", r.n), PathwayID: "mscc", Priority: rooms.PriorityUrgent, Submit: true,
		Patient: rooms.Patient{NHSNumber: "9434765919", Name: "Test Patient", DateOfBirth: "1950-01-01", Sex: "female"},
		Form: map[string]any{"primary_cancer": "Prostate", "spinal_levels": "T6–T8", "neuro_limb_weakness": false,
			"neuro_bladder_bowel": false, "ambulatory_status": "independent", "steroids_given": true, "spinal_precautions": true},
		ContactPhone: "01244 365000", ConsultantDiscussed: true})
	if err != nil {
		t.Fatal(err)
	}
	return ref.ID
}

// postMessages posts n messages in each referral, the referrals at once.
func (r *rig) postMessages(t *testing.T, referrals []string, n int) {
	t.Helper()
	var wg sync.WaitGroup
	for _, id := range referrals {
		wg.Go(func() {
			for i := range n {
				_, err := r.svc.PostMessage(context.Background(), r.referrer, rooms.PostMessage{Ref: fmt.Sprintf("%s-%d", id, i), ReferralID: id, Body: "update"})
				if err != nil {
					t.Errorf("post: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// fast is a dispatcher configuration whose waits suit a test.
func fast(s rooms.Store, node string) webhooks.Config {
	dest, _ := rooms.ParseWebhookAllow("127.0.0.1")
	return webhooks.Config{Store: s, Destinations: dest, Node: node, Log: zerolog.New(io.Discard),
		Poll: 10 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 80 * time.Millisecond,
		ConnectTimeout: time.Second, Timeout: 2 * time.Second, Lease: 5 * time.Second}
}

// start runs a dispatcher until the test ends, or until the returned stop
// is called, which waits for it.
func start(t *testing.T, cfg webhooks.Config) (*webhooks.Dispatcher, func()) {
	t.Helper()
	d := webhooks.New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	stop := func() { cancel(); <-done }
	t.Cleanup(stop)
	return d, stop
}

// waitFor polls cond until it holds, failing the test after a while.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// wantInOrder checks that every referral's seqs first..last arrived once
// each, in order.
func wantInOrder(t *testing.T, got map[string][]int64, referrals []string, first, last int64) {
	t.Helper()
	for _, id := range referrals {
		var want []int64
		for s := first; s <= last; s++ {
			want = append(want, s)
		}
		if !slices.Equal(got[id], want) {
			t.Errorf("referral %s: received seqs %v, want %v", id, got[id], want)
		}
	}
}

func complete(rec *receiver, referrals []string, last int64) func() bool {
	return func() bool {
		got := rec.received()
		for _, id := range referrals {
			if s := got[id]; len(s) == 0 || s[len(s)-1] < last {
				return false
			}
		}
		return true
	}
}

func queued(t *testing.T, s rooms.Store) int {
	t.Helper()
	n, err := s.QueuedWebhookMessages(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// lastAttempt returns the newest logged attempt of h.
func lastAttempt(t *testing.T, s rooms.Store, h string) (rooms.WebhookDelivery, bool) {
	t.Helper()
	ds, err := s.WebhookDeliveries(context.Background(), h, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) == 0 {
		return rooms.WebhookDelivery{}, false
	}
	return ds[0], true
}

// attemptsMatching counts h's logged attempts whose error has text in it.
func attemptsMatching(t *testing.T, s rooms.Store, h, text string) int {
	t.Helper()
	ds, err := s.WebhookDeliveries(context.Background(), h, 0, rooms.MaxDeliveryLimit)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, d := range ds {
		if d.Error != "" && strings.Contains(d.Error, text) {
			n++
		}
	}
	return n
}

func eachStore(t *testing.T, fn func(t *testing.T, s rooms.Store)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pp.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, s)
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		fn(t, openPostgres(t, pgtest.URL(t)))
	})
}

func openPostgres(t *testing.T, url string) rooms.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestAReceiverDownForAWhileGetsEveryMessageInOrder(t *testing.T) {
	eachStore(t, func(t *testing.T, s rooms.Store) {
		r := newRig(t, s)
		rec := newReceiver(t)
		h := r.subscribe(t, rec)
		rec.down()
		start(t, fast(s, "node-1"))

		referrals := []string{r.referral(t), r.referral(t), r.referral(t), r.referral(t)}
		r.postMessages(t, referrals, 25) // 100 messages, seqs 3..27 of each referral
		waitFor(t, "refused connections to be logged", func() bool { return attemptsMatching(t, s, h.ID, "connection refused") >= 3 })
		rec.answer(http.StatusServiceUnavailable)
		rec.up()
		waitFor(t, "503s to be logged", func() bool { return attemptsMatching(t, s, h.ID, "answered 503") >= 3 })
		if got := rec.received(); len(got) != 0 {
			t.Fatalf("accepted while down: %v", got)
		}
		rec.answer(0)
		waitFor(t, "every message", complete(rec, referrals, 27))
		wantInOrder(t, rec.received(), referrals, 2, 27)
		if len(rec.bad) != 0 {
			t.Errorf("bad deliveries: %v", rec.bad)
		}
		waitFor(t, "the outbox to empty", func() bool { return queued(t, s) == 0 })
		if d, ok := lastAttempt(t, s, h.ID); !ok || d.Outcome != rooms.DeliveryDelivered || d.StatusCode != 204 || d.Error != "" {
			t.Errorf("last attempt %+v, want delivered with 204", d)
		}
	})
}

func TestTwoNodesDeliverEveryMessageInOrder(t *testing.T) {
	url := pgtest.URL(t)
	s1, s2 := openPostgres(t, url), openPostgres(t, url)
	r := newRig(t, s1)
	rec := newReceiver(t)
	r.subscribe(t, rec)
	cfg1, cfg2 := fast(s1, "node-1"), fast(s2, "node-2")
	cfg1.Workers, cfg2.Workers = 3, 3
	d1, _ := start(t, cfg1)
	d2, _ := start(t, cfg2)
	var referrals []string
	for range 10 {
		referrals = append(referrals, r.referral(t))
	}
	r.postMessages(t, referrals, 10)
	waitFor(t, "every message", complete(rec, referrals, 12))
	wantInOrder(t, rec.received(), referrals, 2, 12)
	if len(rec.bad) != 0 {
		t.Errorf("bad deliveries: %v", rec.bad)
	}
	waitFor(t, "the outbox to empty", func() bool { return queued(t, s1) == 0 })
	a, b := d1.Stats(), d2.Stats()
	if a.Delivered+b.Delivered != 110 {
		t.Errorf("delivered %d + %d, want 110 in all", a.Delivered, b.Delivered)
	}
	t.Logf("node-1 delivered %d, node-2 %d", a.Delivered, b.Delivered)
}

func TestANodeKilledMidDeliveryLosesNothing(t *testing.T) {
	eachStore(t, func(t *testing.T, s rooms.Store) {
		r := newRig(t, s)
		rec := newReceiver(t)
		rec.hold, rec.arrived = make(chan struct{}), make(chan string, 100)
		r.subscribe(t, rec)
		id := r.referral(t)
		r.postMessages(t, []string{id}, 10)

		cfg := fast(s, "node-1")
		cfg.Lease = 300 * time.Millisecond
		_, kill := start(t, cfg)
		first := <-rec.arrived // node-1 is mid-delivery, waiting for the answer
		kill()
		killedAt := time.Now()

		rec.mu.Lock()
		close(rec.hold)
		rec.hold = nil
		rec.mu.Unlock()
		cfg2 := fast(s, "node-2")
		cfg2.Lease = 300 * time.Millisecond
		start(t, cfg2)
		again := <-rec.arrived
		if again != first {
			t.Errorf("node-2 first sent %s, want %s again (same webhook-id)", again, first)
		}
		if waited := time.Since(killedAt); waited < 200*time.Millisecond {
			t.Errorf("node-2 took the message after %v, before node-1's lease ran out", waited)
		}
		go func() {
			for range rec.arrived {
			}
		}()
		waitFor(t, "every message", complete(rec, []string{id}, 12))
		// The message node-1 was sending when it died may have reached the
		// receiver as well (at least once, the same webhook-id): a repeat,
		// never a message out of order.
		got := rec.received()
		got[id] = slices.Compact(got[id])
		wantInOrder(t, got, []string{id}, 2, 12)
		waitFor(t, "the outbox to empty", func() bool { return queued(t, s) == 0 })
	})
}

func TestAMessageFailsAfterADayOfBackoff(t *testing.T) {
	eachStore(t, func(t *testing.T, s rooms.Store) {
		r := newRig(t, s)
		rec := newReceiver(t)
		rec.answer(http.StatusServiceUnavailable)
		h := r.subscribe(t, rec)
		id := r.referral(t)
		// The day runs from the event: the dispatcher's clock starts there.
		ev, err := s.Event(context.Background(), id, 2)
		if err != nil {
			t.Fatal(err)
		}
		clock := rooms.NewManualClock(ev.At)
		cfg := fast(s, "node-1")
		cfg.Clock, cfg.Poll = clock, 2*time.Millisecond
		cfg.Backoff, cfg.MaxBackoff = 0, 0 // the defaults: 1 s doubling to 5 min
		start(t, cfg)

		first := clock.Now()
		var (
			last     rooms.WebhookDelivery
			attempts int
		)
		for {
			waitFor(t, fmt.Sprintf("attempt %d", attempts+1), func() bool {
				d, ok := lastAttempt(t, s, h.ID)
				if ok && d.ID != last.ID {
					last = d
					return true
				}
				return false
			})
			attempts++
			if last.Attempt != attempts || !last.At.Equal(clock.Now()) || last.StatusCode != 503 || last.ReferralID != id || last.Seq != 2 {
				t.Fatalf("attempt %d: %+v", attempts, last)
			}
			if last.Outcome == rooms.DeliveryFailed {
				break
			}
			if last.Outcome != rooms.DeliveryRetrying || last.NextAttemptAt == nil {
				t.Fatalf("attempt %d: %+v, want a retry", attempts, last)
			}
			wait := last.NextAttemptAt.Sub(last.At)
			want := 5 * time.Minute
			if attempts <= 9 {
				want = time.Second << (attempts - 1)
			}
			if end := first.Add(24 * time.Hour); last.NextAttemptAt.Equal(end) {
				want = wait // the last wait ends the day
			}
			if wait != want {
				t.Fatalf("attempt %d: next in %v, want %v", attempts, wait, want)
			}
			if attempts <= 3 {
				// Nothing is attempted before it is due.
				clock.Set(last.NextAttemptAt.Add(-time.Millisecond))
				time.Sleep(30 * time.Millisecond)
				if d, _ := lastAttempt(t, s, h.ID); d.ID != last.ID {
					t.Fatalf("attempted %v early", time.Millisecond)
				}
			}
			clock.Set(*last.NextAttemptAt)
		}
		if !last.At.Equal(first.Add(24*time.Hour)) || attempts != 297 {
			t.Errorf("failed at attempt %d at %v; want attempt 297, a day after the first (%v)", attempts, last.At, first)
		}
		if n := queued(t, s); n != 0 {
			t.Errorf("a failed message is still queued (%d)", n)
		}
		if len(rec.received()) != 0 {
			t.Errorf("a 503 counted as received")
		}
	})
}

func TestConnectionsToNonPublicAddressesAreRefusedAtDial(t *testing.T) {
	eachStore(t, func(t *testing.T, s rooms.Store) {
		r := newRig(t, s)
		rec := newReceiver(t)
		_, port, _ := net.SplitHostPort(rec.addr)
		// Subscriptions stored as if registration had let them through
		// (a name that resolved to a public address then, an allow list
		// changed since): the dial is the last line.
		urls := map[string]string{
			"loopback": "http://127.0.0.1:" + port + "/hooks", "private": "http://10.255.255.1:" + port + "/hooks",
			"metadata": "http://169.254.169.254/latest/meta-data", "ipv6-loopback": "http://[::1]:" + port + "/hooks",
			"name-of-loopback": "http://localhost:" + port + "/hooks",
		}
		ids := map[string]string{}
		err := s.InTx(context.Background(), func(tx rooms.Tx) error {
			for name, u := range urls {
				w := rooms.Webhook{ID: rooms.NewID(), Organisation: "RET", URL: u, Events: []rooms.WebhookEvent{rooms.WebhookEventSubmitted},
					Secret: rooms.NewWebhookSecret(), CreatedBy: r.admin.User.ID, CreatedAt: time.Now()}
				ids[name] = w.ID
				if err := tx.CreateWebhook(context.Background(), w); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		r.referral(t)
		cfg := fast(s, "node-1")
		cfg.Destinations = nil // no allow list
		start(t, cfg)
		for name, id := range ids {
			waitFor(t, name+" refused", func() bool { return attemptsMatching(t, s, id, "destination refused") > 0 })
		}
		rec.mu.Lock()
		requests := rec.requests
		rec.mu.Unlock()
		if requests != 0 {
			t.Errorf("the receiver on loopback got %d requests", requests)
		}
	})
}
