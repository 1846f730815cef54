package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// testDatabase is the Postgres the short runs make their schemas in.
func testDatabase() string {
	if u := os.Getenv("PATIENTPASS_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://root@127.0.0.1:5432/test?sslmode=disable"
}

// needServices skips the test when Postgres or redis-server is missing,
// unless CI is set: then they must be there.
func needServices(t *testing.T) {
	t.Helper()
	missing := func(format string, args ...any) {
		t.Helper()
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but "+format, args...)
		}
		t.Skipf("skipped: "+format+" (set CI=true to make this a failure)", args...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, testDatabase())
	if err != nil {
		missing("Postgres does not answer at %s: %v", testDatabase(), err)
	}
	_ = conn.Close(ctx)
	if _, err := exec.LookPath("redis-server"); err != nil {
		missing("redis-server is not installed: %v", err)
	}
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// nodeBinary builds patientpass once for every short run.
func nodeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "loadtest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "patientpass")
		out, err := exec.Command("go", "build", "-o", builtBin, "patientpass/cmd/patientpass").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("%s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build patientpass: %v", buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		_ = os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

// shortRun runs loadtest with args against nodes it starts, and returns
// its exit code and its JSON result.
func shortRun(t *testing.T, args ...string) (int, result, string) {
	t.Helper()
	needServices(t)
	t.Setenv("DATABASE_URL", testDatabase())
	args = append(args, "-bin", nodeBinary(t), "-json", "-progress", "0")
	var stdout, stderr bytes.Buffer
	code := command(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("the last line of the output is not the JSON result: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	return code, res, stdout.String() + stderr.String()
}

// The short runs are CI's guard on the guarantees: correctness only, no
// timing. A run that delivered nothing would pass the zero counts, so each
// also checks that everything posted was acknowledged and delivered.
func TestShortFanoutLosesNothing(t *testing.T) {
	code, res, out := shortRun(t, "-scenario", "fanout", "-nodes", "2", "-clients", "40", "-rooms", "4", "-rate", "80", "-duration", "3s")
	if code != exitPass || !res.Pass {
		t.Fatalf("fanout exit %d; output:\n%s", code, out)
	}
	checkEverythingArrived(t, res, out)
	// Nodes it started itself: the server's CPU per post is reported.
	if c := res.ServerCPU; c == nil || c.Node <= 0 || c.Postgres <= 0 || c.Total < c.Node+c.Postgres-0.02 {
		t.Fatalf("server CPU per post %+v; want the node's and Postgres's shares:\n%s", c, out)
	}
}

func TestShortChaosLosesNothingAcknowledged(t *testing.T) {
	code, res, out := shortRun(t, "-scenario", "chaos", "-clients", "40", "-rooms", "4", "-rate", "40", "-duration", "12s", "-converge", "60s")
	if code != exitPass || !res.Pass {
		t.Fatalf("chaos exit %d; output:\n%s", code, out)
	}
	checkEverythingArrived(t, res, out)
	if len(res.Faults) != 3 {
		t.Fatalf("chaos injected %d faults; want node kill, Redis restart and Postgres backends terminated:\n%s", len(res.Faults), out)
	}
	if res.Reconnects == 0 {
		t.Fatalf("no client reconnected although a node was killed:\n%s", out)
	}
}

func checkEverythingArrived(t *testing.T, res result, out string) {
	t.Helper()
	if res.Connected != res.Clients || res.Sent == 0 || res.Acked != res.Sent {
		t.Fatalf("connected %d of %d, acked %d of %d sent:\n%s", res.Connected, res.Clients, res.Acked, res.Sent, out)
	}
	if res.Expected == 0 || res.Delivered != res.Expected {
		t.Fatalf("delivered %d of %d expected:\n%s", res.Delivered, res.Expected, out)
	}
	if res.Lost+res.Duplicated+res.OutOfOrder+res.Diverged+res.Phantom+res.AckedNotStored != 0 {
		t.Fatalf("correctness counts not zero: %+v", res)
	}
}

// The checker itself must see what it exists to see: a client's record of
// what it received, compared with the store, counts every kind of fault.
func TestCheckCountsEveryFault(t *testing.T) {
	r := newRun(config{Scenario: "fanout", Converge: time.Millisecond}, &bytes.Buffer{}, &bytes.Buffer{})
	rm := &room{id: "r", topic: "referral:r"}
	r.rooms = []*room{rm}
	r.posts = postLog{recs: make([]postRec, 4)}
	// The store holds seq 1 (not a post) and posts 0, 1, 2 at seqs 2, 3, 4;
	// post 3 was acknowledged at seq 5, which the store does not hold.
	truth := []roomTruth{{ids: map[int64]int64{1: -1, 2: 0, 3: 1, 4: 2}, head: 4}}
	for id, seq := range []int64{2, 3, 4, 5} {
		rec := &r.posts.recs[id]
		r.posts.take()
		rec.sent.Store(1)
		rec.acked.Store(2)
		rec.seq.Store(seq)
	}
	clients := map[string][][2]int64{ // name: (seq, post id) received, in order
		"perfect":   {{1, -1}, {2, 0}, {3, 1}, {4, 2}},
		"lost":      {{1, -1}, {2, 0}, {4, 2}},
		"duplicate": {{1, -1}, {2, 0}, {2, 0}, {3, 1}, {4, 2}},
		"reordered": {{1, -1}, {3, 1}, {2, 0}, {4, 2}},
		"diverged":  {{1, -1}, {2, 1}, {3, 0}, {4, 2}},
		"phantom":   {{1, -1}, {2, 0}, {3, 1}, {4, 2}, {5, 3}},
	}
	want := map[string]result{
		"perfect":   {},
		"lost":      {Lost: 1},
		"duplicate": {Duplicated: 1},
		"reordered": {OutOfOrder: 1},
		"diverged":  {Diverged: 2},
		"phantom":   {Phantom: 1},
	}
	for name, got := range clients {
		v := &vclient{room: rm}
		v.subscribed.Store(true)
		for _, ev := range got {
			v.record(ev[0], ev[1])
		}
		rm.members = []*vclient{v}
		r.res = result{}
		r.check(truth)
		w := want[name]
		if r.res.Lost != w.Lost || r.res.Duplicated != w.Duplicated || r.res.OutOfOrder != w.OutOfOrder ||
			r.res.Diverged != w.Diverged || r.res.Phantom != w.Phantom {
			t.Errorf("%s client: lost %d dup %d ooo %d diverged %d phantom %d; want %+v", name,
				r.res.Lost, r.res.Duplicated, r.res.OutOfOrder, r.res.Diverged, r.res.Phantom, w)
		}
		if r.res.AckedNotStored != 1 || r.res.Acked != 4 {
			t.Errorf("%s: acked %d, acked but not stored %d; want 4 and 1 (post 3)", name, r.res.Acked, r.res.AckedNotStored)
		}
		if len(r.res.Failures) == 0 {
			t.Errorf("%s: no failure reported", name)
		}
	}
}

// TestProcessTicksReadsThisProcess reads /proc/self's CPU ticks, which
// grow with work, and turns ticks into milliseconds per post.
func TestProcessTicksReadsThisProcess(t *testing.T) {
	before, ok := processTicks(os.Getpid())
	if !ok {
		t.Skip("no /proc here")
	}
	for x, deadline := 0, time.Now().Add(200*time.Millisecond); time.Now().Before(deadline); x++ {
		_ = x * x
	}
	after, _ := processTicks(os.Getpid())
	if after <= before {
		t.Fatalf("ticks went from %d to %d over 200 ms of work", before, after)
	}
	f := perPost(cpuSample{node: 100, redis: 10, postgres: 200}, cpuSample{node: 200, redis: 20, postgres: 400}, 1000)
	if f.Node != 1 || f.Redis != 0.1 || f.Postgres != 2 || f.Total != 3.1 {
		t.Fatalf("per post %+v; want 1 ms node, 0.1 ms Redis, 2 ms Postgres", f)
	}
}

func TestHistogramQuantilesAreWithinThreePercent(t *testing.T) {
	var h histogram
	for us := 1; us <= 100000; us++ {
		h.record(time.Duration(us) * time.Microsecond)
	}
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := q * 100000
		got := float64(h.quantile(q).Microseconds())
		if got < want || got > want*1.03 {
			t.Errorf("p%g = %.0fµs; want %.0fµs to 3%% above", q*100, got, want)
		}
	}
	if h.quantile(1) != 100*time.Millisecond {
		t.Errorf("max = %s; want 100ms", h.quantile(1))
	}
}

func TestFlagsNameWhatIsWrong(t *testing.T) {
	env := func(k string) string {
		return map[string]string{"PATIENTPASS_DEMO_PASSWORD": "pw", "PATIENTPASS_DEMO_TOTP_SECRET": "s"}[k]
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{}, "-url is required"},
		{[]string{"-url", "http://a", "-scenario", "stampede"}, "-scenario"},
		{[]string{"-url", "ftp://a"}, "-url"},
		{[]string{"-url", "http://a", "-clients", "0"}, "-clients"},
		{[]string{"-url", "http://a", "-clients", "5", "-rooms", "6"}, "-rooms"},
		{[]string{"-url", "http://a", "-rate", "-1"}, "-rate"},
		{[]string{"-url", "http://a", "-nodes", "2"}, "exclude"},
		{[]string{"-nodes", "1", "-origin", "http://a"}, "-origin"},
		{[]string{"-url", "http://a", "-url", "http://b", "-url", "http://c", "-origin", "http://a", "-origin", "http://b"}, "-origin"},
		{[]string{"-url", "http://a", "-origin", "a.example"}, "-origin"},
	} {
		_, err := parseFlags(tc.args, &bytes.Buffer{}, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v; want one naming %s", tc.args, err, tc.want)
		}
	}
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"-url", "http://a:8080/", "-url", "https://b.example/app"}, []string{"http://a:8080", "https://b.example"}},
		{[]string{"-url", "http://10.0.0.1:8080", "-url", "http://10.0.0.2:8080", "-origin", "https://pp.example"}, []string{"https://pp.example", "https://pp.example"}},
		{[]string{"-url", "http://a", "-url", "http://b", "-origin", "https://a.example", "-origin", "https://b.example"}, []string{"https://a.example", "https://b.example"}},
	} {
		cfg, err := parseFlags(tc.args, &bytes.Buffer{}, env)
		if err != nil || strings.Join(cfg.Origins, " ") != strings.Join(tc.want, " ") {
			t.Errorf("%v: origins %v, %v; want %v", tc.args, cfg.Origins, err, tc.want)
		}
	}
	_, err := parseFlags([]string{"-url", "http://a"}, &bytes.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "PATIENTPASS_DEMO_PASSWORD") {
		t.Errorf("without the demo password: %v", err)
	}
	// Registrations are anonymous: no demo logins, and -rooms does not apply.
	if _, err := parseFlags([]string{"-url", "http://a", "-scenario", "registrations", "-clients", "5"}, &bytes.Buffer{}, func(string) string { return "" }); err != nil {
		t.Errorf("registrations without the demo password: %v", err)
	}
}

