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
//
// -scenario registrations is different: it fires -clients account
// registrations at the nodes at once and reports how they answer (counts by
// status, latency) and what the storm costs the nodes in memory. -h lists
// every scenario and flag.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
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
	"registrations":   registrations,
}

// scenarioNames lists the scenarios for messages.
const scenarioNames = "fanout, idle, reconnect-storm, chaos, soak or registrations"

// config is the command line.
type config struct {
	URLs []string
	// Origins holds, for each of URLs, the Origin header every request and
	// WebSocket dial to that node carries: the node's public URL.
	Origins []string
	// MetricsURLs holds, for each of URLs, where that node serves its
	// Prometheus metrics; "" when unknown.
	MetricsURLs []string
	Scenario    string
	// Organisation is the ODS code the registrations scenario's accounts
	// ask to join.
	Organisation string
	Clients      int
	Rooms        int
	Users        int
	Rate         float64
	Duration     time.Duration
	JSON         bool

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

// usageText heads the flag list that -h prints.
const usageText = `Usage:

  loadtest -url URL [-url URL2 …] [-scenario S] [flags]   against running nodes started with --demo
  loadtest -nodes N [-scenario S] [flags]                 on nodes it starts itself

Against running nodes it logs in as the demo admin, with PATIENTPASS_DEMO_PASSWORD and
PATIENTPASS_DEMO_TOTP_SECRET from its environment, to register and approve its own users.

Scenarios (-scenario):
  fanout            every client subscribed, posts at -rate for -duration, every delivery checked (default)
  idle              connects half the clients, reads the nodes' memory, connects the rest, reads
                    again: the memory of one connection
  reconnect-storm   fanout, and a third of the way in every connection is cut at once
  chaos             fanout on nodes it started (default 2), killing a node, Redis and the
                    nodes' Postgres backends along the way
  soak              fanout with the nodes' memory sampled; fails when it grows under steady load
  registrations     fires -clients POST /api/register at once (request i to node i mod N), each a
                    valid pending clinician account at -organisation with a unique email and GMC
                    number; counts the answers by status (201, 429, 503, 500, other), their p50
                    and p99 latency, and the nodes' resident memory before the storm and at its
                    peak (VmHWM from /proc for started nodes, else sampled from their metrics).
                    Retry-After is reported, never obeyed. Needs no demo logins. Fails on any 500
                    or a request that got no answer at all.

Example: loadtest -nodes 1 -scenario registrations -clients 200 -json

Exit status: 0 every check passed, 1 a correctness check failed, 2 the run could not be made.

Flags:
`

// usageError is a bad command line; the flag package has already printed
// what is wrong with it.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func newFlagSet(stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("loadtest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	// command prints the usage itself: to stdout for -h, to stderr after an error.
	fs.Usage = func() {}
	return fs
}

// printUsage writes the usage text and every flag with its default to w.
func printUsage(w io.Writer) {
	fs := newFlagSet(w)
	var cfg config
	defineFlags(fs, &cfg, new(urlList), new(urlList), new(urlList), func(string) string { return "" })
	fmt.Fprint(w, usageText)
	fs.PrintDefaults()
}

func parseFlags(args []string, stderr io.Writer, getenv func(string) string) (config, error) {
	var cfg config
	fs := newFlagSet(stderr)
	var urls, origins, metrics urlList
	defineFlags(fs, &cfg, &urls, &origins, &metrics, getenv)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, usageError{err}
	}
	return validate(fs, cfg, urls, origins, metrics, getenv)
}

func defineFlags(fs *flag.FlagSet, cfg *config, urls, origins, metrics *urlList, getenv func(string) string) {
	fs.Var(urls, "url", "base URL of a node, http://host:port; repeat for several nodes (clients are spread over them)")
	fs.Var(origins, "origin", "Origin header of every request and WebSocket to a node: its public URL, scheme://host[:port]; once for all nodes or once per -url, in order (default: each -url's own origin)")
	fs.Var(metrics, "metrics-url", "where a node serves its Prometheus metrics (its PATIENTPASS_METRICS_ADDR), http://host:port[/metrics]; once per -url, in order (default: none for -url; the addresses it chose for started nodes). Without it the server's memory comes from -url's /metrics, which nodes served before the metrics listener")
	fs.StringVar(&cfg.Scenario, "scenario", "fanout", scenarioNames)
	fs.StringVar(&cfg.Organisation, "organisation", "RJR", "registrations: the ODS code of the organisation the accounts ask to join (RJR is in the demo data)")
	fs.IntVar(&cfg.Clients, "clients", 1000, "WebSocket clients")
	fs.IntVar(&cfg.Rooms, "rooms", 100, "referrals (rooms) the clients are spread over")
	fs.IntVar(&cfg.Users, "users", 0, "users the clients log in as, several sockets per session (default clients/100, at least 2 and at most 25: a node takes 30 registrations an hour from one address)")
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
}

