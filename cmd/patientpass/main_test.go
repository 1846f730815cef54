package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"patientpass/persistence/postgres/pgtest"
	"patientpass/persistence/sqlite"
	"patientpass/rooms"
)

// syncBuffer is an output a running node and the test share.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// node is a running `patientpass serve`.
type node struct {
	base   string
	stdout *syncBuffer
	stop   func() int
}

// startNode runs serve in-process on 127.0.0.1:0 and waits until it listens.
func startNode(t *testing.T, env map[string]string, args ...string) *node {
	t.Helper()
	env["PATIENTPASS_ADDR"] = "127.0.0.1:0"
	env["LOG_FORMAT"] = "json"
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	listening := make(chan net.Addr, 1)
	// The node reads its own copy: the caller goes on to change env for the
	// next node while this one runs.
	a := &app{getenv: envOf(maps.Clone(env)), stdout: stdout, stderr: stderr, onListen: func(addr net.Addr) { listening <- addr }}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan int, 1)
	go func() { exited <- a.run(ctx, args) }()
	var addr net.Addr
	select {
	case addr = <-listening:
	case code := <-exited:
		cancel()
		t.Fatalf("serve exited %d before listening:\n%s%s", code, stdout, stderr)
	case <-time.After(60 * time.Second):
		cancel()
		t.Fatalf("serve did not listen within 60s:\n%s", stderr)
	}
	var once sync.Once
	code := 0
	stop := func() int {
		once.Do(func() {
			cancel()
			code = <-exited
		})
		return code
	}
	t.Cleanup(func() { stop() })
	return &node{base: "http://" + addr.String(), stdout: stdout, stop: stop}
}

func (n *node) get(t *testing.T, path string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(n.base + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: decode: %v", path, err)
	}
	return resp.StatusCode, body
}

// runCommand runs a one-shot command and returns its exit code and output.
func runCommand(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	out := &syncBuffer{}
	// The node reads its own copy: the caller goes on to change env for the
	// next node while this one runs.
	a := &app{getenv: envOf(maps.Clone(env)), stdout: out, stderr: out}
	code := a.run(context.Background(), args)
	return code, out.String()
}

// embeddedCounts reads what the embedded store in dir holds.
func embeddedCounts(t *testing.T, dir string) (referrals, events int, demoPassword string) {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(dir, "patientpass.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rs, err := s.Referrals(ctx, rooms.ReferralFilter{VisibleToOrganisation: "RET"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		es, err := s.Events(ctx, r.ID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			// Reminders are the triage clocks' own, raised by whichever run
			// reaches their time first: not the seeding's.
			if e.Kind != rooms.EventReminder {
				events++
			}
		}
	}
	pw, err := s.Setting(ctx, "demo.password")
	if err != nil {
		t.Fatal(err)
	}
	return len(rs), events, pw
}

func TestEmbeddedDemoServesAndKeepsItsDataAcrossARestart(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PATIENTPASS_DATA_DIR": dir}
	n := startNode(t, env, "--demo")
	if code, body := n.get(t, "/healthz"); code != 200 || body["status"] != "ok" {
		t.Fatalf("/healthz = %d %v; want 200 ok", code, body)
	}
	if code, _ := n.get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d; want 200", code)
	}
	out := n.stdout.String()
	for _, want := range []string{"referrer@demo.test", "specialist@demo.test", "coordinator@demo.test", "bedmanager@demo.test", "admin@demo.test", "outsider@demo.test", "otpauth://totp/"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}
	if code := n.stop(); code != 0 {
		t.Fatalf("serve exited %d; want 0", code)
	}
	referrals, events, pw := embeddedCounts(t, dir)
	if referrals != 14 || events < 80 {
		t.Fatalf("after the first run: %d referrals, %d events; want the 14 demo referrals with their events", referrals, events)
	}
	if !strings.Contains(out, pw) {
		t.Fatalf("printed logins do not show the kept demo password")
	}

	// The same data directory again, seeded again: nothing lost, nothing doubled.
	n = startNode(t, env, "--demo")
	if code, _ := n.get(t, "/healthz"); code != 200 {
		t.Fatalf("/healthz after restart = %d", code)
	}
	if !strings.Contains(n.stdout.String(), pw) {
		t.Fatalf("restart printed a different demo password")
	}
	n.stop()
	r2, e2, pw2 := embeddedCounts(t, dir)
	if r2 != referrals || e2 != events || pw2 != pw {
		t.Fatalf("after restart: %d referrals, %d events; want %d and %d unchanged", r2, e2, referrals, events)
	}
	if code, out := runCommand(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("audit verify = %d: %s", code, out)
	}
}

// proxy forwards TCP to a target until cut, so a test can make Postgres stop
// answering for one node without touching the shared server.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	cut    bool       // guarded by mu
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.accept()
	t.Cleanup(p.Cut)
	return p
}

func (p *proxy) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			up.Close()
			return
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { io.Copy(up, c); up.Close() }()
		go func() { io.Copy(c, up); c.Close() }()
	}
}

// Cut closes the listener and every forwarded connection.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

