package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/rs/zerolog"

	"patientpass/persistence/postgres"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// errUsage reports a bad command line whose explanation was already printed.
var errUsage = errors.New("usage")

// config is the configuration of SPEC §3: each environment variable is also
// a flag, and a flag wins.
type config struct {
	Addr           string
	DebugAddr      string
	MetricsAddr    string
	Registrations  int
	BankHolidays   string
	WebhookAllow   string
	DataDir        string
	DatabaseURL    string
	RedisURL       string
	PublicURL      string
	SessionKeys    string
	Node           string
	Demo           bool
	DemoPassword   string
	DemoTOTPSecret string
	LogLevel       string
	LogFormat      string
}

// flagSet returns a flag set for command name whose flags default to the
// environment.
func (a *app) flagSet(name string, cfg *config) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(a.stderr)
	env := func(key, def string) string {
		if v := a.getenv(key); v != "" {
			return v
		}
		return def
	}
	host, _ := os.Hostname()
	fs.StringVar(&cfg.Addr, "addr", env("PATIENTPASS_ADDR", ":8080"), "listen address (PATIENTPASS_ADDR)")
	regs, err := strconv.Atoi(env("PATIENTPASS_REGISTRATIONS_PER_HOUR", "30"))
	if err != nil {
		regs = -1 // refused by serve, naming the variable
	}
	fs.IntVar(&cfg.Registrations, "registrations-per-hour", regs, "registrations one client address may make in an hour (PATIENTPASS_REGISTRATIONS_PER_HOUR)")
	fs.StringVar(&cfg.BankHolidays, "bank-holidays", env("PATIENTPASS_BANK_HOLIDAYS", ""), "a file of England and Wales bank holidays in GOV.UK's bank-holidays.json shape, in place of the embedded list (PATIENTPASS_BANK_HOLIDAYS)")
	fs.StringVar(&cfg.WebhookAllow, "webhook-allow", env("PATIENTPASS_WEBHOOK_ALLOW", ""), "comma-separated hosts, IP addresses and CIDR prefixes webhooks may be sent to although not public (loopback, private, link-local); listed hosts may also take plain http (PATIENTPASS_WEBHOOK_ALLOW)")
	fs.StringVar(&cfg.MetricsAddr, "metrics-addr", env("PATIENTPASS_METRICS_ADDR", ""), "listen address of the Prometheus metrics (/metrics); unset turns them off; keep it off the public network (PATIENTPASS_METRICS_ADDR)")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", env("PATIENTPASS_DEBUG_ADDR", ""), "listen address of the Go profiler (/debug/pprof/); unset turns it off; keep it on loopback (PATIENTPASS_DEBUG_ADDR)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("PATIENTPASS_DATA_DIR", "./data"), "embedded store file and generated secrets (PATIENTPASS_DATA_DIR)")
	fs.StringVar(&cfg.DatabaseURL, "database-url", env("DATABASE_URL", ""), "postgres://… for Postgres; unset uses the embedded store (DATABASE_URL)")
	fs.StringVar(&cfg.RedisURL, "redis-url", env("REDIS_URL", ""), "redis://… for cross-node fan-out; unset uses the in-process broker (REDIS_URL)")
	fs.StringVar(&cfg.PublicURL, "public-url", env("PATIENTPASS_PUBLIC_URL", "http://localhost:8080"), "origin allowed for browsers and WebSockets (PATIENTPASS_PUBLIC_URL)")
	fs.StringVar(&cfg.SessionKeys, "session-keys", env("PATIENTPASS_SESSION_KEYS", ""), "comma-separated cookie signing keys, newest first, each base64 of at least 32 bytes; generated once and kept in the store when unset (PATIENTPASS_SESSION_KEYS)")
	fs.StringVar(&cfg.Node, "node", env("PATIENTPASS_NODE", host), "this node's name in audit entries and logs (PATIENTPASS_NODE)")
	demo, _ := strconv.ParseBool(env("PATIENTPASS_DEMO", "false"))
	fs.BoolVar(&cfg.Demo, "demo", demo, "seed demo organisations, users and referrals and print the logins (PATIENTPASS_DEMO)")
	fs.StringVar(&cfg.DemoPassword, "demo-password", env("PATIENTPASS_DEMO_PASSWORD", ""), "password of every demo user; generated and kept when unset (PATIENTPASS_DEMO_PASSWORD)")
	fs.StringVar(&cfg.DemoTOTPSecret, "demo-totp-secret", env("PATIENTPASS_DEMO_TOTP_SECRET", ""), "base32 TOTP secret of the demo admin; generated and kept when unset (PATIENTPASS_DEMO_TOTP_SECRET)")
	fs.StringVar(&cfg.LogLevel, "log-level", env("LOG_LEVEL", "info"), "debug, info, warn or error (LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", env("LOG_FORMAT", ""), "console or json; console on a terminal by default (LOG_FORMAT)")
	return fs
}

