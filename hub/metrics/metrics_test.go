package metrics

import (
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// scrape reads m.Handler() as a scraper would, in the text format, and
// returns the families by name.
func scrape(t *testing.T, m *Metrics) map[string]*dto.MetricFamily {
	t.Helper()
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "text/plain")
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("scrape: status %d: %s", rec.Code, rec.Body)
	}
	format := expfmt.ResponseFormat(rec.Header())
	if format.FormatType() != expfmt.TypeTextPlain {
		t.Fatalf("scrape: Content-Type %q; want the text format", rec.Header().Get("Content-Type"))
	}
	dec := expfmt.NewDecoder(rec.Body, format)
	families := map[string]*dto.MetricFamily{}
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			break
		}
		families[mf.GetName()] = &mf
	}
	if len(families) == 0 {
		t.Fatal("scrape: no metric families")
	}
	return families
}

func TestScrapeHasTheHubFamilies(t *testing.T) {
	m := New()
	families := scrape(t, m)
	want := []struct {
		name, help string
		typ        dto.MetricType
	}{
		// Names and help texts as hub/metrics.go exposed them before.
		{"patientpass_ws_connections", "Open WebSocket connections on this node.", dto.MetricType_GAUGE},
		{"patientpass_ws_subscriptions", "Topic subscriptions of open connections on this node.", dto.MetricType_GAUGE},
		{"patientpass_ws_topics", "Topics this node holds (and listens to on the broker).", dto.MetricType_GAUGE},
		{"patientpass_ws_events_delivered_total", "Event frames written to WebSocket connections.", dto.MetricType_COUNTER},
		{"patientpass_ws_gap_repairs_total", "Store reads that found events the broker had not delivered.", dto.MetricType_COUNTER},
		{"patientpass_ws_repaired_events_total", "Events delivered from the store by gap repairs.", dto.MetricType_COUNTER},
		{"patientpass_ws_slow_consumer_closes_total", "Connections closed with 4008 because their send queue was full.", dto.MetricType_COUNTER},
		{"patientpass_ws_session_closes_total", "Connections closed with 4001 because their session ended.", dto.MetricType_COUNTER},
		{"patientpass_ws_frames_refused_total", "Client frames answered with an error frame.", dto.MetricType_COUNTER},
		{"patientpass_broker_publish_failures_total", "Broker publications that failed (repaired from the store).", dto.MetricType_COUNTER},
		{"patientpass_ws_delivery_latency_seconds", "From an event's commit to its frame being written to a socket.", dto.MetricType_HISTOGRAM},
		// New ones.
		{"patientpass_ws_frames_dropped_total", "", dto.MetricType_COUNTER},
		{"patientpass_ws_rate_limited_total", "", dto.MetricType_COUNTER},
		{"patientpass_password_hash_waiting", "", dto.MetricType_GAUGE},
		{"patientpass_password_hash_refused_total", "", dto.MetricType_COUNTER},
		{"patientpass_auth_throttled_total", "", dto.MetricType_COUNTER},
	}
	for _, w := range want {
		mf, ok := families[w.name]
		if !ok {
			t.Errorf("%s not in the scrape", w.name)
			continue
		}
		if mf.GetType() != w.typ {
			t.Errorf("%s is a %v; want a %v", w.name, mf.GetType(), w.typ)
		}
		if w.help != "" && mf.GetHelp() != w.help {
			t.Errorf("%s help = %q; want %q", w.name, mf.GetHelp(), w.help)
		}
	}
}

func TestLatencyHistogramKeepsItsBuckets(t *testing.T) {
	m := New()
	m.DeliveryLatency.Observe(0.004)
	h := scrape(t, m)["patientpass_ws_delivery_latency_seconds"].GetMetric()[0].GetHistogram()
	var got []float64
	for _, b := range h.GetBucket() {
		got = append(got, b.GetUpperBound())
	}
	// The text format carries the +Inf bucket; the parser keeps it.
	if n := len(got); n > 0 && math.IsInf(got[n-1], +1) {
		got = got[:n-1]
	}
	if len(got) != len(LatencyBuckets) {
		t.Fatalf("buckets %v; want %v", got, LatencyBuckets)
	}
	for i := range got {
		if got[i] != LatencyBuckets[i] {
			t.Fatalf("buckets %v; want %v", got, LatencyBuckets)
		}
	}
	if h.GetSampleCount() != 1 || h.GetBucket()[1].GetCumulativeCount() != 0 || h.GetBucket()[2].GetCumulativeCount() != 1 {
		t.Errorf("0.004 s not counted in the 5 ms bucket alone: %v", h)
	}
}

// Every value of a labelled family is exported from the start, so a rate
// over it is defined before the first drop, and no other value appears.
func TestLabelledFamiliesStartWithEveryValueAtZero(t *testing.T) {
	families := scrape(t, New())
	want := map[string][]string{
		"patientpass_ws_frames_dropped_total": {"closed", "queue_full", "too_large"},
		"patientpass_ws_rate_limited_total":   {"commands", "sockets"},
		"patientpass_auth_throttled_total":    {"login", "register", "token", "totp"},
	}
	for name, values := range want {
		ms := families[name].GetMetric()
		if len(ms) != len(values) {
			t.Errorf("%s has %d series; want %v", name, len(ms), values)
			continue
		}
		for i, metric := range ms { // the exposition sorts series by label value
			if lv := metric.GetLabel()[0].GetValue(); lv != values[i] || metric.GetCounter().GetValue() != 0 {
				t.Errorf("%s series %d = %s %v; want %s 0", name, i, lv, metric.GetCounter().GetValue(), values[i])
			}
		}
	}
}

