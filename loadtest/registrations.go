package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// registrationTimeout bounds one registration request. Every request hashes
// a password with argon2id, so a storm of them queues on the node's cores;
// the bound is generous so that what is measured is the server's answer,
// not the tool giving up.
const registrationTimeout = 2 * time.Minute

// RegistrationFigures are the registrations scenario's figures. They are
// embedded in result, so with -json they sit at the top level of its line;
// other scenarios leave them out.
type RegistrationFigures struct {
	Requests int `json:"requests"`
	// Statuses counts the answers by HTTP status: "201", "429", "500",
	// "503" and "other", always all five.
	Statuses map[string]int64 `json:"statuses"`
	// OtherStatuses breaks "other" down by status.
	OtherStatuses map[string]int64 `json:"other_statuses,omitempty"`
	// Server500 is Statuses["500"], a correctness count: it must be 0.
	Server500 int64 `json:"server_500"`
	// TransportErrors are requests that got no HTTP answer at all
	// (connection refused or reset, timeout).
	TransportErrors   int64  `json:"transport_errors"`
	FirstTransportErr string `json:"first_transport_error,omitempty"`
	// RetryAfterMaxS is the longest Retry-After a 429 or 503 asked for; the
	// scenario does not retry.
	RetryAfterMaxS int64 `json:"retry_after_max_s,omitempty"`
	// StormS is from the first request sent to the last answer.
	StormS float64 `json:"storm_s"`
	// IdleRSS is the nodes' resident memory just before the storm and
	// PeakRSS its peak during it, summed over the nodes. For nodes
	// loadtest started they are VmRSS and VmHWM from /proc (VmHWM reset to
	// VmRSS just before the storm where the kernel allows, see
	// PeakRSSSource); otherwise the peak is the highest of the samples read
	// from the nodes' metrics every 100ms, which can miss a short peak.
	IdleRSS       int64  `json:"idle_rss_bytes,omitempty"`
	PeakRSS       int64  `json:"peak_rss_bytes,omitempty"`
	PeakRSSSource string `json:"peak_rss_source,omitempty"`
}

// registration is one prepared request.
type registration struct {
	node int
	body []byte
}

