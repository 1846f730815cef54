package main

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/bits"
	"strings"
	"sync/atomic"
	"time"
)

// result is every figure of a run; with -json it is the last line of the
// output. The correctness counts (lost, duplicated, out_of_order,
// diverged, phantom, acked_not_stored, unacked) must all be 0 for a pass.
type result struct {
	Scenario   string  `json:"scenario"`
	Nodes      int     `json:"nodes"`
	Clients    int     `json:"clients"`
	Rooms      int     `json:"rooms"`
	Users      int     `json:"users"`
	TargetRate float64 `json:"target_rate"`
	DurationS  float64 `json:"duration_s"`

	Connected     int     `json:"connected"`
	ConnectFailed int     `json:"connect_failed"`
	ConnectS      float64 `json:"connect_s"`
	ConnectP50    float64 `json:"connect_p50_ms"`
	ConnectP99    float64 `json:"connect_p99_ms"`
	ConnectMax    float64 `json:"connect_max_ms"`

	Sent           int64   `json:"sent"`
	Acked          int64   `json:"acked"`
	Unacked        int64   `json:"unacked"`
	PostErrors     int64   `json:"post_errors"`
	Retries        int64   `json:"retries"`
	Behind         int64   `json:"generator_behind"`
	ThroughputS    float64 `json:"throughput_msgs_s"`
	Delivered      int64   `json:"delivered"`
	Expected       int64   `json:"expected"`
	DeliveriesS    float64 `json:"deliveries_s"`
	Lost           int64   `json:"lost"`
	Duplicated     int64   `json:"duplicated"`
	OutOfOrder     int64   `json:"out_of_order"`
	Diverged       int64   `json:"diverged"`
	Phantom        int64   `json:"phantom"`
	AckedNotStored int64   `json:"acked_not_stored"`
	Foreign        int64   `json:"foreign_topic_events"`
	ConvergeS      float64 `json:"converge_s"`

	// ServerCPU is the nodes', Redis's and Postgres's CPU time per
	// acknowledged post over the posting window, when loadtest started the
	// nodes itself (on Linux).
	ServerCPU *cpuFigures `json:"server_cpu_ms_per_post,omitempty"`
	// AuditVerify is what `patientpass audit verify` said of the run's
	// schema afterwards, when loadtest started the nodes itself.
	AuditVerify string `json:"audit_verify,omitempty"`
	// GroupMean is the nodes' mean group commit size (commands and audit
	// entries per transaction), when loadtest started them.
	GroupMean float64 `json:"store_group_mean,omitempty"`

	// Post-to-delivery latency, over every first delivery to every client.
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
	Max  float64 `json:"max_ms"`
	// Post-to-ack latency.
	AckP50  float64 `json:"ack_p50_ms"`
	AckP90  float64 `json:"ack_p90_ms"`
	AckP99  float64 `json:"ack_p99_ms"`
	AckP999 float64 `json:"ack_p999_ms"`
	AckMax  float64 `json:"ack_max_ms"`

	Reconnects int64   `json:"reconnects"`
	Resumed    int64   `json:"resumed,omitempty"`
	ResumeP50  float64 `json:"resume_p50_ms,omitempty"`
	ResumeP99  float64 `json:"resume_p99_ms,omitempty"`
	ResumeMax  float64 `json:"resume_max_ms,omitempty"`

	// Server memory, summed over the nodes, from their metrics or /proc.
	ServerRSSBefore  int64   `json:"server_rss_before_bytes,omitempty"`
	ServerRSSHalf    int64   `json:"server_rss_half_bytes,omitempty"` // idle: with half the clients
	ServerRSSAfter   int64   `json:"server_rss_after_bytes,omitempty"`
	ServerRSSPerConn int64   `json:"server_rss_per_conn_bytes,omitempty"`
	RSSSamples       []int64 `json:"rss_samples_bytes,omitempty"`
	Workers          int     `json:"workers,omitempty"`

	// The registrations scenario's figures; nil (and absent from the JSON)
	// in the others.
	*RegistrationFigures

	Faults   []string `json:"faults,omitempty"`
	Failures []string `json:"failures"`
	Pass     bool     `json:"pass"`
}

