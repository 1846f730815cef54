package metrics

import "github.com/prometheus/client_golang/prometheus"

// Webhooks exports a dispatcher's attempt counts, read from stats at each
// scrape: patientpass_webhook_attempts_total{outcome} with outcome
// delivered, retrying (failed, to be tried again) or failed (given up
// after a day).
func (m *Metrics) Webhooks(stats func() (delivered, retrying, failed int64)) {
	for _, o := range []struct {
		outcome string
		pick    func(d, r, f int64) int64
	}{
		{"delivered", func(d, _, _ int64) int64 { return d }},
		{"retrying", func(_, r, _ int64) int64 { return r }},
		{"failed", func(_, _, f int64) int64 { return f }},
	} {
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "patientpass_webhook_attempts_total",
			Help:        "Webhook delivery attempts by outcome.",
			ConstLabels: prometheus.Labels{"outcome": o.outcome}}, func() float64 { return float64(o.pick(stats())) }))
	}
}
