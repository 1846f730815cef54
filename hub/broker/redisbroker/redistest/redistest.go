// Package redistest gives tests a Redis: the shared one, under a key prefix
// of their own, or a private redis-server they may restart. It is imported
// only by tests.
//
// The shared Redis comes from PATIENTPASS_TEST_REDIS_URL (default
// redis://127.0.0.1:6379/0). When it does not answer, or redis-server is not
// installed, tests are skipped, unless CI is set: then they fail.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultURL is the Redis used when PATIENTPASS_TEST_REDIS_URL is unset.
const DefaultURL = "redis://127.0.0.1:6379/0"

// connectTimeout bounds how long a test waits for a Redis that is not there
// before skipping, and how long a private server may take to start.
const connectTimeout = 5 * time.Second

// Client connects to the shared test Redis and closes the client when the
// test ends. Tests must keep to a prefix of their own (Prefix) and never
// flush: others use the same Redis.
func Client(t testing.TB) *redis.Client {
	t.Helper()
	u := os.Getenv("PATIENTPASS_TEST_REDIS_URL")
	if u == "" {
		u = DefaultURL
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		t.Fatalf("redistest: PATIENTPASS_TEST_REDIS_URL must be a redis:// URL: %v", err)
	}
	rdb := redis.NewClient(opts)
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), connectTimeout)
	defer cancel()
	if err := rdb.Ping(ctx).Err(); err != nil {
		unavailable(t, fmt.Sprintf("Redis at %s does not answer: %v", opts.Addr, err))
	}
	return rdb
}

// Prefix returns a key and channel prefix unique to this test, such as
// "test:1f2e3d4c5b6a:".
func Prefix(t testing.TB) string {
	t.Helper()
	var p [6]byte
	if _, err := rand.Read(p[:]); err != nil {
		t.Fatalf("redistest: random prefix: %v", err)
	}
	return "test:" + hex.EncodeToString(p[:]) + ":"
}

// StartServer starts a private redis-server on 127.0.0.1, without
// persistence, and stops it when the test ends. restart kills it (as a crash
// would: no clean shutdown) and starts it again on the same port, empty, and
// returns once it answers. Call restart from the test's goroutine.
func StartServer(t testing.TB) (addr string, restart func()) {
	t.Helper()
	s := startServer(t)
	return s.addr(), s.restart
}

// StartStoppable is StartServer for a test that does something while Redis
// is down: stop kills the server; start starts it again on the same port,
// empty, and returns once it answers. Call both from the test's goroutine.
func StartStoppable(t testing.TB) (addr string, stop, start func()) {
	t.Helper()
	s := startServer(t)
	return s.addr(), s.stop, s.restart
}

func startServer(t testing.TB) *server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		unavailable(t, "redis-server is not installed")
	}
	s := &server{t: t, bin: bin, dir: t.TempDir()}
	t.Cleanup(s.stop)

	// Another process may take the free port between our finding it and
	// redis-server binding it; then try another.
	var lastErr error
	for range 3 {
		s.port = freePort(t)
		if lastErr = s.start(); lastErr == nil {
			return s
		}
	}
	t.Fatalf("redistest: start redis-server: %v", lastErr)
	return nil
}

type server struct {
	t    testing.TB
	bin  string
	dir  string
	port int

	mu     sync.Mutex
	cmd    *exec.Cmd     // guarded by mu
	exited chan struct{} // closed when cmd has exited; guarded by mu
}

func (s *server) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)) }

// start launches redis-server and waits until it answers PING.
func (s *server) start() error {
	logPath := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--port", strconv.Itoa(s.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--logfile", logPath)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { // owned by server: stop and restart wait for it through exited
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	rdb := redis.NewClient(&redis.Options{Addr: s.addr(), MaxRetries: -1})
	defer rdb.Close()
	deadline := time.Now().Add(connectTimeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := rdb.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("redis-server on port %d exited: %s%s", s.port, out.Bytes(), tail(log))
		default:
		}
		if time.Now().After(deadline) {
			s.stop()
			return fmt.Errorf("redis-server on port %d did not answer within %s: %v", s.port, connectTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop kills redis-server and waits for it to exit.
func (s *server) stop() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd, s.exited = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

func (s *server) restart() {
	s.t.Helper()
	s.stop()
	if err := s.start(); err != nil {
		s.t.Fatalf("redistest: restart redis-server: %v", err)
	}
}

// freePort returns a TCP port on 127.0.0.1 that nothing listened on a moment
// ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("redistest: find a free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(b []byte) []byte {
	const limit = 2000
	if len(b) > limit {
		return b[len(b)-limit:]
	}
	return b
}

// unavailable skips the test, or fails it under CI, where Redis must be
// there.
func unavailable(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("redistest: %s (CI is set, so Redis must be available)", why)
	}
	t.Skipf("redistest: %s; skipping (set CI to make this a failure)", why)
}

// KillClientNamed kills, by id, the one connection called name, and returns
// its id.
func KillClientNamed(t testing.TB, ctx context.Context, rdb *redis.Client, name string) string {
	t.Helper()
	id := ClientIDNamed(t, ctx, rdb, name)
	if id == "" {
		t.Fatalf("no connection named %s in CLIENT LIST", name)
	}
	n, err := rdb.ClientKillByFilter(ctx, "ID", id).Result()
	if err != nil || n != 1 {
		t.Fatalf("CLIENT KILL ID %s = %d, %v; want 1 killed", id, n, err)
	}
	return id
}

// ClientIDNamed returns the id of the connection called name, or "".
func ClientIDNamed(t testing.TB, ctx context.Context, rdb *redis.Client, name string) string {
	t.Helper()
	list, err := rdb.ClientList(ctx).Result()
	if err != nil {
		t.Fatalf("CLIENT LIST: %v", err)
	}
	id := ""
	for line := range strings.Lines(list) {
		fields := map[string]string{}
		for f := range strings.FieldsSeq(line) {
			k, v, _ := strings.Cut(f, "=")
			fields[k] = v
		}
		if fields["name"] == name {
			if id != "" {
				t.Fatalf("two connections are named %s", name)
			}
			id = fields["id"]
		}
	}
	return id
}