// report fills in the latency figures and prints the result.
func (r *run) report() {
	res := &r.res
	res.P50, res.P90, res.P99, res.P999, res.Max = r.delivery.summary()
	if res.RegistrationFigures != nil {
		// No deliveries here: the latency figures are the requests'.
		res.P50, res.P90, res.P99, res.P999, res.Max = r.requests.summary()
	}
	res.AckP50, res.AckP90, res.AckP99, res.AckP999, res.AckMax = r.acks.summary()
	res.ConnectP50, _, res.ConnectP99, _, res.ConnectMax = r.connects.summary()
	if n := r.resumes.count(); n > 0 {
		res.Resumed = n
		res.ResumeP50, _, res.ResumeP99, _, res.ResumeMax = r.resumes.summary()
	}
	if res.Reconnects == 0 {
		res.Reconnects = r.reconnects()
	}
	if !r.postingFrom.IsZero() && r.postingTo.After(r.postingFrom) {
		secs := r.postingTo.Sub(r.postingFrom).Seconds()
		res.ThroughputS = round2(float64(res.Acked) / secs)
		res.DeliveriesS = round2(float64(res.Delivered) / secs)
	}
	if res.Failures == nil {
		res.Failures = []string{}
	}
	res.Pass = len(res.Failures) == 0

	w := r.out
	if res.RegistrationFigures != nil {
		r.reportRegistrations(w)
	} else {
		r.reportDeliveries(w)
	}
	if res.Pass {
		fmt.Fprintln(w, "  PASS")
	} else {
		fmt.Fprintf(w, "  FAIL: %s\n", strings.Join(res.Failures, "; "))
	}
	if r.cfg.JSON {
		buf, _ := json.Marshal(res)
		fmt.Fprintln(w, string(buf))
	}
}

// reportRegistrations prints the registrations scenario's figures.
func (r *run) reportRegistrations(w io.Writer) {
	res, fig := &r.res, r.res.RegistrationFigures
	fmt.Fprintf(w, "\nloadtest %s — scenario registrations, %d node(s), %d registrations at once (organisation %s)\n",
		r.id, res.Nodes, fig.Requests, r.cfg.Organisation)
	fmt.Fprintf(w, "  answers      201 %d, 429 %d, 503 %d, 500 %d, other %d", fig.Statuses["201"], fig.Statuses["429"],
		fig.Statuses["503"], fig.Statuses["500"], fig.Statuses["other"])
	if len(fig.OtherStatuses) > 0 {
		fmt.Fprintf(w, " %v", fig.OtherStatuses)
	}
	fmt.Fprintf(w, "; no answer %d; in %.1fs\n", fig.TransportErrors, fig.StormS)
	if fig.RetryAfterMaxS > 0 {
		fmt.Fprintf(w, "  retry-after  up to %ds (not retried)\n", fig.RetryAfterMaxS)
	}
	fmt.Fprintf(w, "  latency      p50 %.1fms p90 %.1fms p99 %.1fms max %.1fms\n", res.P50, res.P90, res.P99, res.Max)
	if fig.PeakRSS > 0 {
		fmt.Fprintf(w, "  server RSS   %s before, peak %s (%s)\n", mib(fig.IdleRSS), mib(fig.PeakRSS), fig.PeakRSSSource)
	}
}