// -h is a request, not a mistake: the usage goes to stdout and the exit
// status is 0; a flag that does not exist is still a usage error.
func TestHelpExitsZeroAndBadFlagsTwo(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stdout, stderr bytes.Buffer
		code := command(context.Background(), []string{arg}, strings.NewReader(""), &stdout, &stderr)
		if code != exitPass {
			t.Errorf("%s: exit %d; want %d (stderr %q)", arg, code, exitPass, stderr.String())
		}
		if !strings.Contains(stdout.String(), "Usage:") || !strings.Contains(stdout.String(), "-scenario") {
			t.Errorf("%s: stdout does not hold the usage:\n%s", arg, stdout.String())
		}
	}
	for _, args := range [][]string{{"-no-such-flag"}, {"-clients", "many"}, {"-url", "http://a", "-clients", "0"}} {
		var stdout, stderr bytes.Buffer
		code := command(context.Background(), args, strings.NewReader(""), &stdout, &stderr)
		if code != exitError {
			t.Errorf("%v: exit %d; want %d", args, code, exitError)
		}
		if !strings.Contains(stderr.String(), "Usage:") {
			t.Errorf("%v: no usage on stderr:\n%s", args, stderr.String())
		}
	}
}

// Nodes with public URLs of their own each trust only their own origin, so
// against -url A -url B every request and WebSocket to B must carry B's
// Origin. The nodes are started by the tool's own cluster code, which gives
// each its own PATIENTPASS_PUBLIC_URL; the run is then made against them as
// running nodes.
func TestEachNodeGetsItsOwnOrigin(t *testing.T) {
	needServices(t)
	cfg := config{Nodes: 2, DatabaseURL: testDatabase(), Bin: nodeBinary(t)}
	cl, err := startCluster(context.Background(), &cfg, "origin"+randomDigits(6), t.Logf)
	if cl != nil {
		t.Cleanup(cl.close)
	}
	if err != nil {
		t.Fatal(err)
	}
	a, b := cfg.URLs[0], cfg.URLs[1]
	if cfg.Origins[0] != a || cfg.Origins[1] != b {
		t.Fatalf("started nodes' origins %v; want their own addresses %v", cfg.Origins, cfg.URLs)
	}
	ctx := context.Background()

	// B refuses a login carrying A's origin: without this the test could
	// not tell a node that checks from one that does not.
	var ae *apiError
	err = newBrowser(b, a).login(ctx, "referrer@demo.test", cfg.Password, "")
	if !errors.As(err, &ae) || ae.Status != http.StatusForbidden {
		t.Fatalf("login to node B with node A's origin: %v; want 403", err)
	}
	for _, u := range cfg.URLs {
		if err := newBrowser(u, u).login(ctx, "referrer@demo.test", cfg.Password, ""); err != nil {
			t.Fatalf("login to %s with its own origin: %v", u, err)
		}
	}

	t.Setenv("PATIENTPASS_DEMO_PASSWORD", cfg.Password)
	t.Setenv("PATIENTPASS_DEMO_TOTP_SECRET", cfg.TOTPSecret)
	var stdout, stderr bytes.Buffer
	code := command(ctx, []string{"-url", a, "-url", b, "-clients", "8", "-rooms", "2", "-users", "4",
		"-rate", "20", "-duration", "2s", "-json", "-progress", "0"}, strings.NewReader(""), &stdout, &stderr)
	out := stdout.String() + stderr.String()
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("no JSON result: %v\n%s", err, out)
	}
	if code != exitPass || !res.Pass || res.Nodes != 2 {
		t.Fatalf("fanout over -url A -url B: exit %d, %d nodes:\n%s", code, res.Nodes, out)
	}
	checkEverythingArrived(t, res, out)
}

