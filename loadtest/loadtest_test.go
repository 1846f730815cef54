package main

import (
	"bytes"
	"context"
	"encoding/json"
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
	} {
		_, err := parseFlags(tc.args, &bytes.Buffer{}, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v; want one naming %s", tc.args, err, tc.want)
		}
	}
	_, err := parseFlags([]string{"-url", "http://a"}, &bytes.Buffer{}, func(string) string { return "" })
	if err == nil || !strings.Contains(err.Error(), "PATIENTPASS_DEMO_PASSWORD") {
		t.Errorf("without the demo password: %v", err)
	}
}