// reportDeliveries prints the figures of the scenarios that post and deliver.
func (r *run) reportDeliveries(w io.Writer) {
	res := &r.res
	load := fmt.Sprintf("%g msg/s for %s", res.TargetRate, r.cfg.Duration)
	if res.Scenario == "idle" {
		load = "held for " + r.cfg.Duration.String()
	}
	fmt.Fprintf(w, "\nloadtest %s — scenario %s, %d node(s), %d clients in %d rooms (%d users), %s\n",
		r.id, res.Scenario, res.Nodes, res.Clients, res.Rooms, res.Users, load)
	fmt.Fprintf(w, "  connect      %d connected, %d failed, in %.1fs", res.Connected, res.ConnectFailed, res.ConnectS)
	if res.Workers > 0 {
		fmt.Fprintf(w, " by %d worker processes\n", res.Workers)
	} else {
		fmt.Fprintf(w, " (each: p50 %.1fms p99 %.1fms max %.1fms)\n", res.ConnectP50, res.ConnectP99, res.ConnectMax)
	}
	if res.Sent > 0 {
		fmt.Fprintf(w, "  posts        %d sent, %d acked, %d unacked, %d retried; %.0f msg/s acked; generator behind %d times\n",
			res.Sent, res.Acked, res.Unacked, res.Retries, res.ThroughputS, res.Behind)
		fmt.Fprintf(w, "  deliveries   %d of %d expected, %.0f/s; converged %.1fs after the last post\n",
			res.Delivered, res.Expected, res.DeliveriesS, res.ConvergeS)
		fmt.Fprintf(w, "  post→deliver p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms\n", res.P50, res.P90, res.P99, res.P999, res.Max)
		fmt.Fprintf(w, "  post→ack     p50 %.2fms p90 %.2fms p99 %.2fms p99.9 %.2fms max %.2fms\n", res.AckP50, res.AckP90, res.AckP99, res.AckP999, res.AckMax)
	}
	if c := res.ServerCPU; c != nil {
		fmt.Fprintf(w, "  server CPU   %.3f ms per post: node %.3f, Redis %.3f, Postgres %.3f\n", c.Total, c.Node, c.Redis, c.Postgres)
	}
	fmt.Fprintf(w, "  correctness  lost %d, duplicated %d, out of order %d, diverged %d, phantom %d, acked but not stored %d\n",
		res.Lost, res.Duplicated, res.OutOfOrder, res.Diverged, res.Phantom, res.AckedNotStored)
	fmt.Fprintf(w, "  reconnects   %d\n", res.Reconnects)
	if res.Resumed > 0 {
		fmt.Fprintf(w, "  resume       %d resumed: p50 %.0fms p99 %.0fms max %.0fms\n", res.Resumed, res.ResumeP50, res.ResumeP99, res.ResumeMax)
	}
	switch {
	case res.ServerRSSPerConn > 0:
		fmt.Fprintf(w, "  server RSS   %s before, %s with half the clients, %s with all: %s per connection\n",
			mib(res.ServerRSSBefore), mib(res.ServerRSSHalf), mib(res.ServerRSSAfter), kib(res.ServerRSSPerConn))
	case res.ServerRSSAfter > 0:
		fmt.Fprintf(w, "  server RSS   %s before, %s after\n", mib(res.ServerRSSBefore), mib(res.ServerRSSAfter))
	}
	for _, f := range res.Faults {
		fmt.Fprintf(w, "  fault        %s\n", f)
	}
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10)) }

func round2(f float64) float64 { return math.Round(f*100) / 100 }

func ms(d time.Duration) float64 { return round2(float64(d) / float64(time.Millisecond)) }

// histogram records durations in microseconds with about 3% precision:
// values below 32µs exactly, above in 32 sub-buckets per power of two. It
// is safe for concurrent use and never blocks.
type histogram struct {
	buckets [64 * 32]atomic.Int64
	n       atomic.Int64
	max     atomic.Int64
}

func bucketOf(us int64) int {
	if us < 32 {
		return int(max(us, 0))
	}
	shift := bits.Len64(uint64(us)) - 6 // keeps 6 significant bits: 32…63
	return (shift+1)*32 + int(us>>shift) - 32
}

// upper is the largest value in bucket b.
func upper(b int) int64 {
	if b < 32 {
		return int64(b)
	}
	shift := b/32 - 1
	sub := int64(b%32 + 32)
	return (sub+1)<<shift - 1
}

func (h *histogram) record(d time.Duration) {
	us := d.Microseconds()
	h.buckets[bucketOf(us)].Add(1)
	h.n.Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

func (h *histogram) count() int64 { return h.n.Load() }

// quantile is the upper bound of the bucket holding the q-th value.
func (h *histogram) quantile(q float64) time.Duration {
	n := h.n.Load()
	if n == 0 {
		return 0
	}
	rank := int64(math.Ceil(q * float64(n)))
	var seen int64
	for b := range h.buckets {
		seen += h.buckets[b].Load()
		if seen >= rank {
			return time.Duration(min(upper(b), h.max.Load())) * time.Microsecond
		}
	}
	return time.Duration(h.max.Load()) * time.Microsecond
}

// summary is p50, p90, p99, p99.9 and max, in milliseconds.
func (h *histogram) summary() (p50, p90, p99, p999, mx float64) {
	return ms(h.quantile(0.5)), ms(h.quantile(0.9)), ms(h.quantile(0.99)), ms(h.quantile(0.999)),
		ms(time.Duration(h.max.Load()) * time.Microsecond)
}
