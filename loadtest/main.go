// Command loadtest measures Patient Pass's real-time path and checks that it
// loses, duplicates and reorders nothing (SPEC §7 and §8).
//
// Against running nodes started with --demo:
//
//	PATIENTPASS_DEMO_PASSWORD=… PATIENTPASS_DEMO_TOTP_SECRET=… \
//	  go run ./loadtest -url http://127.0.0.1:8080 -clients 5000 -rooms 500 -rate 2000 -duration 60s
//
// It logs in as the demo admin, registers and approves its own users, has
// the demo referrer open its own referrals, connects its clients over
// WebSockets and posts messages at the target rate, recording every post,
// acknowledgement and delivery. With -nodes N (and always for -scenario
// chaos) it starts the nodes itself, on a Postgres schema and a
// redis-server of its own.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := command(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes: 0 every check passed, 1 a correctness check failed, 2 the run
// could not be made (bad flags, nodes unreachable, setup refused).
const (
	exitPass   = 0
	exitFailed = 1
	exitError  = 2
)

// scenarios are the load shapes of the issue, by name.
var scenarios = map[string]func(context.Context, *run) error{
	"fanout":          fanout,
	"idle":            idle,
	"reconnect-storm": reconnectStorm,
	"chaos":           chaos,
	"soak":            soak,
}

// config is the command line.
type config struct {
	URLs     []string
	Origin   string
	Scenario string
	Clients  int
	Rooms    int
	Users    int
	Rate     float64
	Duration time.Duration
	JSON     bool

	Nodes       int
	DatabaseURL string
	Bin         string

	AdminEmail    string
	ReferrerEmail string
	Password      string
	TOTPSecret    string

	DialConcurrency int
	PerProcess      int
	Settle          time.Duration
	Converge        time.Duration
	Progress        time.Duration
	Worker          bool
}

type urlList []string

