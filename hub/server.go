// Package hub is the front door of Patient Pass: HTTP routes, accounts and
// sessions, the referral API, readiness, and (in later work) the WebSocket
// endpoint and cross-node fan-out.
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
}

// Server serves the HTTP API.
type Server struct {
	svc      *rooms.Service
	store    rooms.Store
	clock    rooms.Clock
	log      zerolog.Logger
	public   *url.URL
	checks   []Check
	ready    time.Duration
	sessions *sessionManager
	throttle *throttle
	handler  http.Handler
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
		public: public, checks: cfg.Checks, ready: cfg.ReadyTimeout,
	}
	if s.sessions, err = newSessionManager(s.store, s.clock, public, cfg.SessionKeys); err != nil {
		return nil, err
	}
	s.throttle = newThrottle(s.store, s.clock)
	s.handler = s.routes()
	return s, nil
}

// Handler returns the server's routes wrapped in the security middleware.
func (s *Server) Handler() http.Handler { return s.handler }

// routes lists every route of the API.
func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", s.readyz)

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