// registrations fires cfg.Clients account registrations at the nodes at
// once and counts how the nodes answer. Each is valid (SPEC §5): a
// clinician at cfg.Organisation with an email and a GMC number of its own,
// so the answers show how the nodes bear the load, not how they refuse bad
// input. A 429 or 503 is counted with its Retry-After and never retried.
func registrations(ctx context.Context, r *run) error {
	fig := &RegistrationFigures{Requests: r.cfg.Clients, Statuses: map[string]int64{"201": 0, "429": 0, "500": 0, "503": 0, "other": 0}}
	r.res.RegistrationFigures = fig
	r.res.Rooms, r.res.Users, r.res.TargetRate, r.res.DurationS = 0, 0, 0, 0 // not used here

	reqs := make([]registration, r.cfg.Clients)
	firstGMC := 1_000_000 + mrand.IntN(9_000_000-r.cfg.Clients) // distinct numbers within the run
	for i := range reqs {
		body, err := json.Marshal(map[string]string{
			"name":                fmt.Sprintf("Load Test %d", i),
			"email":               fmt.Sprintf("loadtest-%s-reg-%d@loadtest.invalid", r.id, i),
			"password":            fmt.Sprintf("storm %s lantern %s harbour", r.id, randomDigits(6)),
			"professional_body":   "GMC",
			"registration_number": strconv.Itoa(firstGMC + i),
			"organisation":        r.cfg.Organisation,
			"role":                "clinician",
		})
		if err != nil {
			return err
		}
		reqs[i] = registration{node: i % len(r.cfg.URLs), body: body}
	}

	fig.IdleRSS = r.serverRSS(ctx)
	stopSampling := func() int64 { return 0 }
	if r.cluster != nil {
		fig.PeakRSSSource = "VmHWM"
		for _, n := range r.cluster.nodes {
			if err := n.resetPeakRSS(); err != nil {
				r.logf("could not reset %s's peak memory (%v): its VmHWM counts from its start", n.name, err)
				fig.PeakRSSSource = "VmHWM since the node started"
			}
		}
	} else {
		fig.PeakRSSSource = "metrics sampled every 100ms"
		stopSampling = r.samplePeak(ctx, 100*time.Millisecond)
	}

	// One connection per request, opened when it is sent, as separate
	// browsers would.
	tr := &http.Transport{MaxIdleConnsPerHost: -1, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr, Timeout: registrationTimeout}

	var mu sync.Mutex // guards fig's counts while the storm runs
	var wg sync.WaitGroup
	fire := make(chan struct{})
	for _, rq := range reqs {
		wg.Go(func() {
			<-fire
			status, retryAfter, took, err := r.register(ctx, hc, rq)
			r.answered.Add(1)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fig.TransportErrors++
				if fig.FirstTransportErr == "" {
					fig.FirstTransportErr = err.Error()
				}
				return
			}
			r.requests.record(took)
			switch status {
			case http.StatusCreated, http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusInternalServerError:
				fig.Statuses[strconv.Itoa(status)]++
			default:
				fig.Statuses["other"]++
				if fig.OtherStatuses == nil {
					fig.OtherStatuses = map[string]int64{}
				}
				fig.OtherStatuses[strconv.Itoa(status)]++
			}
			fig.RetryAfterMaxS = max(fig.RetryAfterMaxS, retryAfter)
		})
	}
	start := time.Now()
	close(fire)
	wg.Wait()
	fig.StormS = round2(time.Since(start).Seconds())
	sampled := stopSampling()

	if r.cluster != nil {
		for _, n := range r.cluster.nodes {
			if n.cmd.Process.Signal(syscall.Signal(0)) != nil {
				r.res.Failures = append(r.res.Failures, fmt.Sprintf("node %s died during the storm (see its log)", n.name))
				continue
			}
			if peak, ok := n.peakRSS(); ok {
				fig.PeakRSS += peak
			}
		}
	} else {
		fig.PeakRSS = max(sampled, fig.IdleRSS)
	}

	fig.Server500 = fig.Statuses["500"]
	if fig.Server500 > 0 {
		r.res.Failures = append(r.res.Failures, fmt.Sprintf("%d of %d registrations answered 500", fig.Server500, fig.Requests))
	}
	if fig.TransportErrors == int64(fig.Requests) {
		return fmt.Errorf("no registration was answered (first error: %s)", fig.FirstTransportErr)
	}
	if fig.TransportErrors > 0 {
		r.res.Failures = append(r.res.Failures, fmt.Sprintf("%d of %d registrations got no answer (first: %s)", fig.TransportErrors, fig.Requests, fig.FirstTransportErr))
	}
	return nil
}

// register sends one registration, with the node's own Origin as a browser
// on its public URL would, and returns the status, the Retry-After in
// seconds (0 when absent) and the time to the whole answer.
func (r *run) register(ctx context.Context, hc *http.Client, rq registration) (status int, retryAfter int64, took time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, "POST", r.cfg.URLs[rq.node]+"/api/register", bytes.NewReader(rq.body))
	if err != nil {
		return 0, 0, 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", r.cfg.Origins[rq.node])
	start := time.Now()
	resp, err := hc.Do(req)
	if err != nil {
		return 0, 0, 0, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)); err != nil {
		return 0, 0, 0, fmt.Errorf("read answer: %w", err)
	}
	took = time.Since(start)
	if v := resp.Header.Get("Retry-After"); v != "" {
		retryAfter, _ = strconv.ParseInt(v, 10, 64)
	}
	return resp.StatusCode, retryAfter, took, nil
}

// samplePeak reads the nodes' memory every interval until the returned
// function is called, which returns the highest total seen (0 when none
// could be read).
func (r *run) samplePeak(ctx context.Context, every time.Duration) func() int64 {
	ctx, cancel := context.WithCancel(ctx)
	var peak atomic.Int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if rss := r.serverRSS(ctx); rss > peak.Load() {
				peak.Store(rss)
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 { cancel(); <-done; return peak.Load() }
}
