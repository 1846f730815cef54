package hub_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub"
	"patientpass/hub/broker"
	"patientpass/hub/metrics"
	"patientpass/hub/password"
	"patientpass/hub/realtime"
	"patientpass/persistence/postgres"
	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
	"patientpass/static"
)

// testPassword is every test user's password.
const testPassword = "correct horse battery staple"

var testPasswordHash = func() string {
	h, err := password.Hash(testPassword)
	if err != nil {
		panic(err)
	}
	return h
}()

// env is a real server on 127.0.0.1 over a real store, with a manual clock.
type env struct {
	t     testing.TB
	srv   *httptest.Server
	hub   *hub.Server
	svc   *rooms.Service
	store rooms.Store
	rt    *realtime.Hub
	// metrics are the node's instruments, read by tests as a scrape would.
	metrics *metrics.Metrics
	cfg     hub.Config // what the server was built from
	clock   *rooms.ManualClock
	base    string
	n       atomic.Int64
}

// eachStore runs fn against a server over the embedded store and one over
// Postgres.
func eachStore(t *testing.T, fn func(t *testing.T, e *env)) {
	t.Run("embedded", func(t *testing.T) {
		t.Parallel()
		fn(t, newEnv(t, openEmbedded(t)))
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		s, err := postgres.Open(context.Background(), pgtest.URL(t))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		fn(t, newEnv(t, s))
	})
}

// openEmbedded opens a fresh embedded store for one test.
func openEmbedded(t testing.TB) rooms.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "pp.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// start is Monday 23 November 2026, 09:00 London.
var start = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

func newEnv(t testing.TB, store rooms.Store) *env {
	t.Helper()
	return newEnvWith(t, store, func(*envConfig) {})
}

// envConfig is what a test may adjust: the server's configuration (its
// service, store, hub and metrics are the harness's), the broker and the
// real-time hub's tuning.
type envConfig struct {
	hub.Config
	broker   func(broker.Handler) (broker.Broker, error)
	realtime realtime.Config
	// webhooks is where the service may send webhooks; public https only
	// when nil.
	webhooks *rooms.WebhookDestinations
}

// newEnvWith starts a server, letting the test adjust its configuration.
// It wires the parts as cmd/patientpass does: the real-time hub is the
// service's publisher and carries the referral feed.
func newEnvWith(t testing.TB, store rooms.Store, adjust func(*envConfig)) *env {
	t.Helper()
	ctx := context.Background()
	e := &env{t: t, store: store, clock: rooms.NewManualClock(start), metrics: metrics.New()}
	// The listener is open before the server is configured, so the public
	// URL is known; the server starts once its handler and timeouts are set.
	e.srv = httptest.NewUnstartedServer(nil)
	e.base = "http://" + e.srv.Listener.Addr().String()
	cfg := envConfig{Config: hub.Config{
		Store: store, Metrics: e.metrics, Logger: zerolog.New(io.Discard), PublicURL: e.base,
		SessionKeys: [][]byte{bytes.Repeat([]byte{7}, 32)}, UI: static.FS(),
	}, realtime: realtime.Config{Node: "test"}}
	adjust(&cfg)
	rt, err := realtime.New(cfg.realtime, cfg.Logger, e.metrics, cfg.broker)
	if err != nil {
		t.Fatal(err)
	}
	e.rt = rt
	e.svc = rooms.NewService(rooms.Config{Store: store, Clock: e.clock, Node: "test", Publisher: rt,
		Watcher: realtime.Updates{Hub: rt, Log: cfg.Logger}, Webhooks: cfg.webhooks})
	rt.AddFeeds(e.svc)
	cfg.Service, cfg.Realtime = e.svc, rt
	for _, o := range []rooms.Organisation{{ODS: "RET", Name: "The Walton Centre"}, {ODS: "RJR", Name: "Countess of Chester"}, {ODS: "RBL", Name: "Wirral"}} {
		if err := e.svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		t.Fatal(err)
	}
	e.cfg = cfg.Config
	h, err := hub.NewServer(cfg.Config)
	if err != nil {
		t.Fatal(err)
	}
	// The public listener's timeouts, as a node serves them.
	hs := h.HTTPServer()
	e.srv.Config.Handler = hs.Handler
	e.srv.Config.ReadHeaderTimeout, e.srv.Config.ReadTimeout = hs.ReadHeaderTimeout, hs.ReadTimeout
	e.srv.Config.WriteTimeout, e.srv.Config.IdleTimeout = hs.WriteTimeout, hs.IdleTimeout
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.hub = h
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			t.Errorf("shut the hub down: %v", err)
		}
	})
	return e
}

// withKeys is the server's configuration with other session keys.
func (e *env) withKeys(keys [][]byte) hub.Config {
	c := e.cfg
	c.SessionKeys = keys
	return c
}

// user creates an account directly through the service.
func (e *env) user(org string, status rooms.UserStatus, roles ...rooms.Role) rooms.User {
	e.t.Helper()
	n := e.n.Add(1)
	u, err := e.svc.CreateUser(context.Background(), rooms.System, rooms.NewUser{
		Name: fmt.Sprintf("Test User %d", n), Email: fmt.Sprintf("user%d@example.nhs.uk", n),
		ProfessionalBody: rooms.BodyGMC, RegistrationNumber: fmt.Sprintf("71%05d", n),
		Organisation: org, Roles: roles, Status: status, PasswordHash: testPasswordHash,
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return u
}

// client is a browser: a cookie jar speaking JSON to the server.
type client struct {
	e    *env
	http *http.Client
}

func (e *env) client() *client {
	jar, _ := cookiejar.New(nil)
	return &client{e: e, http: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// login returns a client logged in as email.
func (e *env) login(email string) *client {
	e.t.Helper()
	c := e.client()
	if res := c.do("POST", "/api/session", map[string]any{"email": email, "password": testPassword}); res.status != 200 {
		e.t.Fatalf("login %s: %d %s", email, res.status, res.raw)
	}
	return c
}

// response is a decoded answer.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// errorField returns the error's code and field.
func (r response) errorField() (code, field string) {
	e, _ := r.body["error"].(map[string]any)
	code, _ = e["code"].(string)
	field, _ = e["field"].(string)
	return code, field
}

// do sends a JSON request (body nil for none; a string is sent as it is).
func (c *client) do(method, path string, body any) response {
	c.e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = bytes.NewBufferString(b)
	default:
		buf, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, c.e.base+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		c.e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &res.body)
	return res
}

// audit returns the audit entries matching f.
func (e *env) audit(f rooms.AuditFilter) []rooms.AuditEntry {
	e.t.Helper()
	es, err := e.store.AuditLog(context.Background(), f)
	if err != nil {
		e.t.Fatal(err)
	}
	return es
}