// parse parses args into cfg, printing problems.
func (a *app) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(a.stderr, "unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	return nil
}

// logger builds the one zerolog logger of the process.
func (a *app) logger(cfg config) (zerolog.Logger, error) {
	level, err := zerolog.ParseLevel(strings.ToLower(cfg.LogLevel))
	if err != nil || level == zerolog.NoLevel {
		return zerolog.Logger{}, fmt.Errorf("LOG_LEVEL %q: want debug, info, warn or error", cfg.LogLevel)
	}
	var w io.Writer = a.stderr
	switch cfg.LogFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: a.stderr}
	case "":
		if f, ok := a.stderr.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				w = zerolog.ConsoleWriter{Out: a.stderr}
			}
		}
	default:
		return zerolog.Logger{}, fmt.Errorf("LOG_FORMAT %q: want console or json", cfg.LogFormat)
	}
	return zerolog.New(w).Level(level).With().Timestamp().Str("node", cfg.Node).Logger(), nil
}

// storeKind names the store cfg selects, for logs.
func storeKind(cfg config) string {
	if cfg.DatabaseURL != "" {
		return "postgres"
	}
	return "embedded"
}

// openStore opens Postgres when DATABASE_URL is set and the embedded store in
// the data directory otherwise; both apply their migrations.
func openStore(ctx context.Context, cfg config) (rooms.Store, error) {
	if cfg.DatabaseURL != "" {
		s, err := postgres.Open(ctx, cfg.DatabaseURL)
		if err != nil {
			return nil, fmt.Errorf("open Postgres store: %w", err)
		}
		return s, nil
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s, err := sqlite.Open(ctx, filepath.Join(cfg.DataDir, "patientpass.db"))
	if err != nil {
		return nil, fmt.Errorf("open embedded store in %s: %w", cfg.DataDir, err)
	}
	return s, nil
}

// sessionKeys returns the cookie signing keys, newest first: those
// configured, or one generated on first start and kept in the store so every
// node sharing the database, and every restart, uses the same.
func sessionKeys(ctx context.Context, store rooms.Store, configured string) ([][]byte, error) {
	if configured == "" {
		fresh := make([]byte, 32)
		if _, err := rand.Read(fresh); err != nil {
			return nil, err
		}
		kept, err := store.SetSettingIfAbsent(ctx, "session.keys", base64.StdEncoding.EncodeToString(fresh))
		if err != nil {
			return nil, fmt.Errorf("keep session keys: %w", err)
		}
		configured = kept
	}
	var keys [][]byte
	for i, k := range strings.Split(configured, ",") {
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(k))
		if err != nil || len(key) < 32 {
			return nil, fmt.Errorf("PATIENTPASS_SESSION_KEYS: key %d must be base64 of at least 32 bytes (make one with: head -c 32 /dev/urandom | base64)", i+1)
		}
		keys = append(keys, key)
	}
	return keys, nil
}
