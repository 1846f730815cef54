package metrics

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
)

const durationName = "patientpass_http_request_duration_seconds"

// testClock is a clock that moves only when a test moves it.
type testClock struct {
	mu sync.Mutex
	t  time.Time // guarded by mu
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newWithClock(t *testing.T) (*Metrics, *testClock) {
	t.Helper()
	m := New()
	clock := &testClock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	m.now = clock.now
	return m, clock
}

// requestSeries returns the duration histograms by "method route code".
func requestSeries(t *testing.T, m *Metrics) map[string]*dto.Histogram {
	t.Helper()
	out := map[string]*dto.Histogram{}
	mf, ok := scrape(t, m)[durationName]
	if !ok {
		return out
	}
	if mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("%s is a %v", durationName, mf.GetType())
	}
	for _, metric := range mf.GetMetric() {
		labels := map[string]string{}
		for _, l := range metric.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if len(labels) != 3 {
			t.Fatalf("%s series with labels %v; want method, route, code", durationName, labels)
		}
		out[labels["method"]+" "+labels["route"]+" "+labels["code"]] = metric.GetHistogram()
	}
	return out
}

func serve(h http.Handler, method, target string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec
}

func TestMiddlewareLabelsByPatternNeverPath(t *testing.T) {
	m, clock := newWithClock(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/referrals/{id}", func(w http.ResponseWriter, r *http.Request) {
		clock.advance(30 * time.Millisecond)
		_, _ = io.WriteString(w, `{"id":"`+r.PathValue("id")+`"}`)
	})
	mux.HandleFunc("POST /api/referrals", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {}) // writes nothing: a 200
	mux.HandleFunc("PUT /api/referrals/{id}/read", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusEarlyHints) // interim; the final status is what counts
		http.Error(w, "conflict", http.StatusConflict)
	})
	h := m.Middleware(mux)

	const id = "ref-9f3c2a" // stands for anything a path can carry
	serve(h, "GET", "/api/referrals/"+id)
	serve(h, "GET", "/api/referrals/ref-other")
	serve(h, "POST", "/api/referrals")
	serve(h, "GET", "/healthz")
	serve(h, "PUT", "/api/referrals/"+id+"/read")
	serve(h, "GET", "/api/nothing/"+id)    // 404
	serve(h, "BREW", "/api/referrals/"+id) // 405, and a method nobody defined

	got := requestSeries(t, m)
	want := map[string]uint64{
		"GET GET /api/referrals/{id} 2xx":      2,
		"POST POST /api/referrals 2xx":         1,
		"GET GET /healthz 2xx":                 1,
		"PUT PUT /api/referrals/{id}/read 4xx": 1,
		"GET unmatched 4xx":                    1,
		"other unmatched 4xx":                  1,
	}
	for key, n := range want {
		if got[key].GetSampleCount() != n {
			t.Errorf("%s: %d requests; want %d", key, got[key].GetSampleCount(), n)
		}
	}
	for key := range got {
		if _, ok := want[key]; !ok {
			t.Errorf("unexpected series %q", key)
		}
		if strings.Contains(key, "ref-") {
			t.Errorf("series %q carries a path", key)
		}
	}
	if s := got["GET GET /api/referrals/{id} 2xx"].GetSampleSum(); s != 0.06 {
		t.Errorf("GET /api/referrals/{id} took %v s in all; want 0.06", s)
	}
}

// Outside a middleware that replaces the request, the mux's Pattern is set
// on a request this middleware never sees: it counts "unmatched", which is
// imprecise but still no path.
func TestMiddlewareOutsideARequestCopyCountsUnmatched(t *testing.T) {
	m := New()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/referrals/{id}", func(w http.ResponseWriter, r *http.Request) {})
	type key struct{}
	copying := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), key{}, 1)))
	})
	serve(m.Middleware(copying), "GET", "/api/referrals/ref-1")
	got := requestSeries(t, m)
	if len(got) != 1 || got["GET unmatched 2xx"].GetSampleCount() != 1 {
		t.Errorf("series %v; want one GET unmatched 2xx", got)
	}
}

// An upgrade behind the middleware hijacks the connection through Unwrap,
// as coder/websocket does, and is timed until its 101 only.
func TestMiddlewareLetsAnUpgradeHijack(t *testing.T) {
	m, clock := newWithClock(t)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /ws", func(w http.ResponseWriter, r *http.Request) {
		clock.advance(2 * time.Millisecond)
		w.Header().Set("Connection", "Upgrade")
		w.Header().Set("Upgrade", "echo")
		w.WriteHeader(http.StatusSwitchingProtocols)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack behind the middleware: %v", err)
			return
		}
		defer conn.Close()
		line, err := brw.ReadString('\n')
		if err != nil {
			t.Errorf("read from the hijacked connection: %v", err)
			return
		}
		_, _ = brw.WriteString(line)
		_ = brw.Flush()
		clock.advance(time.Hour) // the socket's life, which must not count
	})
	instrumented := m.Middleware(mux)
	done := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		instrumented.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	conn, err := net.Dial("tcp", srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	req, _ := http.NewRequest("GET", srv.URL+"/ws", nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	res, err := http.ReadResponse(br, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusSwitchingProtocols || res.Header.Get("Upgrade") != "echo" {
		t.Fatalf("upgrade answered %s %v", res.Status, res.Header)
	}
	if _, err := io.WriteString(conn, "ping\n"); err != nil {
		t.Fatal(err)
	}
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo over the hijacked connection: %q, %v", line, err)
	}
	<-done

	got := requestSeries(t, m)
	h := got["GET GET /ws 1xx"]
	if len(got) != 1 || h.GetSampleCount() != 1 {
		t.Fatalf("series %v; want one GET GET /ws 1xx", got)
	}
	if h.GetSampleSum() != 0.002 {
		t.Errorf("upgrade timed at %v s; want 0.002, until the 101", h.GetSampleSum())
	}
}

func TestMiddlewareLetsAHandlerFlush(t *testing.T) {
	m := New()
	rec := httptest.NewRecorder()
	m.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "data: 1\n\n")
		if err := http.NewResponseController(w).Flush(); err != nil {
			t.Errorf("flush behind the middleware: %v", err)
		}
	})).ServeHTTP(rec, httptest.NewRequest("GET", "/events", nil))
	if !rec.Flushed {
		t.Error("the server's writer was not flushed")
	}
}

func TestCodeClass(t *testing.T) {
	for status, want := range map[int]string{
		0: "2xx", 101: "1xx", 200: "2xx", 204: "2xx", 302: "3xx", 404: "4xx", 429: "4xx", 500: "5xx", 599: "5xx",
		99: "other", 600: "other",
	} {
		if got := codeClass(status); got != want {
			t.Errorf("codeClass(%d) = %q; want %q", status, got, want)
		}
	}
}
