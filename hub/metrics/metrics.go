// Package metrics holds what a Patient Pass node counts about itself, in a
// Prometheus registry of its own, and serves it for scraping.
//
// The instruments are plain exported fields so the real-time hot path
// updates them with one atomic operation: no lock, no map lookup, no
// allocation. Where a metric has a label, its values are a small closed set
// resolved once in New, so a call site cannot mint a new series by a typo
// and every value is exported, at zero, from the first scrape.
//
// Nothing here names a user, a referral or a patient: the only label that
// comes from a request is the ServeMux pattern that matched it.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// LatencyBuckets are the upper bounds, in seconds, of the delivery latency
// histogram: fine below the 50 ms target, coarse above it.
var LatencyBuckets = []float64{0.001, 0.002, 0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5, 5}

// Metrics is one node's instruments and the registry that holds them. Every
// field is safe for concurrent use.
type Metrics struct {
	// Connections is the number of open WebSocket connections.
	Connections prometheus.Gauge
	// Subscriptions is the number of topic subscriptions of open connections.
	Subscriptions prometheus.Gauge
	// Topics is the number of topics the node holds and listens to.
	Topics prometheus.Gauge

	// EventsDelivered counts event frames written to sockets.
	EventsDelivered prometheus.Counter
	// GapRepairs counts store reads that found events the broker had not brought.
	GapRepairs prometheus.Counter
	// RepairedEvents counts the events those reads delivered.
	RepairedEvents prometheus.Counter
	// ReplaysFromMemory counts the rounds of subscription replays served
	// from a room's tail of recent events; ReplaysFromStore those that read
	// the store (the first subscriber of a room, or a client further
	// behind than the tail).
	ReplaysFromMemory prometheus.Counter
	ReplaysFromStore  prometheus.Counter
	// SlowConsumerCloses counts connections closed with 4008.
	SlowConsumerCloses prometheus.Counter
	// SessionCloses counts connections closed with 4001.
	SessionCloses prometheus.Counter
	// FramesRefused counts client frames answered with an error frame.
	FramesRefused prometheus.Counter
	// PublishFailures counts broker publications that failed.
	PublishFailures prometheus.Counter
	// DeliveryLatency observes, in seconds, the time from an event's commit
	// to its frame being written to a socket.
	DeliveryLatency prometheus.Histogram

	// DroppedQueueFull, DroppedTooLarge and DroppedClosed count frames that
	// were not sent, by why: the connection's queue was full, the frame
	// passed the size limit, or the connection had already closed.
	DroppedQueueFull prometheus.Counter
	DroppedTooLarge  prometheus.Counter
	DroppedClosed    prometheus.Counter

	// RateLimitedCommands and RateLimitedSockets count client commands and
	// socket openings refused by a rate limit.
	RateLimitedCommands prometheus.Counter
	RateLimitedSockets  prometheus.Counter

	// PasswordHashWaiting is the number of requests waiting for a slot to
	// hash a password; PasswordHashRefused counts those turned away because
	// too many were waiting.
	PasswordHashWaiting prometheus.Gauge
	PasswordHashRefused prometheus.Counter

	// ThrottledLogin, ThrottledTOTP, ThrottledRegister and ThrottledToken
	// count attempts refused by the authentication throttles; a throttled
	// token request is counted here, not audited.
	ThrottledLogin    prometheus.Counter
	ThrottledTOTP     prometheus.Counter
	ThrottledRegister prometheus.Counter
	ThrottledToken    prometheus.Counter

	requestDuration *prometheus.HistogramVec // method, route, code; written by Middleware
	now             func() time.Time         // time.Now; a test's clock in tests

	reg     *prometheus.Registry
	handler http.Handler
}

