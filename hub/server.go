// Package hub is the front door of Patient Pass: HTTP routes, readiness, and
// (in later work) sessions, the WebSocket endpoint and cross-node fan-out.
package hub

import (
	"context"
	"encoding/json"
	"net/http"
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
	// Checks are pinged by /readyz, each with ReadyTimeout.
	Checks       []Check
	ReadyTimeout time.Duration
}

// Server serves the HTTP API.
type Server struct {
	svc    *rooms.Service
	log    zerolog.Logger
	checks []Check
	ready  time.Duration
	mux    *http.ServeMux
}

// NewServer returns a server over cfg.
func NewServer(cfg Config) *Server {
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 2 * time.Second
	}
	s := &Server{svc: cfg.Service, log: cfg.Logger, checks: cfg.Checks, ready: cfg.ReadyTimeout, mux: http.NewServeMux()}
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	return s
}

// Handler returns the server's routes.
func (s *Server) Handler() http.Handler { return s.mux }

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

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
