package hub

import (
	"fmt"
	"math"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the delivery latency
// histogram: fine below the 50 ms target, coarse above it.
var latencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5}

// metrics counts what the real-time path does, for /metrics. Every field is
// updated atomically, so the hot path takes no lock for it.
type metrics struct {
	connections     atomic.Int64
	subscriptions   atomic.Int64
	topics          atomic.Int64
	eventsDelivered atomic.Int64 // event frames written to sockets
	gapRepairs      atomic.Int64 // store reads that found events the broker had not brought
	repairedEvents  atomic.Int64
	slowCloses      atomic.Int64 // connections closed with 4008
	sessionCloses   atomic.Int64 // connections closed with 4001
	framesRefused   atomic.Int64
	publishFailures atomic.Int64
	latency         histogram
}

// histogram is a Prometheus histogram over latencyBuckets.
type histogram struct {
	counts    [16]atomic.Int64 // len(latencyBuckets)+1, the last is +Inf
	sumMicros atomic.Int64
	count     atomic.Int64
}

func (h *histogram) observe(d time.Duration) {
	secs := d.Seconds()
	i := 0
	for i < len(latencyBuckets) && secs > latencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumMicros.Add(d.Microseconds())
	h.count.Add(1)
}

// serveMetrics writes the metrics in the Prometheus text format. They are
// counts only: no user, referral or patient appears in them.
func (m *metrics) serveMetrics(w http.ResponseWriter, r *http.Request) {
	var b strings.Builder
	gauge := func(name, help string, v int64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s gauge\n%s %d\n", name, help, name, name, v)
	}
	counter := func(name, help string, v int64) {
		fmt.Fprintf(&b, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge("patientpass_ws_connections", "Open WebSocket connections on this node.", m.connections.Load())
	gauge("patientpass_ws_subscriptions", "Topic subscriptions of open connections on this node.", m.subscriptions.Load())
	gauge("patientpass_ws_topics", "Topics this node holds (and listens to on the broker).", m.topics.Load())
	counter("patientpass_ws_events_delivered_total", "Event frames written to WebSocket connections.", m.eventsDelivered.Load())
	counter("patientpass_ws_gap_repairs_total", "Store reads that found events the broker had not delivered.", m.gapRepairs.Load())
	counter("patientpass_ws_repaired_events_total", "Events delivered from the store by gap repairs.", m.repairedEvents.Load())
	counter("patientpass_ws_slow_consumer_closes_total", "Connections closed with 4008 because their send queue was full.", m.slowCloses.Load())
	counter("patientpass_ws_session_closes_total", "Connections closed with 4001 because their session ended.", m.sessionCloses.Load())
	counter("patientpass_ws_frames_refused_total", "Client frames answered with an error frame.", m.framesRefused.Load())
	counter("patientpass_broker_publish_failures_total", "Broker publications that failed (repaired from the store).", m.publishFailures.Load())

	// The process's memory, so a load test can read what idle connections
	// cost from outside.
	if rss, ok := residentMemory(); ok {
		gauge("patientpass_process_resident_memory_bytes", "Resident memory of this process (VmRSS).", rss)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	gauge("patientpass_go_heap_inuse_bytes", "Bytes in the Go heap's in-use spans (runtime HeapInuse).", int64(ms.HeapInuse))
	gauge("patientpass_go_stack_inuse_bytes", "Bytes in goroutine stack spans (runtime StackInuse).", int64(ms.StackInuse))
	gauge("patientpass_goroutines", "Goroutines in this process.", int64(runtime.NumGoroutine()))

	const name = "patientpass_ws_delivery_latency_seconds"
	fmt.Fprintf(&b, "# HELP %s From an event's commit to its frame being written to a socket.\n# TYPE %s histogram\n", name, name)
	var cum int64
	for i, le := range latencyBuckets {
		cum += m.latency.counts[i].Load()
		fmt.Fprintf(&b, "%s_bucket{le=\"%g\"} %d\n", name, le, cum)
	}
	cum += m.latency.counts[len(latencyBuckets)].Load()
	fmt.Fprintf(&b, "%s_bucket{le=\"+Inf\"} %d\n", name, cum)
	fmt.Fprintf(&b, "%s_sum %s\n", name, formatFloat(float64(m.latency.sumMicros.Load())/1e6))
	fmt.Fprintf(&b, "%s_count %d\n", name, m.latency.count.Load())

	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte(b.String()))
}

func formatFloat(f float64) string {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return "0"
	}
	return fmt.Sprintf("%g", f)
}

// residentMemory returns the process's resident set size, read from
// /proc/self/status; false where that file is not there (not Linux).
func residentMemory() (int64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, false
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, false
		}
		return kb * 1024, true
	}
	return 0, false
}