func (u *urlList) String() string     { return strings.Join(*u, ",") }
func (u *urlList) Set(v string) error { *u = append(*u, strings.TrimRight(v, "/")); return nil }

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var urls urlList
	fs.Var(&urls, "url", "base URL of a node, http://host:port; repeat for several nodes (clients are spread over them)")
	fs.StringVar(&cfg.Origin, "origin", "", "Origin header for WebSockets: the nodes' public URL (default: the first -url, or the started nodes' public URL)")
	fs.StringVar(&cfg.Scenario, "scenario", "fanout", "fanout, idle, reconnect-storm, chaos or soak")
	fs.IntVar(&cfg.Clients, "clients", 1000, "WebSocket clients")
	fs.IntVar(&cfg.Rooms, "rooms", 100, "referrals (rooms) the clients are spread over")
	fs.IntVar(&cfg.Users, "users", 0, "users the clients log in as, several sockets per session (default clients/100, at least 2)")
	fs.Float64Var(&cfg.Rate, "rate", 500, "messages posted per second, over all rooms")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "how long to post (idle: how long to hold the connections)")
	fs.BoolVar(&cfg.JSON, "json", false, "end the output with one line of JSON holding every figure")
	fs.IntVar(&cfg.Nodes, "nodes", 0, "start this many nodes itself (chaos: default 2) instead of using -url")
	fs.StringVar(&cfg.DatabaseURL, "database-url", getenv("DATABASE_URL"), "Postgres for started nodes; a schema of the run's own is made in it and dropped after (DATABASE_URL)")
	fs.StringVar(&cfg.Bin, "bin", "", "patientpass binary for started nodes (default: go build patientpass/cmd/patientpass)")
	fs.StringVar(&cfg.AdminEmail, "admin", "admin@demo.test", "the admin who approves the load users")
	fs.StringVar(&cfg.ReferrerEmail, "referrer", "referrer@demo.test", "the clinician who opens the load referrals")
	fs.IntVar(&cfg.DialConcurrency, "dial-concurrency", 200, "WebSocket handshakes in flight at once while connecting")
	fs.IntVar(&cfg.PerProcess, "per-process", 10000, "most clients held by one process; idle spreads more over worker processes (each process may hold 20,000 open files)")
	fs.DurationVar(&cfg.Settle, "settle", 10*time.Second, "idle: wait after connecting before reading the server's memory")
	fs.DurationVar(&cfg.Converge, "converge", 30*time.Second, "after posting stops, how long clients may take to receive everything")
	fs.DurationVar(&cfg.Progress, "progress", 5*time.Second, "interval of the progress line on stderr; 0 turns it off")
	fs.BoolVar(&cfg.Worker, "worker", false, "internal: hold the clients a parent loadtest sends on stdin")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	cfg.URLs = urls
	cfg.Password = getenv("PATIENTPASS_DEMO_PASSWORD")
	cfg.TOTPSecret = getenv("PATIENTPASS_DEMO_TOTP_SECRET")
	if cfg.Worker {
		return cfg, nil
	}
	if _, ok := scenarios[cfg.Scenario]; !ok {
		return cfg, fmt.Errorf("-scenario %q: want fanout, idle, reconnect-storm, chaos or soak", cfg.Scenario)
	}
	if cfg.Scenario == "chaos" && cfg.Nodes == 0 {
		cfg.Nodes = 2
	}
	switch {
	case cfg.Nodes > 0 && len(cfg.URLs) > 0:
		return cfg, errors.New("-url and -nodes exclude each other: use running nodes or let loadtest start them")
	case cfg.Nodes == 0 && len(cfg.URLs) == 0:
		return cfg, errors.New("-url is required (or -nodes N to start nodes)")
	case cfg.Nodes > 0 && cfg.DatabaseURL == "":
		cfg.DatabaseURL = "postgres://root@127.0.0.1:5432/test?sslmode=disable"
	}
	for _, u := range cfg.URLs {
		if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return cfg, fmt.Errorf("-url %q: want http://host:port or https://host:port", u)
		}
	}
	if cfg.Origin == "" && len(cfg.URLs) > 0 {
		cfg.Origin = cfg.URLs[0]
	}
	if cfg.Clients < 1 {
		return cfg, fmt.Errorf("-clients %d: want at least 1", cfg.Clients)
	}
	if cfg.Rooms < 1 || cfg.Rooms > cfg.Clients {
		return cfg, fmt.Errorf("-rooms %d: want between 1 and -clients (%d)", cfg.Rooms, cfg.Clients)
	}
	if cfg.Rate < 0 {
		return cfg, fmt.Errorf("-rate %g: want 0 or more", cfg.Rate)
	}
	if cfg.Duration <= 0 {
		return cfg, fmt.Errorf("-duration %s: want more than 0", cfg.Duration)
	}
	if cfg.Users == 0 {
		cfg.Users = max(2, cfg.Clients/100)
	}
	if cfg.Users < 1 || cfg.Users > cfg.Clients {
		return cfg, fmt.Errorf("-users %d: want between 1 and -clients (%d)", cfg.Users, cfg.Clients)
	}
	if cfg.DialConcurrency < 1 || cfg.PerProcess < 1 {
		return cfg, errors.New("-dial-concurrency and -per-process must be at least 1")
	}
	if cfg.Nodes == 0 && cfg.Password == "" {
		return cfg, errors.New("PATIENTPASS_DEMO_PASSWORD is not set: loadtest logs in as the demo admin and referrer with it")
	}
	if cfg.Nodes == 0 && cfg.TOTPSecret == "" {
		return cfg, errors.New("PATIENTPASS_DEMO_TOTP_SECRET is not set: the demo admin's second factor is needed to approve the load users")
	}
	return cfg, nil
}

// command parses args, makes the run and reports it; it returns the exit code.
func command(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr, os.Getenv)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "loadtest:", err)
		}
		return exitError
	}
	if cfg.Worker {
		if err := serveWorker(ctx, stdin, stdout); err != nil {
			fmt.Fprintln(stderr, "loadtest worker:", err)
			return exitError
		}
		return exitPass
	}
	r := newRun(cfg, stdout, stderr)
	if err := r.execute(ctx); err != nil {
		fmt.Fprintln(stderr, "loadtest:", err)
		if r.res.Sent == 0 && r.res.Connected == 0 {
			return exitError
		}
		r.res.Failures = append(r.res.Failures, err.Error())
	}
	r.report()
	if len(r.res.Failures) > 0 {
		return exitFailed
	}
	return exitPass
}