// The resident memory is read under the standard process collector's name
// and under the name nodes used before; a node whose public listener no
// longer serves /metrics reports nothing there rather than a wrong figure.
func TestServerMemoryFromEitherMetricName(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       int64
		ok         bool
	}{
		{"client_golang", "# HELP process_resident_memory_bytes Resident memory size in bytes.\n# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes 3.3456128e+07\n", 33456128, true},
		{"before", "patientpass_ws_connections 3\npatientpass_process_resident_memory_bytes 41234432\n", 41234432, true},
		{"both", "patientpass_process_resident_memory_bytes 1\nprocess_resident_memory_bytes 2\n", 2, true},
		{"neither", "patientpass_ws_connections 3\nprocess_virtual_memory_bytes 9e+08\n", 0, false},
	} {
		got, ok := parseMetric(tc.text, residentMemoryMetrics...)
		if got != tc.want || ok != tc.ok {
			t.Errorf("%s: %d, %v; want %d, %v", tc.name, got, ok, tc.want, tc.ok)
		}
	}

	metrics := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "process_resident_memory_bytes 5.24288e+07")
	}))
	defer metrics.Close()
	public := httptest.NewServer(http.NotFoundHandler()) // /metrics has moved off it
	defer public.Close()
	env := func(k string) string {
		return map[string]string{"PATIENTPASS_DEMO_PASSWORD": "pw", "PATIENTPASS_DEMO_TOTP_SECRET": "s"}[k]
	}
	ctx := context.Background()
	cfg, err := parseFlags([]string{"-url", public.URL, "-metrics-url", metrics.URL}, &bytes.Buffer{}, env)
	if err != nil {
		t.Fatal(err)
	}
	if want := metrics.URL + "/metrics"; len(cfg.MetricsURLs) != 1 || cfg.MetricsURLs[0] != want {
		t.Fatalf("metrics URLs %v; want [%s]", cfg.MetricsURLs, want)
	}
	if rss := newRun(cfg, io.Discard, io.Discard).serverRSS(ctx); rss != 52428800 {
		t.Errorf("with -metrics-url: server RSS %d; want 52428800", rss)
	}
	cfg, _ = parseFlags([]string{"-url", public.URL}, &bytes.Buffer{}, env)
	if rss := newRun(cfg, io.Discard, io.Discard).serverRSS(ctx); rss != 0 {
		t.Errorf("without -metrics-url, from a public listener that 404s /metrics: %d; want 0 (unknown)", rss)
	}
	cfg, _ = parseFlags([]string{"-url", metrics.URL}, &bytes.Buffer{}, env)
	if rss := newRun(cfg, io.Discard, io.Discard).serverRSS(ctx); rss != 52428800 {
		t.Errorf("without -metrics-url, from a public listener serving /metrics: %d; want 52428800", rss)
	}
	for _, args := range [][]string{
		{"-url", "http://a", "-url", "http://b", "-metrics-url", "http://a:9090"},
		{"-nodes", "1", "-metrics-url", "http://a:9090"},
		{"-url", "http://a", "-metrics-url", "a:9090"},
	} {
		if _, err := parseFlags(args, &bytes.Buffer{}, env); err == nil || !strings.Contains(err.Error(), "-metrics-url") {
			t.Errorf("%v: error %v; want one naming -metrics-url", args, err)
		}
	}
}