// New builds the instruments and registers them, with the Go runtime and
// process collectors, in a registry of their own: two Metrics in one
// process (as in tests that start several nodes) never collide.
func New() *Metrics {
	reg := prometheus.NewRegistry()
	f := factory{reg}
	m := &Metrics{
		Connections:   f.gauge("patientpass_ws_connections", "Open WebSocket connections on this node."),
		Subscriptions: f.gauge("patientpass_ws_subscriptions", "Topic subscriptions of open connections on this node."),
		Topics:        f.gauge("patientpass_ws_topics", "Topics this node holds (and listens to on the broker)."),

		EventsDelivered:    f.counter("patientpass_ws_events_delivered_total", "Event frames written to WebSocket connections."),
		GapRepairs:         f.counter("patientpass_ws_gap_repairs_total", "Store reads that found events the broker had not delivered."),
		RepairedEvents:     f.counter("patientpass_ws_repaired_events_total", "Events delivered from the store by gap repairs."),
		ReplaysFromMemory:  f.counter("patientpass_ws_replays_from_memory_total", "Subscription replay rounds served from a room's tail of recent events."),
		ReplaysFromStore:   f.counter("patientpass_ws_replays_from_store_total", "Subscription replay rounds that read the store."),
		SlowConsumerCloses: f.counter("patientpass_ws_slow_consumer_closes_total", "Connections closed with 4008 because their send queue was full."),
		SessionCloses:      f.counter("patientpass_ws_session_closes_total", "Connections closed with 4001 because their session ended."),
		FramesRefused:      f.counter("patientpass_ws_frames_refused_total", "Client frames answered with an error frame."),
		PublishFailures:    f.counter("patientpass_broker_publish_failures_total", "Broker publications that failed (repaired from the store)."),

		PasswordHashWaiting: f.gauge("patientpass_password_hash_waiting", "Requests waiting for a slot to hash a password."),
		PasswordHashRefused: f.counter("patientpass_password_hash_refused_total", "Requests refused because too many were waiting to hash a password."),

		now: time.Now,
		reg: reg,
	}

	m.DeliveryLatency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "patientpass_ws_delivery_latency_seconds",
		Help:    "From an event's commit to its frame being written to a socket.",
		Buckets: LatencyBuckets,
	})
	reg.MustRegister(m.DeliveryLatency)

	dropped := f.counterVec("patientpass_ws_frames_dropped_total", "Frames not sent to a WebSocket connection, by reason.", "reason")
	m.DroppedQueueFull = dropped.WithLabelValues("queue_full")
	m.DroppedTooLarge = dropped.WithLabelValues("too_large")
	m.DroppedClosed = dropped.WithLabelValues("closed")

	limited := f.counterVec("patientpass_ws_rate_limited_total", "Client commands and socket openings refused by a rate limit.", "what")
	m.RateLimitedCommands = limited.WithLabelValues("commands")
	m.RateLimitedSockets = limited.WithLabelValues("sockets")

	throttled := f.counterVec("patientpass_auth_throttled_total", "Authentication attempts refused by a throttle.", "what")
	m.ThrottledLogin = throttled.WithLabelValues("login")
	m.ThrottledTOTP = throttled.WithLabelValues("totp")
	m.ThrottledRegister = throttled.WithLabelValues("register")
	m.ThrottledToken = throttled.WithLabelValues("token")

	m.requestDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "patientpass_http_request_duration_seconds",
		Help:    "HTTP requests by method, matched route pattern and status class; upgrades until their 101.",
		Buckets: prometheus.DefBuckets,
	}, []string{"method", "route", "code"})
	reg.MustRegister(m.requestDuration)

	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)

	// Registry in the options counts failed collections in
	// promhttp_metric_handler_errors_total; a failure is answered with a 500
	// so the scraper marks the target down rather than reading half a page.
	m.handler = promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return m
}

// Handler serves the registry in the Prometheus exposition formats. It is
// meant for a listener of its own, reachable by the scraper and not the
// public.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Gatherer returns the registry, for tests and for a push to another system.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// factory registers each instrument as it is built; a name used twice is a
// programming error and panics in New.
type factory struct{ reg *prometheus.Registry }

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help, label string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{label})
	f.reg.MustRegister(v)
	return v
}

// GroupCommits exports the counts of the store's group commits, read from
// stats at each scrape: groups committed, the commands and audit entries
// they held, and those run again alone because their group failed. Their
// ratio is the mean group size, which rises with load.
func (m *Metrics) GroupCommits(stats func() (groups, members, alone int64)) {
	counter := func(name, help string, pick func(g, m, a int64) int64) {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, func() float64 {
			return float64(pick(stats()))
		}))
	}
	counter("patientpass_store_groups_total", "Transactions shared by the commands and audit entries that arrived together (group commit).",
		func(g, _, _ int64) int64 { return g })
	counter("patientpass_store_group_members_total", "Commands and audit entries committed in groups.",
		func(_, m, _ int64) int64 { return m })
	counter("patientpass_store_group_alone_total", "Commands and audit entries run again alone because their group could not commit.",
		func(_, _, a int64) int64 { return a })
}