// validate checks the parsed command line and fills in the defaults that
// depend on other flags.
func validate(fs *flag.FlagSet, cfg config, urls, origins, metrics urlList, getenv func(string) string) (config, error) {
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
		return cfg, fmt.Errorf("-scenario %q: want %s", cfg.Scenario, scenarioNames)
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
	if cfg.Nodes > 0 && len(origins) > 0 {
		return cfg, errors.New("-origin and -nodes exclude each other: each started node's public URL is its own address")
	}
	for _, o := range origins {
		if _, err := originOf(o); err != nil {
			return cfg, fmt.Errorf("-origin %q: %w", o, err)
		}
	}
	switch {
	case len(origins) == 0:
		for _, u := range cfg.URLs {
			o, err := originOf(u)
			if err != nil {
				return cfg, fmt.Errorf("-url %q: %w", u, err)
			}
			cfg.Origins = append(cfg.Origins, o)
		}
	case len(origins) == 1:
		for range cfg.URLs {
			cfg.Origins = append(cfg.Origins, origins[0])
		}
	case len(origins) == len(cfg.URLs):
		cfg.Origins = origins
	default:
		return cfg, fmt.Errorf("-origin given %d times for %d -url: give it once for every node, or once per -url", len(origins), len(cfg.URLs))
	}
	switch {
	case cfg.Nodes > 0 && len(metrics) > 0:
		return cfg, errors.New("-metrics-url and -nodes exclude each other: started nodes serve their metrics where loadtest tells them to")
	case len(metrics) > 0 && len(metrics) != len(cfg.URLs):
		return cfg, fmt.Errorf("-metrics-url given %d times for %d -url: give it once per -url, in the same order", len(metrics), len(cfg.URLs))
	}
	for _, m := range metrics {
		u, err := metricsURL(m)
		if err != nil {
			return cfg, fmt.Errorf("-metrics-url %q: %w", m, err)
		}
		cfg.MetricsURLs = append(cfg.MetricsURLs, u)
	}
	if cfg.Clients < 1 {
		return cfg, fmt.Errorf("-clients %d: want at least 1", cfg.Clients)
	}
	if cfg.Scenario == "registrations" {
		// Anonymous requests: no rooms, no users, no demo logins.
		if cfg.Organisation == "" {
			return cfg, errors.New("-organisation: want the ODS code of an organisation the nodes hold")
		}
		if cfg.Clients > 8_000_000 {
			return cfg, fmt.Errorf("-clients %d: registrations draws distinct 7-digit GMC numbers; want at most 8,000,000", cfg.Clients)
		}
		return cfg, nil
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
		// Within a node's default of 30 registrations an hour from one
		// address; each user's clients share several sessions.
		cfg.Users = min(max(2, cfg.Clients/100), 25)
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

// originOf is the origin of a URL, scheme://host[:port], as a browser sends
// it in the Origin header.
func originOf(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want http://host[:port] or https://host[:port]")
	}
	return u.Scheme + "://" + u.Host, nil
}

// metricsURL is the metrics endpoint a -metrics-url names: its path, or
// /metrics when it gives none.
func metricsURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", errors.New("want http://host:port[/path]")
	}
	if u.Path == "" || u.Path == "/" {
		u.Path = "/metrics"
	}
	return u.String(), nil
}

// command parses args, makes the run and reports it; it returns the exit code.
func command(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr, os.Getenv)
	var ue usageError
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(stdout)
		return exitPass
	case errors.As(err, &ue):
		printUsage(stderr) // the flag package has printed the error
		return exitError
	case err != nil:
		// The usage first, so that what is wrong is the last line on the screen.
		printUsage(stderr)
		fmt.Fprintln(stderr, "\nloadtest:", err)
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