// Each field feeds the family and label its name promises.
func TestFieldsFeedTheirSeries(t *testing.T) {
	m := New()
	m.Connections.Inc()
	m.Connections.Inc()
	m.Connections.Dec()
	m.RepairedEvents.Add(3)
	m.DroppedTooLarge.Inc()
	m.RateLimitedSockets.Inc()
	m.ThrottledTOTP.Inc()
	m.PasswordHashWaiting.Add(2)

	for _, c := range []struct {
		what string
		got  prometheus.Collector
		want float64
	}{
		{"Connections", m.Connections, 1},
		{"RepairedEvents", m.RepairedEvents, 3},
		{"DroppedTooLarge", m.DroppedTooLarge, 1},
		{"DroppedQueueFull", m.DroppedQueueFull, 0},
		{"RateLimitedSockets", m.RateLimitedSockets, 1},
		{"ThrottledTOTP", m.ThrottledTOTP, 1},
		{"PasswordHashWaiting", m.PasswordHashWaiting, 2},
	} {
		if v := testutil.ToFloat64(c.got); v != c.want {
			t.Errorf("%s = %v; want %v", c.what, v, c.want)
		}
	}

	families := scrape(t, m)
	series := func(name, label string) float64 {
		for _, metric := range families[name].GetMetric() {
			if len(metric.GetLabel()) == 1 && metric.GetLabel()[0].GetValue() == label {
				return metric.GetCounter().GetValue()
			}
		}
		t.Fatalf("%s{%s} not in the scrape", name, label)
		return 0
	}
	if v := series("patientpass_ws_frames_dropped_total", "too_large"); v != 1 {
		t.Errorf(`frames_dropped_total{reason="too_large"} = %v; want 1`, v)
	}
	if v := series("patientpass_ws_rate_limited_total", "sockets"); v != 1 {
		t.Errorf(`rate_limited_total{what="sockets"} = %v; want 1`, v)
	}
	if v := series("patientpass_auth_throttled_total", "totp"); v != 1 {
		t.Errorf(`auth_throttled_total{what="totp"} = %v; want 1`, v)
	}
	if v := families["patientpass_ws_connections"].GetMetric()[0].GetGauge().GetValue(); v != 1 {
		t.Errorf("patientpass_ws_connections = %v; want 1", v)
	}
}

func TestScrapeHasRuntimeAndProcess(t *testing.T) {
	families := scrape(t, New())
	for _, name := range []string{"go_goroutines", "go_memstats_heap_inuse_bytes", "go_memstats_stack_inuse_bytes", "go_gc_duration_seconds"} {
		if _, ok := families[name]; !ok {
			t.Errorf("%s not in the scrape", name)
		}
	}
	if v := families["go_goroutines"].GetMetric()[0].GetGauge().GetValue(); v < 1 {
		t.Errorf("go_goroutines = %v", v)
	}
	if runtime.GOOS != "linux" {
		return // the process collector reads /proc
	}
	for _, name := range []string{"process_resident_memory_bytes", "process_open_fds", "process_cpu_seconds_total"} {
		if _, ok := families[name]; !ok {
			t.Errorf("%s not in the scrape", name)
		}
	}
	if v := families["process_resident_memory_bytes"].GetMetric()[0].GetGauge().GetValue(); v < 1<<20 {
		t.Errorf("process_resident_memory_bytes = %v; want this process's resident memory", v)
	}
}

// Two nodes in one test process each have their own registry.
func TestTwoInstancesDoNotCollide(t *testing.T) {
	a, b := New(), New()
	a.EventsDelivered.Inc()
	if v := testutil.ToFloat64(b.EventsDelivered); v != 0 {
		t.Errorf("b.EventsDelivered = %v after a.EventsDelivered.Inc(); want 0", v)
	}
	n, err := testutil.GatherAndCount(b.Gatherer(), "patientpass_ws_events_delivered_total")
	if err != nil || n != 1 {
		t.Errorf("GatherAndCount = %d, %v; want 1 series", n, err)
	}
}

// The hot path must not allocate: a test, so a regression fails CI rather
// than waiting for someone to read a benchmark.
func TestHotPathDoesNotAllocate(t *testing.T) {
	m := New()
	for name, f := range map[string]func(){
		"Counter.Inc":          func() { m.EventsDelivered.Inc() },
		"Counter.Add":          func() { m.RepairedEvents.Add(2) },
		"labelled Counter.Inc": func() { m.DroppedQueueFull.Inc() },
		"Gauge.Inc/Dec":        func() { m.Subscriptions.Inc(); m.Subscriptions.Dec() },
		"Histogram.Observe":    func() { m.DeliveryLatency.Observe(0.012) },
	} {
		if n := testing.AllocsPerRun(1000, f); n != 0 {
			t.Errorf("%s: %v allocations; want 0", name, n)
		}
	}
}

func BenchmarkHotPath(b *testing.B) {
	m := New()
	b.Run("CounterInc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.EventsDelivered.Inc()
		}
	})
	b.Run("LabelledCounterInc", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.DroppedQueueFull.Inc()
		}
	})
	b.Run("GaugeIncDec", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Subscriptions.Inc()
			m.Subscriptions.Dec()
		}
	})
	b.Run("HistogramObserve", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.DeliveryLatency.Observe(0.012)
		}
	})
	// Many writer goroutines on one counter, as every connection's writer
	// counts its deliveries.
	b.Run("CounterIncParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.EventsDelivered.Inc()
			}
		})
	})
	b.Run("HistogramObserveParallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				m.DeliveryLatency.Observe(0.012)
			}
		})
	})
}