// The registrations scenario sends valid bodies with each node's Origin,
// counts every answer by status without retrying, and fails on a 500.
func TestRegistrationsCountsAnswersByStatus(t *testing.T) {
	var mu sync.Mutex
	var received []map[string]string
	answers := []int{201, 201, 429, 503, 500, 409} // by arrival, repeated
	node := func(name string) *httptest.Server {
		var srv *httptest.Server
		srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metrics" {
				fmt.Fprintln(w, "process_resident_memory_bytes 1e+07")
				return
			}
			var body map[string]string
			err := json.NewDecoder(r.Body).Decode(&body)
			if r.Method != "POST" || r.URL.Path != "/api/register" || err != nil ||
				r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Origin") != srv.URL {
				t.Errorf("%s: %s %s, Content-Type %q, Origin %q (want %q), body error %v", name, r.Method, r.URL.Path,
					r.Header.Get("Content-Type"), r.Header.Get("Origin"), srv.URL, err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
			mu.Lock()
			received = append(received, body)
			status := answers[(len(received)-1)%len(answers)]
			mu.Unlock()
			if status == 429 || status == 503 {
				w.Header().Set("Retry-After", "7")
			}
			w.WriteHeader(status)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := node("A"), node("B")
	var stdout, stderr bytes.Buffer
	code := command(context.Background(), []string{"-url", a.URL, "-url", b.URL, "-scenario", "registrations",
		"-clients", "12", "-json", "-progress", "0"}, strings.NewReader(""), &stdout, &stderr)
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || res.RegistrationFigures == nil {
		t.Fatalf("no registrations JSON result (%v):\n%s\n%s", err, stdout.String(), stderr.String())
	}
	if code != exitFailed || res.Pass {
		t.Errorf("exit %d, pass %v with 500s among the answers; want %d, false", code, res.Pass, exitFailed)
	}
	want := map[string]int64{"201": 4, "429": 2, "503": 2, "500": 2, "other": 2}
	for k, n := range want {
		if res.Statuses[k] != n {
			t.Errorf("statuses %v; want %v", res.Statuses, want)
			break
		}
	}
	if res.Server500 != 2 || res.OtherStatuses["409"] != 2 || res.RetryAfterMaxS != 7 || res.TransportErrors != 0 {
		t.Errorf("server_500 %d, other %v, retry-after %d, transport errors %d; want 2, 409:2, 7, 0",
			res.Server500, res.OtherStatuses, res.RetryAfterMaxS, res.TransportErrors)
	}
	if res.P50 <= 0 || res.P99 < res.P50 || res.IdleRSS != 2e7 || res.PeakRSS != 2e7 {
		t.Errorf("p50 %v p99 %v, idle RSS %d, peak %d; want latencies and 20000000 from the two nodes' metrics",
			res.P50, res.P99, res.IdleRSS, res.PeakRSS)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(received) != 12 {
		t.Fatalf("the nodes received %d registrations; want 12 (nothing retried)", len(received))
	}
	emails, numbers := map[string]bool{}, map[string]bool{}
	for _, body := range received {
		if body["professional_body"] != "GMC" || len(body["registration_number"]) != 7 || body["organisation"] != "RJR" ||
			body["role"] != "clinician" || len(body["password"]) < 12 || body["name"] == "" {
			t.Errorf("registration body %v is not a valid clinician registration", body)
		}
		emails[body["email"]], numbers[body["registration_number"]] = true, true
	}
	if len(emails) != 12 || len(numbers) != 12 {
		t.Errorf("%d distinct emails and %d distinct GMC numbers over 12 registrations; want 12 of each", len(emails), len(numbers))
	}
}

// Against a real node every valid registration is created.
func TestShortRegistrationsAreCreated(t *testing.T) {
	code, res, out := shortRun(t, "-scenario", "registrations", "-nodes", "1", "-clients", "6")
	if code != exitPass || !res.Pass || res.RegistrationFigures == nil || res.Statuses["201"] != 6 {
		t.Fatalf("registrations exit %d; output:\n%s", code, out)
	}
	if res.IdleRSS <= 0 || res.PeakRSS < res.IdleRSS {
		t.Fatalf("idle RSS %d, peak %d; want both from the started node's /proc:\n%s", res.IdleRSS, res.PeakRSS, out)
	}
}
