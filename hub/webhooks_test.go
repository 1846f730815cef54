package hub_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/webhooks"
	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/rooms"
)

// hookReceiver is an integrator's endpoint on 127.0.0.1 that checks each
// delivery's signature as Standard Webhooks specifies and records the seqs
// it accepted per referral.
type hookReceiver struct {
	addr   string
	secret string // set once registered

	mu  sync.Mutex
	got map[string][]int64 // guarded by mu
	ids []string           // webhook-ids accepted, in order; guarded by mu
	bad int                // guarded by mu
	srv *http.Server
}

// newHookReceiver reserves an address on 127.0.0.1 and leaves it closed:
// connections are refused until listen.
func newHookReceiver(t *testing.T) *hookReceiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hookReceiver{addr: ln.Addr().String(), got: map[string][]int64{}}
	ln.Close()
	t.Cleanup(func() {
		if h.srv != nil {
			h.srv.Close()
		}
	})
	return h
}

func (h *hookReceiver) listen(t *testing.T) {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		t.Fatalf("listen on %s: %v", h.addr, err)
	}
	h.srv = &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go h.srv.Serve(ln)
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(h.secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	var p struct {
		Data struct {
			Referral string `json:"referral"`
			Seq      int64  `json:"seq"`
		} `json:"data"`
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !slices.Contains(strings.Fields(r.Header.Get("webhook-signature")), want) || json.Unmarshal(body, &p) != nil {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.got[p.Data.Referral] = append(h.got[p.Data.Referral], p.Data.Seq)
	h.ids = append(h.ids, id)
	w.WriteHeader(http.StatusNoContent)
}

func (h *hookReceiver) received() (map[string][]int64, []string, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	got := map[string][]int64{}
	for k, v := range h.got {
		got[k] = slices.Clone(v)
	}
	return got, slices.Clone(h.ids), h.bad
}

// allowLoopback lets the env's service send webhooks to 127.0.0.1.
func allowLoopback(t *testing.T) func(*envConfig) {
	dest, err := rooms.ParseWebhookAllow("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return func(c *envConfig) { c.webhooks = dest }
}

// runDispatcher delivers the env's outbox until the test ends.
// runningClock reads the env's manual clock as it was when the dispatcher
// started, moving on in real time from there: the events are stamped by the
// manual clock, and a message's day of retries runs from its event.
type runningClock struct {
	base, started time.Time
}

func (c runningClock) Now() time.Time { return c.base.Add(time.Since(c.started)) }

func runDispatcher(t *testing.T, e *env) {
	dest, _ := rooms.ParseWebhookAllow("127.0.0.1")
	d := webhooks.New(webhooks.Config{Store: e.store, Destinations: dest, Node: "test", Log: zerolog.New(io.Discard),
		Clock: runningClock{base: e.clock.Now(), started: time.Now()},
		Poll:  10 * time.Millisecond, Backoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond,
		ConnectTimeout: time.Second, Timeout: 2 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func TestWebhooksThroughTheAPI(t *testing.T) {
	eachStoreWith(t, allowLoopback(t), func(t *testing.T, e *env) {
		_, admin, _ := e.enrolledAdmin("RET")
		_, otherAdmin, _ := e.enrolledAdmin("RJR")
		hook := newHookReceiver(t) // down: refusing connections
		events := []string{"referral.submitted", "referral.message", "referral.status_changed"}

		for _, c := range []struct {
			body  any
			field string
		}{
			{map[string]any{"url": "https://10.0.0.1/hooks", "events": events}, "url"},
			{map[string]any{"url": "https://169.254.169.254/latest", "events": events}, "url"},
			{map[string]any{"url": "http://" + hook.addr + "/hooks", "events": []string{"referral.deleted"}}, "events[0]"},
			{map[string]any{"url": "http://" + hook.addr + "/hooks", "events": events, "secret": "whsec_short"}, "secret"},
			{map[string]any{"url": "http://" + hook.addr + "/hooks", "events": events, "colour": "red"}, "colour"},
			{`{"url":`, ""},
		} {
			res := admin.do("POST", "/api/admin/webhooks", c.body)
			if code, field := res.errorField(); res.status != 400 || code != "invalid" || field != c.field {
				t.Errorf("register %v: %d %s, want 400 invalid naming %q", c.body, res.status, res.raw, c.field)
			}
		}
		clinician := e.login(e.user("RET", rooms.UserActive, rooms.RoleSpecialist).Email)
		if res := clinician.do("POST", "/api/admin/webhooks", map[string]any{"url": "http://" + hook.addr + "/hooks", "events": events}); res.status != 403 {
			t.Errorf("a specialist registering: %d %s", res.status, res.raw)
		}

		res := admin.do("POST", "/api/admin/webhooks", map[string]any{"url": "http://" + hook.addr + "/hooks", "events": events})
		if res.status != 201 {
			t.Fatalf("register: %d %s", res.status, res.raw)
		}
		id, _ := res.body["id"].(string)
		hook.secret, _ = res.body["secret"].(string)
		if _, err := rooms.WebhookKey(hook.secret); err != nil || id == "" {
			t.Fatalf("register answered id %q secret %q: %v", id, hook.secret, err)
		}
		list := admin.do("GET", "/api/admin/webhooks", nil)
		if list.status != 200 || strings.Contains(list.raw, hook.secret) || strings.Contains(list.raw, "secret") || !strings.Contains(list.raw, id) {
			t.Errorf("list: %d %s; want the webhook without its secret", list.status, list.raw)
		}
		if res := otherAdmin.do("DELETE", "/api/admin/webhooks/"+id, nil); res.status != 404 {
			t.Errorf("another organisation's admin deleting: %d %s", res.status, res.raw)
		}
		if res := otherAdmin.do("GET", "/api/admin/webhooks/"+id+"/deliveries", nil); res.status != 404 {
			t.Errorf("another organisation's admin reading deliveries: %d %s", res.status, res.raw)
		}

		// 100 messages while the receiver is down.
		runDispatcher(t, e)
		r1, r2 := e.room(), e.room()
		for i := range 50 {
			for _, r := range []room{r1, r2} {
				if res := r.rc.do("POST", "/api/referrals/"+r.id+"/messages", map[string]any{"ref": rooms.NewID(), "body": fmt.Sprintf("update %d", i)}); res.status != 201 {
					t.Fatalf("post: %d %s", res.status, res.raw)
				}
			}
		}
		eventually(t, "refused attempts to be logged", func() bool {
			res := admin.do("GET", "/api/admin/webhooks/"+id+"/deliveries?limit=5", nil)
			return res.status == 200 && strings.Contains(res.raw, "connection refused")
		})
		hook.listen(t)
		eventually(t, "all 102 messages", func() bool {
			got, _, _ := hook.received()
			return len(got[r1.id]) >= 51 && len(got[r2.id]) >= 51
		})
		got, ids, bad := hook.received()
		for _, r := range []room{r1, r2} {
			var want []int64
			for s := int64(2); s <= 52; s++ {
				want = append(want, s)
			}
			if !slices.Equal(got[r.id], want) {
				t.Errorf("referral %s: seqs %v, want 2..52 once each in order", r.id, got[r.id])
			}
		}
		if bad != 0 {
			t.Errorf("%d deliveries failed the signature check", bad)
		}
		eventually(t, "the outbox to empty", func() bool {
			n, err := e.store.QueuedWebhookMessages(context.Background(), id)
			return err == nil && n == 0
		})

		// The delivery log, newest first, in pages.
		page := admin.do("GET", "/api/admin/webhooks/"+id+"/deliveries?limit=5", nil)
		ds, _ := page.body["deliveries"].([]any)
		next, _ := page.body["next"].(string)
		if page.status != 200 || len(ds) != 5 || next == "" {
			t.Fatalf("deliveries: %d %s", page.status, page.raw)
		}
		newest, _ := ds[0].(map[string]any)
		if newest["outcome"] != "delivered" || newest["status_code"] != 204.0 || strings.Contains(page.raw, "payload") {
			t.Errorf("newest delivery %v", newest)
		}
		older := admin.do("GET", "/api/admin/webhooks/"+id+"/deliveries?limit=5&before="+next, nil)
		if od, _ := older.body["deliveries"].([]any); older.status != 200 || len(od) != 5 || od[0].(map[string]any)["id"].(float64) >= ds[4].(map[string]any)["id"].(float64) {
			t.Errorf("older page: %d %s", older.status, older.raw)
		}
		for _, q := range []string{"?limit=-1", "?limit=501", "?before=x"} {
			if res := admin.do("GET", "/api/admin/webhooks/"+id+"/deliveries"+q, nil); res.status != 400 {
				t.Errorf("deliveries%s: %d %s", q, res.status, res.raw)
			}
		}

		// A replay sends the same message, with its webhook-id, again.
		replayed := fmt.Sprint(int64(newest["id"].(float64)))
		if res := admin.do("POST", "/api/admin/webhooks/"+id+"/deliveries/"+replayed+"/retry", nil); res.status != 202 {
			t.Fatalf("retry: %d %s", res.status, res.raw)
		}
		eventually(t, "the replay", func() bool {
			_, again, _ := hook.received()
			return len(again) == len(ids)+1
		})
		_, again, _ := hook.received()
		if again[len(again)-1] != newest["message"] {
			t.Errorf("replayed %s, want %v", again[len(again)-1], newest["message"])
		}
		for _, bad := range []string{"0", "x", "999999"} {
			res := admin.do("POST", "/api/admin/webhooks/"+id+"/deliveries/"+bad+"/retry", nil)
			if res.status != 400 && res.status != 404 {
				t.Errorf("retry of delivery %s: %d %s", bad, res.status, res.raw)
			}
		}

		if res := admin.do("DELETE", "/api/admin/webhooks/"+id, nil); res.status != 200 {
			t.Fatalf("delete: %d %s", res.status, res.raw)
		}
		if res := admin.do("GET", "/api/admin/webhooks", nil); strings.Contains(res.raw, id) {
			t.Errorf("a deleted webhook is listed: %s", res.raw)
		}
		if res := r1.rc.do("POST", "/api/referrals/"+r1.id+"/messages", map[string]any{"ref": rooms.NewID(), "body": "after"}); res.status != 201 {
			t.Fatal(res.raw)
		}
		if n, _ := e.store.QueuedWebhookMessages(context.Background(), ""); n != 0 {
			t.Errorf("a deleted webhook was queued %d messages", n)
		}
	})
}

// eachStoreWith is eachStore with the env's configuration adjusted.
func eachStoreWith(t *testing.T, adjust func(*envConfig), fn func(t *testing.T, e *env)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		fn(t, newEnvWith(t, openEmbedded(t), adjust))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, newEnvWith(t, s, adjust))
	})
}

func TestWebhookRegistrationRefusesNonPublicDestinations(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) { // no allow list
		_, admin, _ := e.enrolledAdmin("RET")
		for _, u := range []string{"https://127.0.0.1/hooks", "https://localhost/hooks", "https://[::1]/hooks",
			"https://10.1.2.3/hooks", "https://169.254.169.254/latest/meta-data", "http://ehr.example.nhs.uk/hooks"} {
			res := admin.do("POST", "/api/admin/webhooks", map[string]any{"url": u, "events": []string{"referral.message"}})
			if code, field := res.errorField(); res.status != 400 || code != "invalid" || field != "url" {
				t.Errorf("register %s: %d %s, want 400 naming url", u, res.status, res.raw)
			}
		}
		if res := admin.do("GET", "/api/admin/webhooks", nil); res.status != 200 || !strings.Contains(res.raw, `"webhooks":[]`) {
			t.Errorf("refused registrations left webhooks: %s", res.raw)
		}
	})
}
