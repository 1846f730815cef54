package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/redis/go-redis/v9"

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
	if cfg.RedisURL != "" {
		opts, err := redis.ParseURL(cfg.RedisURL)
		if err != nil {
			return fmt.Errorf("REDIS_URL: %w", err)
		}
		opts.ClientName = "patientpass:" + cfg.Node
		rdb := redis.NewClient(opts)
		defer rdb.Close()
		checks = append(checks, hub.Check{Name: "broker", Pinger: redisPinger{rdb}})
	}

	svc := rooms.NewService(rooms.Config{Store: store, Node: cfg.Node})
	if cfg.Demo {
		if err := a.seedDemo(ctx, svc, cfg); err != nil {
			return fmt.Errorf("seed demo data: %w", err)
		}
	}

	srv := hub.NewServer(hub.Config{Service: svc, Logger: log, Checks: checks})
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
	if err := httpSrv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("shut down HTTP server: %w", err)
	}
	log.Info().Msg("stopped")
	return nil
}

// redisPinger reports whether Redis answers.
type redisPinger struct{ rdb *redis.Client }

func (p redisPinger) Ping(ctx context.Context) error { return p.rdb.Ping(ctx).Err() }
