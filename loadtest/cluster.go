package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/hub/totp"
)

// cluster is the nodes loadtest started itself, with a Postgres schema and
// a redis-server of their own, so that its faults disturb nothing else:
// restarting its Redis touches only its nodes, and terminating backends
// touches only connections carrying its application_name.
type cluster struct {
	logf    func(string, ...any)
	dir     string
	bin     string
	dbBase  string // the database as given
	schema  string
	appName string
	redis   *exec.Cmd
	redisAt string
	nodes   []*node
	env     []string
}

type node struct {
	name        string
	addr        string
	metricsAddr string // PATIENTPASS_METRICS_ADDR: nodes serve /metrics there, not on the public listener
	cmd         *exec.Cmd
	log         *os.File
}

func (n *node) url() string        { return "http://" + n.addr }
func (n *node) metricsURL() string { return "http://" + n.metricsAddr + "/metrics" }

// rss reads the node process's resident memory from /proc.
func (n *node) rss() (int64, bool) { return n.procStatus("VmRSS:") }

// peakRSS reads the node process's peak resident memory (VmHWM) from
// /proc: since it started, or since resetPeakRSS.
func (n *node) peakRSS() (int64, bool) { return n.procStatus("VmHWM:") }

// resetPeakRSS sets the process's VmHWM to its current VmRSS (proc(5),
// clear_refs "5"), so that a later peakRSS covers only what came after.
func (n *node) resetPeakRSS() error {
	if n.cmd == nil || n.cmd.Process == nil {
		return errors.New("node not started")
	}
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", n.cmd.Process.Pid), []byte("5"), 0)
}

// procStatus reads one "kB" field of the node process's /proc status.
func (n *node) procStatus(field string) (int64, bool) {
	if n.cmd == nil || n.cmd.Process == nil {
		return 0, false
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", n.cmd.Process.Pid))
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field); ok {
			var kb int64
			if _, err := fmt.Sscan(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), &kb); err == nil {
				return kb << 10, true
			}
		}
	}
	return 0, false
}

// startCluster builds (or uses) the patientpass binary, makes a schema,
// starts Redis and cfg.Nodes nodes, and points cfg at them.
func startCluster(ctx context.Context, cfg *config, runID string, logf func(string, ...any)) (*cluster, error) {
	dir, err := os.MkdirTemp("", "loadtest-"+runID+"-")
	if err != nil {
		return nil, err
	}
	c := &cluster{logf: logf, dir: dir, dbBase: cfg.DatabaseURL, schema: "loadtest_" + runID, appName: "patientpass-loadtest-" + runID}
	if cfg.Password == "" {
		cfg.Password = "loadtest " + runID + " " + randomDigits(12)
	}
	if cfg.TOTPSecret == "" {
		if cfg.TOTPSecret, err = totp.Generate(); err != nil {
			return c, err
		}
	}
	if c.bin = cfg.Bin; c.bin == "" {
		c.bin = filepath.Join(dir, "patientpass")
		logf("building patientpass/cmd/patientpass")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.bin, "patientpass/cmd/patientpass")
		if out, err := build.CombinedOutput(); err != nil {
			return c, fmt.Errorf("build the node (run loadtest inside the module, or give -bin): %v\n%s", err, out)
		}
	}
	dbURL, err := c.createSchema(ctx)
	if err != nil {
		return c, err
	}
	if err := c.startRedis(ctx); err != nil {
		return c, err
	}
	// The ports are chosen here, not left to the nodes (":0"), so that
	// loadtest knows where to reach them; all are held until all are
	// chosen, so no two are the same.
	ports, err := freePorts(2 * cfg.Nodes)
	if err != nil {
		return c, err
	}
	for i := range cfg.Nodes {
		c.nodes = append(c.nodes, &node{name: fmt.Sprintf("loadtest-%s-%d", runID, i+1),
			addr: "127.0.0.1:" + strconv.Itoa(ports[2*i]), metricsAddr: "127.0.0.1:" + strconv.Itoa(ports[2*i+1])})
	}
	c.env = append(os.Environ(),
		"DATABASE_URL="+dbURL, "REDIS_URL=redis://"+c.redisAt, "PATIENTPASS_DATA_DIR="+dir,
		"PATIENTPASS_DEMO_PASSWORD="+cfg.Password, "PATIENTPASS_DEMO_TOTP_SECRET="+cfg.TOTPSecret,
		"LOG_FORMAT=json", "LOG_LEVEL=warn",
	)
	// The first node seeds the demo data; the others start once it has.
	for i := range c.nodes {
		if err := c.startNode(ctx, i, i == 0); err != nil {
			return c, err
		}
	}
	cfg.URLs, cfg.Origins, cfg.MetricsURLs = nil, nil, nil
	for _, n := range c.nodes {
		cfg.URLs = append(cfg.URLs, n.url())
		cfg.Origins = append(cfg.Origins, n.url())
		cfg.MetricsURLs = append(cfg.MetricsURLs, n.metricsURL())
	}
	logf("started %d node(s) on schema %s and redis-server %s; logs in %s", len(c.nodes), c.schema, c.redisAt, dir)
	return c, nil
}

