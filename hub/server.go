// Package hub is the front door of Patient Pass: HTTP routes, accounts and
// sessions, the referral API, readiness and metrics, the WebSocket endpoint
// with its topics, send queues and presence, and the brokers that fan events
// out across nodes.
package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/rs/zerolog"

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

// Config configures a Server.
type Config struct {
	Service *rooms.Service
	Logger  zerolog.Logger
	// PublicURL is the origin browsers use; https turns on Secure cookies
	// with the __Host- prefix, and HSTS.
	PublicURL string
	// SessionKeys sign session cookies, newest first; older keys still
	// verify so keys rotate without logging everyone out.
	SessionKeys [][]byte
	// Checks are pinged by /readyz, each with ReadyTimeout.
	Checks       []Check
	ReadyTimeout time.Duration
	// Broker builds the broker that carries events between nodes, with the
	// hub as its handler; nil means the in-process broker (one node).
	Broker func(BrokerHandler) (Broker, error)
	// Realtime tunes the WebSocket hub.
	Realtime RealtimeConfig
}

// Server serves the HTTP API.
type Server struct {
	svc      *rooms.Service
	store    rooms.Store
	clock    rooms.Clock
	log      zerolog.Logger
	public   *url.URL
	origin   string // the public URL's origin, which WebSockets must send
	checks   []Check
	ready    time.Duration
	sessions *sessionManager
	throttle *throttle
	handler  http.Handler
	rt       *realtime
}

// NewServer returns a server over cfg.
func NewServer(cfg Config) (*Server, error) {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = "http://localhost:8080"
	}
	public, err := url.Parse(cfg.PublicURL)
	if err != nil || (public.Scheme != "http" && public.Scheme != "https") || public.Host == "" {
		return nil, fmt.Errorf("public URL %q must be http(s)://host[:port]", cfg.PublicURL)
	}
	s := &Server{
		svc: cfg.Service, store: cfg.Service.Store(), clock: cfg.Service.Clock(), log: cfg.Logger,
		public: public, origin: public.Scheme + "://" + public.Host, checks: cfg.Checks, ready: cfg.ReadyTimeout,
	}
	if s.sessions, err = newSessionManager(s.store, s.clock, public, cfg.SessionKeys); err != nil {
		return nil, err
	}
	if s.rt, err = newRealtime(s.svc, s.sessions, s.log, cfg.Realtime, cfg.Broker); err != nil {
		return nil, fmt.Errorf("start the real-time hub: %w", err)
	}
	s.svc.SetPublisher(s.rt)
	s.throttle = newThrottle(s.store, s.clock)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's routes wrapped in the security middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// Broker returns the broker the hub uses, for readiness checks.
func (s *Server) Broker() Broker { return s.rt.broker }

// Shutdown closes every WebSocket with 1001 once its queued frames are
// written, waits for them until ctx ends, and closes the broker. Stop the
// HTTP server's listener first, so no new connection arrives.
func (s *Server) Shutdown(ctx context.Context) error { return s.rt.Shutdown(ctx) }

// routes lists every route of the API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /metrics", s.rt.m.serveMetrics)
	mux.HandleFunc("GET /ws", s.serveWS)

	// Accounts and sessions (auth.go, admin.go).
	mux.HandleFunc("POST /api/register", s.register)
	mux.HandleFunc("POST /api/session", s.login)
	mux.Handle("DELETE /api/session", s.authed(s.logout))
	mux.Handle("GET /api/me", s.authed(s.me))
	mux.Handle("GET /api/me/sessions", s.authed(s.mySessions))
	mux.Handle("DELETE /api/me/sessions/{id}", s.authed(s.endMySession))
	mux.Handle("POST /api/me/totp", s.authed(s.totpEnrol))
	mux.Handle("POST /api/me/totp/confirm", s.authed(s.totpConfirm))
	mux.Handle("GET /api/admin/users", s.authed(s.adminUsers))
	mux.Handle("POST /api/admin/users/{id}/approve", s.authed(s.adminApprove))
	mux.Handle("POST /api/admin/users/{id}/suspend", s.authed(s.adminSuspend))
	mux.Handle("POST /api/admin/users/{id}/reinstate", s.authed(s.adminReinstate))

	// Referrals (api_referrals.go).
	mux.Handle("GET /api/pathways", s.authed(s.pathways))
	mux.Handle("GET /api/referrals", s.authed(s.listReferrals))
	mux.Handle("POST /api/referrals", s.authed(s.createReferral))
	mux.Handle("GET /api/referrals/{id}", s.authed(s.getReferral))
	mux.Handle("GET /api/referrals/{id}/events", s.authed(s.referralEvents))
	mux.Handle("POST /api/referrals/{id}/messages", s.authed(s.postMessage))
	mux.Handle("PUT /api/referrals/{id}/plan/{section}", s.authed(s.editPlan))
	mux.Handle("POST /api/referrals/{id}/transitions", s.authed(s.transition))
	mux.Handle("POST /api/referrals/{id}/participants", s.authed(s.addParticipant))
	mux.Handle("POST /api/referrals/{id}/assignee", s.authed(s.assign))
	mux.Handle("PUT /api/referrals/{id}/read", s.authed(s.markRead))

	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, &rooms.Error{Code: rooms.CodeNotFound, Message: "no such API endpoint"})
	})
	return s.secure(mux)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
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
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{"status": "unavailable", "failing": failing})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}
