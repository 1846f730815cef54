// Package hub is the front door of Patient Pass: it composes the HTTP
// routes of its sub-packages (auth, api, ws) behind the security headers,
// cross-origin protection, request metrics and request logger, and serves
// health and readiness. The parts live in their own packages:
//
//	auth      registration, login, TOTP, sessions, throttling, password hashing bound
//	api       the REST resources, one file each
//	ws        the WebSocket transport: upgrade, connection, send queue, rate limits, frames
//	realtime  topics through feeds, ordering and gap repair, presence, broker wake-ups
//	broker    the broker interface and the in-process broker (redisbroker: Redis)
//	metrics   Prometheus instruments, served on a listener of their own
//	httpjson  JSON requests and responses, the error shape
package hub

import (
	"context"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/api"
	"patientpass/hub/auth"
	"patientpass/hub/fhir"
	"patientpass/hub/httpjson"
	"patientpass/hub/metrics"
	"patientpass/hub/password"
	"patientpass/hub/realtime"
	"patientpass/hub/ws"
	"patientpass/rooms"
)

// Pinger is a dependency whose health decides readiness.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Check names one dependency for /readyz ("store", "broker").
type Check struct {
	Name   string
	Pinger Pinger
}

// Config configures a Server. The caller (cmd) builds the parts and hands
// them in: the service, its store's session side, and the real-time hub
// that is the service's publisher.
type Config struct {
	Service *rooms.Service
	// Store keeps sessions, throttled attempts and second factors.
	Store auth.Store
	// Realtime is the node's real-time hub, with its feeds added.
	Realtime *realtime.Hub
	Metrics  *metrics.Metrics
	Logger   zerolog.Logger
	// PublicURL is the origin browsers use; https turns on Secure cookies
	// with the __Host- prefix, and HSTS.
	PublicURL string
	// SessionKeys sign session cookies, newest first; older keys still
	// verify so keys rotate without logging everyone out.
	SessionKeys [][]byte
	// Checks are pinged by /readyz, each with ReadyTimeout; the broker is
	// always checked.
	Checks       []Check
	ReadyTimeout time.Duration
	// WS tunes the WebSocket transport.
	WS ws.Config
	// Hashes bounds concurrent password hashing; nil takes the default.
	Hashes *password.Limiter
	// RegistrationsPerHour bounds registrations per client address (0: 30).
	RegistrationsPerHour int
	// UI is the browser UI (package static); none when nil.
	UI fs.FS
}

// Server serves the HTTP API.
type Server struct {
	svc     *rooms.Service
	log     zerolog.Logger
	public  *url.URL
	checks  []Check
	ready   time.Duration
	auth    *auth.Auth
	rt      *realtime.Hub
	m       *metrics.Metrics
	handler http.Handler
}

// NewServer returns a server over cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://localhost:8080"
	}
	if cfg.Service == nil || cfg.Store == nil || cfg.Realtime == nil || cfg.Metrics == nil {
		return nil, fmt.Errorf("hub needs a service, a store, a real-time hub and metrics")
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || (public.Scheme != "http" && public.Scheme != "https") || public.Host == "" {
		return nil, fmt.Errorf("public URL %q must be http(s)://host[:port]", cfg.PublicURL)
	}
	s := &Server{
		svc: cfg.Service, log: cfg.Logger, public: public, ready: cfg.ReadyTimeout, rt: cfg.Realtime, m: cfg.Metrics,
		checks: append(append([]Check(nil), cfg.Checks...), Check{Name: "broker", Pinger: cfg.Realtime.Broker()}),
	}
	s.auth, err = auth.New(auth.Config{
		Service: cfg.Service, Store: cfg.Store, Clock: cfg.Service.Clock(), Logger: cfg.Logger, Metrics: cfg.Metrics,
		Public: public, SessionKeys: cfg.SessionKeys, Ender: cfg.Realtime, Hashes: cfg.Hashes,
		RegistrationsPerHour: cfg.RegistrationsPerHour,
	})
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("GET /ws", ws.NewServer(cfg.Service, cfg.Realtime, s.auth, cfg.Service.Clock(), cfg.Logger, cfg.Metrics, s.origin(), cfg.WS))
	s.auth.Routes(mux)
	api.New(cfg.Service, cfg.Realtime).Routes(mux, s.auth)
	base := strings.TrimSuffix(public.String(), "/")
	fhir.New(fhir.Config{
		Service: cfg.Service, Sessions: s.auth, Bearer: s.auth,
		Base: base + "/fhir/R4", TokenURL: base + auth.TokenPath, Started: cfg.Service.Clock().Now(),
	}).Routes(mux)
	if cfg.UI != nil {
		if err := uiRoutes(mux, cfg.UI); err != nil {
			return nil, fmt.Errorf("browser UI: %w", err)
		}
	}
	s.handler = s.secure(cfg.Metrics.Middleware(mux))
	return s, nil
}

// origin is the public URL's origin, which browsers and WebSockets send.
func (s *Server) origin() string { return s.public.Scheme + "://" + s.public.Host }

// Handler returns the server's routes wrapped in the security middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Shutdown closes every WebSocket with 1001 once its queued frames are
// written, waits for them until ctx ends, then stops the real-time hub
// (every goroutine it started) and closes the broker. Stop the HTTP
// server's listener first, so no new connection arrives; close the store
// after.
func (s *Server) Shutdown(ctx context.Context) error { return s.rt.Shutdown(ctx) }

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz pings every dependency at once and names each that fails, so a
// load balancer stops sending traffic and an operator sees which is down.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), s.ready)
	defer cancel()
	failed := make([]bool, len(s.checks))
	var wg sync.WaitGroup
	for i, c := range s.checks {
		wg.Go(func() {
			if err := c.Pinger.Ping(ctx); err != nil {
				failed[i] = true
				s.log.Warn().Str("dependency", c.Name).Err(err).Msg("readiness check failed")
			}
		})
	}
	wg.Wait()
	failing := []string{}
	for i, c := range s.checks {
		if failed[i] {
			failing = append(failing, c.Name)
		}
	}
	if len(failing) > 0 {
		httpjson.Write(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failing": failing})
		return
	}
	httpjson.Write(w, http.StatusOK, map[string]string{"status": "ok"})
}

// Timeouts of the public listener (OWASP ASVS 13.x: bounded work per
// request). A request's headers must arrive within HeaderTimeout and the
// whole request within RequestTimeout, so a client trickling bytes cannot
// hold a connection; an idle keep-alive connection ends after IdleTimeout.
// A WebSocket leaves these behind once upgraded.
const (
	HeaderTimeout   = 10 * time.Second
	RequestTimeout  = 20 * time.Second
	ResponseTimeout = time.Minute
	IdleTimeout     = 2 * time.Minute
	MaxHeaderBytes  = 64 << 10
)

// HTTPServer returns the public listener's server, with the server's
// handler and the timeouts above.
func (s *Server) HTTPServer() *http.Server {
	return &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: HeaderTimeout,
		ReadTimeout:       RequestTimeout,
		WriteTimeout:      ResponseTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
	}
}