// viaProxy rewrites a database URL to go through p.
func viaProxy(t *testing.T, dbURL string, p *proxy) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func TestPostgresIsMigratedAndReadyzNamesTheStoreWhenItStopsAnswering(t *testing.T) {
	dbURL := pgtest.URL(t)
	u, _ := url.Parse(dbURL)
	p := startProxy(t, u.Host)
	n := startNode(t, map[string]string{"DATABASE_URL": viaProxy(t, dbURL, p), "PATIENTPASS_DATA_DIR": t.TempDir()})
	if code, body := n.get(t, "/readyz"); code != 200 {
		t.Fatalf("/readyz = %d %v; want 200", code, body)
	}
	p.Cut()
	code, body := n.get(t, "/readyz")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with Postgres cut = %d; want 503", code)
	}
	if body["status"] != "unavailable" || fmt.Sprint(body["failing"]) != "[store]" {
		t.Fatalf("/readyz body %v; want unavailable naming the store", body)
	}
	if code, _ := n.get(t, "/healthz"); code != 200 {
		t.Fatalf("/healthz = %d while the store is down; want 200 (the process runs)", code)
	}
}

func TestReadyzNamesTheBrokerWhenRedisDoesNotAnswer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now
	n := startNode(t, map[string]string{"PATIENTPASS_DATA_DIR": t.TempDir(), "REDIS_URL": "redis://" + addr})
	code, body := n.get(t, "/readyz")
	if code != http.StatusServiceUnavailable || fmt.Sprint(body["failing"]) != "[broker]" {
		t.Fatalf("/readyz = %d %v; want 503 naming the broker", code, body)
	}
}

func TestAuditVerifyDetectsARowAlteredInPostgres(t *testing.T) {
	dbURL := pgtest.URL(t)
	env := map[string]string{"DATABASE_URL": dbURL, "PATIENTPASS_DATA_DIR": t.TempDir()}
	if code, out := runCommand(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate = %d: %s", code, out)
	}
	n := startNode(t, env, "--demo")
	n.stop()
	code, out := runCommand(t, env, "audit", "verify")
	if code != 0 || !strings.Contains(out, "intact") {
		t.Fatalf("audit verify on an untouched log = %d: %s", code, out)
	}

	ctx := context.Background()
	admin := pgtest.Admin(t, dbURL)
	if _, err := admin.Exec(ctx, `UPDATE audit_entries SET outcome = 'success' WHERE id = (SELECT min(id) FROM audit_entries)`); err == nil {
		t.Fatal("the database let an audit row be updated")
	}
	var id int64
	// Going around the triggers, as a superuser could.
	tx, err := admin.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `SET LOCAL session_replication_role = replica`); err != nil {
		t.Fatal(err)
	}
	err = tx.QueryRow(ctx, `UPDATE audit_entries SET detail = 'tampered' WHERE id = (SELECT id FROM audit_entries ORDER BY id OFFSET 10 LIMIT 1) RETURNING id`).Scan(&id)
	if err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	code, out = runCommand(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("audit entry %d ", id)) {
		t.Fatalf("audit verify after tampering with entry %d = %d: %s; want 1 naming it", id, code, out)
	}
}

func TestAuditVerifyDetectsARowAlteredInTheEmbeddedStore(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"PATIENTPASS_DATA_DIR": dir}
	n := startNode(t, env, "--demo")
	n.stop()
	if code, out := runCommand(t, env, "audit", "verify"); code != 0 {
		t.Fatalf("audit verify = %d: %s", code, out)
	}
	id := tamperEmbeddedAudit(t, filepath.Join(dir, "patientpass.db"))
	code, out := runCommand(t, env, "audit", "verify")
	if code != 1 || !strings.Contains(out, fmt.Sprintf("audit entry %d ", id)) {
		t.Fatalf("audit verify after tampering with entry %d = %d: %s; want 1 naming it", id, code, out)
	}
}

func TestUserCreateBootstrapsAnAdmin(t *testing.T) {
	env := map[string]string{"PATIENTPASS_DATA_DIR": t.TempDir()}
	args := []string{"user", "create", "--email", "Lead@Walton.nhs.uk", "--name", "Dr Lead", "--org", "RET", "--org-name", "The Walton Centre", "--body", "GMC", "--number", "1234567", "--role", "admin,specialist"}
	code, out := runCommand(t, env, args...)
	if code != 0 || !strings.Contains(out, "created lead@walton.nhs.uk") || !strings.Contains(out, "password: ") {
		t.Fatalf("user create = %d: %s", code, out)
	}
	code, out = runCommand(t, env, args...)
	if code != 1 || !strings.Contains(out, "--email: an account with this email already exists") {
		t.Fatalf("second user create = %d: %s; want 1 naming --email", code, out)
	}
	bad := append([]string{}, args...)
	bad[3] = "other@walton.nhs.uk"
	bad[13] = "123456"
	code, out = runCommand(t, env, bad...)
	if code != 1 || !strings.Contains(out, "--number: GMC number must be 7 digits") {
		t.Fatalf("user create with a 6-digit GMC number = %d: %s", code, out)
	}
}

func TestVersionAndUnknownCommands(t *testing.T) {
	if code, out := runCommand(t, map[string]string{}, "version"); code != 0 || !strings.HasPrefix(out, "patientpass ") {
		t.Fatalf("version = %d %q", code, out)
	}
	if code, _ := runCommand(t, map[string]string{}, "frobnicate"); code != 2 {
		t.Fatalf("unknown command exit %d; want 2", code)
	}
	if code, _ := runCommand(t, map[string]string{"LOG_LEVEL": "loud", "PATIENTPASS_DATA_DIR": t.TempDir()}, "serve"); code != 1 {
		t.Fatalf("serve with LOG_LEVEL=loud exit %d; want 1", code)
	}
}
