package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub"
	"patientpass/hub/auth"
	"patientpass/hub/broker"
	"patientpass/hub/broker/redisbroker"
	"patientpass/hub/metrics"
	"patientpass/hub/realtime"
	"patientpass/hub/webhooks"
	"patientpass/rooms"
	"patientpass/static"
)

// serve runs a node until ctx ends, then shuts down in order: stop accepting
// and drain requests, then close the broker and the store.
func (a *app) serve(ctx context.Context, args []string) error {
	var cfg config
	if err := a.parse(a.flagSet("serve", &cfg), args); err != nil {
		return err
	}
	if cfg.Registrations < 1 {
		return fmt.Errorf("PATIENTPASS_REGISTRATIONS_PER_HOUR must be a whole number of at least 1")
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

	m := metrics.New()
	var newBroker func(broker.Handler) (broker.Broker, error) // nil: in-process
	if cfg.RedisURL != "" {
		rdb, err := redisbroker.NewClient(cfg.RedisURL, "patientpass:"+cfg.Node)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		defer rdb.Close()
		newBroker = func(h broker.Handler) (broker.Broker, error) {
			return redisbroker.New(ctx, rdb, redisPrefix, h, log)
		}
	}
	// The real-time hub is the service's publisher, and the referral feed
	// reads through the service: the hub starts first, the feed is added
	// once the service exists.
	rt, err := realtime.New(realtime.Config{Node: cfg.Node}, log, m, newBroker)
	if err != nil {
		return fmt.Errorf("start the real-time hub: %w", err)
	}
	cal, err := loadCalendar(cfg.BankHolidays)
	if err != nil {
		return err
	}
	destinations, err := rooms.ParseWebhookAllow(cfg.WebhookAllow)
	if err != nil {
		return fmt.Errorf("PATIENTPASS_WEBHOOK_ALLOW: %w", err)
	}
	svc := rooms.NewService(rooms.Config{Store: store, Node: cfg.Node, Publisher: rt,
		Watcher: realtime.Updates{Hub: rt, Log: log}, Holidays: cal, Webhooks: destinations})
	rt.AddFeeds(svc)
	m.GroupCommits(func() (int64, int64, int64) {
		st := svc.GroupStats()
		return st.Groups, st.Members, st.Alone
	})
	// Whatever happens from here, the hub's goroutines end before the
	// store closes (deferred above, so it runs after this).
	defer func() {
		shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		if err := rt.Shutdown(shutdownCtx); err != nil {
			log.Warn().Err(err).Msg("real-time hub did not shut down cleanly")
		}
	}()
	if cfg.Demo {
		if err := a.seedDemo(ctx, svc, store, cfg); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
	}

	keys, err := sessionKeys(ctx, store, cfg.SessionKeys)
	if err != nil {
		return err
	}
	srv, err := hub.NewServer(hub.Config{
		Service: svc, Store: store, Realtime: rt, Metrics: m, Logger: log, PublicURL: cfg.PublicURL,
		SessionKeys: keys, Checks: []hub.Check{{Name: "store", Pinger: store}}, RegistrationsPerHour: cfg.Registrations,
		UI: static.FS(),
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
	httpSrv := srv.HTTPServer()
	if cfg.MetricsAddr != "" {
		if err := serveAside(ctx, "metrics", cfg.MetricsAddr, m.Handler(), log); err != nil {
			return err
		}
	}
	log.Info().Str("addr", ln.Addr().String()).Str("public_url", cfg.PublicURL).
		Str("godebug", a.getenv("GODEBUG")).Msg("serving")

	// The session sweeper touches the store, so it ends, and is waited for,
	// before the hub and then the store shut down (defers run in reverse).
	var background sync.WaitGroup
	defer background.Wait()
	sweepCtx, stopSweep := context.WithCancel(ctx)
	defer stopSweep()
	background.Go(func() { expireSessions(sweepCtx, store, log) })
	background.Go(func() { runScheduler(sweepCtx, svc, log) })
	dispatcher := webhooks.New(webhooks.Config{Store: store, Destinations: destinations, Node: cfg.Node, Log: log})
	m.Webhooks(func() (int64, int64, int64) {
		st := dispatcher.Stats()
		return st.Delivered, st.Retried, st.Failed
	})
	background.Go(func() { dispatcher.Run(sweepCtx) })
	background.Go(func() { watchCalendar(sweepCtx, log, cal, rooms.SystemClock{}) })
	background.Go(func() { rt.RefreshViews(sweepCtx, viewRefresh) })
	if cfg.DebugAddr != "" {
		if err := serveAside(ctx, "profiler", cfg.DebugAddr, debugHandler(), log); err != nil {
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

// serveAside serves h on a listener of its own, apart from the public
// handler, until ctx ends: the metrics and the profiler expose no patient
// data, but they do expose the process's internals, so they belong on
// loopback or a management network.
func serveAside(ctx context.Context, what, addr string, h http.Handler, log zerolog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s address %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: hub.HeaderTimeout, IdleTimeout: hub.IdleTimeout}
	go func() { _ = srv.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info().Str("addr", ln.Addr().String()).Msg(what + " listening")
	return nil
}

// debugHandler serves the Go profiler.
func debugHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// viewRefresh is how often boards and wallboards are sent afresh.
const viewRefresh = time.Minute

// runScheduler runs the triage clocks' scheduler until ctx ends: on one
// node at a time, taken over by another within seconds of its death.
func runScheduler(ctx context.Context, svc *rooms.Service, log zerolog.Logger) {
	rooms.NewScheduler(svc, 0,
		func(err error) { log.Warn().Err(err).Msg("triage clocks") },
		func(leading bool) {
			if leading {
				log.Info().Msg("this node runs the triage clocks")
			} else {
				log.Info().Msg("this node no longer runs the triage clocks")
			}
		}).Run(ctx)
}

// redisPrefix starts every Redis channel Patient Pass uses.
const redisPrefix = "patientpass:"

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
		n, err := store.DeleteExpiredSessions(ctx, now.Add(-auth.IdleTimeout), now.Add(-auth.AbsoluteTimeout))
		if err != nil {
			log.Warn().Err(err).Msg("expire sessions")
			continue
		}
		if n > 0 {
			log.Debug().Int("sessions", n).Msg("expired sessions removed")
		}
	}
}
