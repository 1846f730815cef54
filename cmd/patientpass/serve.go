package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"patientpass/hub"
	"patientpass/rooms"
)

// serve runs a node until ctx ends, then shuts down in order: stop accepting
// and drain requests, then close the broker and the store.
func (a *app) serve(ctx context.Context, args []string) error {
	var cfg config
	if err := a.parse(a.flagSet("serve", &cfg), args); err != nil {
		return err
	}
	log, err := a.logger(cfg)
	if err != nil {
		return err
	}
	store, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer store.Close()
	log.Info().Str("store", storeKind(cfg)).Msg("store open and migrated")

	checks := []hub.Check{{Name: "store", Pinger: store}}
	var newBroker func(hub.BrokerHandler) (hub.Broker, error) // nil: in-process
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.ClientName = "patientpass:" + cfg.Node
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		checks = append(checks, hub.Check{Name: "broker", Pinger: redisPinger{rdb}})
		newBroker = func(h hub.BrokerHandler) (hub.Broker, error) {
			return hub.NewRedisBroker(ctx, rdb, redisPrefix, h, log)
		}
	}

	svc := rooms.NewService(rooms.Config{Store: store, Node: cfg.Node})
	if cfg.Demo {
		if err := a.seedDemo(ctx, svc, cfg); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
	}

	keys, err := sessionKeys(ctx, store, cfg.SessionKeys)
	if err != nil {
		return err
	}
	srv, err := hub.NewServer(hub.Config{
		Service: svc, Logger: log, PublicURL: cfg.PublicURL, SessionKeys: keys, Checks: checks,
		Broker: newBroker, Realtime: hub.RealtimeConfig{Node: cfg.Node},
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Addr, err)
	}
	if a.onListen != nil {
		a.onListen(ln.Addr())
	}
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	log.Info().Str("addr", ln.Addr().String()).Str("public_url", cfg.PublicURL).Msg("serving")

	go expireSessions(ctx, store, log)
	if cfg.DebugAddr != "" {
		if err := serveDebug(ctx, cfg.DebugAddr, log); err != nil {
			return err
		}
	}

	served := make(chan error, 1)
	go func() { served <- httpSrv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	log.Info().Msg("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	// The listener closes first, so no new socket arrives while the open
	// ones are closed with 1001 and drained; the broker closes with them,
	// and the store when serve returns.
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	if err := srv.Shutdown(shutdownCtx); err != nil {
		log.Warn().Err(err).Msg("real-time hub did not shut down cleanly")
	}
	log.Info().Msg("stopped")
	return nil
}

// serveDebug serves the Go profiler on its own listener, apart from the
// public handler, until ctx ends. It exposes no patient data, but it does
// expose the process's internals, so it belongs on loopback.
func serveDebug(ctx context.Context, addr string, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on debug address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info().Str("addr", ln.Addr().String()).Msg("profiler listening")
	return nil
}

// redisPrefix starts every Redis channel Patient Pass uses.
const redisPrefix = "patientpass:"

// redisPinger reports whether Redis answers.
type redisPinger struct{ rdb *redis.Client }

func (p redisPinger) Ping(ctx context.Context) error { return p.rdb.Ping(ctx).Err() }

// expireSessions removes sessions past their idle or absolute timeout every
// few minutes. They are refused as soon as they expire whether or not this
// has run; it only keeps the table small.
func expireSessions(ctx context.Context, store rooms.Store, log zerolog.Logger) {
	tick := time.NewTicker(5 * time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := time.Now()
		n, err := store.DeleteExpiredSessions(ctx, now.Add(-hub.IdleTimeout), now.Add(-hub.AbsoluteTimeout))
		if err != nil {
			log.Warn().Err(err).Msg("expire sessions")
			continue
		}
		if n > 0 {
			log.Debug().Int("sessions", n).Msg("expired sessions removed")
		}
	}
}