// createSchema makes the run's schema and returns the URL the nodes use:
// its search_path selects the schema and its application_name marks the
// nodes' backends as the run's own.
func (c *cluster) createSchema(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.dbBase)
	if err != nil {
		return "", fmt.Errorf("connect to Postgres (-database-url): %w", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{c.schema}.Sanitize()); err != nil {
		return "", fmt.Errorf("create schema %s: %w", c.schema, err)
	}
	u, err := url.Parse(c.dbBase)
	if err != nil {
		return "", err
	}
	q := u.Query()
	q.Set("search_path", c.schema)
	q.Set("application_name", c.appName)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

func (c *cluster) startRedis(ctx context.Context) error {
	if c.redisAt == "" {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.redisAt = "127.0.0.1:" + strconv.Itoa(port)
	}
	_, port, _ := net.SplitHostPort(c.redisAt)
	cmd := exec.Command("redis-server", "--port", port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", c.dir)
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server (is it installed?): %w", err)
	}
	c.redis = cmd
	return waitFor(ctx, 10*time.Second, "redis-server on "+c.redisAt, func() bool {
		conn, err := net.DialTimeout("tcp", c.redisAt, 200*time.Millisecond)
		if err != nil {
			return false
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(time.Second))
		if _, err := conn.Write([]byte("PING\r\n")); err != nil {
			return false
		}
		buf := make([]byte, 7)
		n, _ := conn.Read(buf)
		return string(buf[:n]) == "+PONG\r\n"
	})
}

// startNode starts node i and waits until it is ready.
func (c *cluster) startNode(ctx context.Context, i int, demo bool) error {
	n := c.nodes[i]
	if n.log == nil {
		f, err := os.Create(filepath.Join(c.dir, n.name+".log"))
		if err != nil {
			return err
		}
		n.log = f
	}
	cmd := exec.Command(c.bin, "serve")
	// Each node's public URL is its own address, as it would be behind
	// DNS names of their own: a node trusts only its own origin.
	cmd.Env = append(slices.Clip(c.env), "PATIENTPASS_ADDR="+n.addr, "PATIENTPASS_PUBLIC_URL="+n.url(),
		"PATIENTPASS_METRICS_ADDR="+n.metricsAddr,
		"PATIENTPASS_NODE="+n.name, "PATIENTPASS_DEMO="+strconv.FormatBool(demo))
	cmd.Stdout, cmd.Stderr = n.log, n.log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start node %s: %w", n.name, err)
	}
	n.cmd = cmd
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	died := false
	err := waitFor(ctx, 60*time.Second, "node "+n.name, func() bool {
		select {
		case <-exited:
			died = true
			return true
		default:
		}
		resp, err := http.Get(n.url() + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if died {
		err = fmt.Errorf("node %s exited before it was ready", n.name)
	}
	if err != nil {
		return fmt.Errorf("%w (see %s)", err, n.log.Name())
	}
	return nil
}

// killNode kills the last node without warning (SIGKILL), as a crash
// would, and starts it again two seconds later on the same address.
func (c *cluster) killNode(ctx context.Context) (string, error) {
	i := len(c.nodes) - 1
	n := c.nodes[i]
	if err := n.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return "", fmt.Errorf("kill node %s: %w", n.name, err)
	}
	killed := time.Now()
	sleep(ctx, 2*time.Second)
	if err := c.startNode(ctx, i, false); err != nil {
		return "", err
	}
	return fmt.Sprintf("node %s killed (SIGKILL) and ready again after %.1fs", n.name, time.Since(killed).Seconds()), nil
}

// restartRedis kills the run's redis-server and starts it again on the
// same port a second later; every publication meanwhile is lost.
func (c *cluster) restartRedis(ctx context.Context) (string, error) {
	_ = c.redis.Process.Signal(syscall.SIGKILL)
	_ = c.redis.Wait()
	stopped := time.Now()
	sleep(ctx, time.Second)
	if err := c.startRedis(ctx); err != nil {
		return "", err
	}
	return fmt.Sprintf("redis-server %s killed and answering again after %.1fs", c.redisAt, time.Since(stopped).Seconds()), nil
}

// terminateBackends ends every Postgres backend of the run's nodes, as a
// Postgres restart or failover would.
func (c *cluster) terminateBackends(ctx context.Context) (string, error) {
	conn, err := pgx.Connect(ctx, c.dbBase)
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))
		FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()`, c.appName).Scan(&n)
	if err != nil {
		return "", fmt.Errorf("terminate the nodes' Postgres backends: %w", err)
	}
	return fmt.Sprintf("%d Postgres backends of the nodes terminated", n), nil
}

// groupMean is the mean size of the nodes' group commits so far (their
// commands and audit entries per transaction), 0 when none reported any.
func (c *cluster) groupMean(ctx context.Context) float64 {
	var groups, members int64
	for _, n := range c.nodes {
		g, ok1 := metricValue(ctx, n.metricsURL(), "patientpass_store_groups_total")
		m, ok2 := metricValue(ctx, n.metricsURL(), "patientpass_store_group_members_total")
		if ok1 && ok2 {
			groups, members = groups+g, members+m
		}
	}
	if groups == 0 {
		return 0
	}
	return round2(float64(members) / float64(groups))
}

// verifyAudit runs `patientpass audit verify` on the run's schema and
// returns what it printed; an error when the trail is broken or could not
// be read.
func (c *cluster) verifyAudit(ctx context.Context) (string, error) {
	cmd := exec.CommandContext(ctx, c.bin, "audit", "verify")
	cmd.Env = c.env
	out, err := cmd.CombinedOutput()
	text := strings.TrimSpace(string(out))
	if err != nil {
		return text, fmt.Errorf("audit verify: %v: %s", err, text)
	}
	c.logf("%s", text)
	return text, nil
}

// close stops the nodes gracefully, then Redis, and drops the schema.
func (c *cluster) close() {
	for _, n := range c.nodes {
		if n.cmd != nil {
			_ = n.cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	for _, n := range c.nodes {
		if n.cmd != nil {
			waitExit(n.cmd, 20*time.Second)
		}
		if n.log != nil {
			_ = n.log.Close()
		}
	}
	if c.redis != nil {
		_ = c.redis.Process.Signal(syscall.SIGKILL)
		_ = c.redis.Wait()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if conn, err := pgx.Connect(ctx, c.dbBase); err == nil {
		if _, err := conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+pgx.Identifier{c.schema}.Sanitize()+" CASCADE"); err != nil {
			c.logf("drop schema %s: %v", c.schema, err)
		}
		_ = conn.Close(ctx)
	}
	_ = os.RemoveAll(c.dir)
}

// waitExit waits for a signalled process, killing it after d.
func waitExit(cmd *exec.Cmd, d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cmd.Process.Signal(syscall.Signal(0)) != nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = cmd.Process.Kill()
}

func waitFor(ctx context.Context, d time.Duration, what string, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s", what, d)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

// freePort asks the kernel for a free port. Another process could take it
// before the node binds it; on this machine's loopback that has not been
// seen, and the node's start would fail loudly if it were.
func freePort() (int, error) {
	ports, err := freePorts(1)
	if err != nil {
		return 0, err
	}
	return ports[0], nil
}

// freePorts is n free ports, all different: each is held until all are
// found, since the kernel may hand a port just released out again.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
