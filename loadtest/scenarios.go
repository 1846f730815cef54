package main

import (
	"context"
	"fmt"
	"time"
)

// fanout is SPEC §7's shape: every client subscribed, posts at the target
// rate, every delivery checked.
func fanout(ctx context.Context, r *run) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	defer r.closeAll()
	r.postFor(ctx, r.cfg.Duration)
	r.res.ServerRSSAfter = r.serverRSS(ctx)
	return r.finish(ctx)
}

// start prepares the run, reads the nodes' memory and connects every
// client; the caller closes them.
func (r *run) start(ctx context.Context) error {
	if err := r.prepare(ctx); err != nil {
		return err
	}
	r.res.ServerRSSBefore = r.serverRSS(ctx)
	r.connectAll(ctx)
	return nil
}

// soak is fanout with the nodes' memory sampled throughout: it should be
// flat once the connections are open.
func soak(ctx context.Context, r *run) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	defer r.closeAll()
	sampled := r.sampleMemory(ctx, max(time.Second, r.cfg.Duration/20))
	r.postFor(ctx, r.cfg.Duration)
	r.res.RSSSamples = sampled()
	r.res.ServerRSSAfter = r.serverRSS(ctx)
	if err := r.finish(ctx); err != nil {
		return err
	}
	if s := r.res.RSSSamples; len(s) >= 8 {
		// Compare the last quarter with the second: the first quarter is
		// warm-up (buffers, pools, the heap finding its size).
		q := len(s) / 4
		early, late := mean(s[q:2*q]), mean(s[len(s)-q:])
		if growth := late - early; growth > early/5 && growth > 32<<20 {
			r.res.Failures = append(r.res.Failures, fmt.Sprintf("server memory grew from %s to %s while the load was steady", mib(early), mib(late)))
		}
	}
	return nil
}

func mean(xs []int64) int64 {
	var sum int64
	for _, x := range xs {
		sum += x
	}
	return sum / int64(len(xs))
}

// idle holds many subscribed, silent connections and reports the nodes'
// memory per connection. It connects half the clients, lets the nodes
// settle and reads their memory, then the other half: the difference
// divided by the second half is the cost of a connection, free of what
// setting up (password hashing, say) left in the heap. More clients than
// -per-process are spread over worker processes, since a process may hold
// only so many open files.
func idle(ctx context.Context, r *run) error {
	if err := r.prepare(ctx); err != nil {
		return err
	}
	r.res.ServerRSSBefore = r.serverRSS(ctx)
	connect := func(from, to int) error {
		if r.cfg.Clients > r.cfg.PerProcess {
			return r.connectWorkers(ctx, from, to)
		}
		r.connectRange(ctx, from, to)
		return nil
	}
	defer r.stopWorkers()
	defer r.closeAll()
	half := r.cfg.Clients / 2
	if err := connect(0, half); err != nil {
		return err
	}
	sleep(ctx, r.cfg.Settle)
	first, mid := r.connected.Load(), r.serverRSS(ctx)
	if err := connect(half, r.cfg.Clients); err != nil {
		return err
	}
	r.logf("connected; settling %s before reading the server's memory", r.cfg.Settle)
	sleep(ctx, r.cfg.Settle)
	r.res.ServerRSSAfter = r.serverRSS(ctx)
	if n := r.connected.Load() - first; mid > 0 && r.res.ServerRSSAfter > 0 && n > 0 {
		r.res.ServerRSSHalf = mid
		r.res.ServerRSSPerConn = (r.res.ServerRSSAfter - mid) / n
	}
	sleep(ctx, r.cfg.Duration)
	if r.workers == nil {
		return r.finish(ctx)
	}
	return nil
}

// reconnectStorm connects everyone, then drops every connection at once
// while posts go on, and measures how long each client takes to be
// resubscribed and caught up; then every delivery is checked as in fanout.
func reconnectStorm(ctx context.Context, r *run) error {
	if err := r.start(ctx); err != nil {
		return err
	}
	defer r.closeAll()
	posting := make(chan struct{})
	go func() {
		defer close(posting)
		r.postFor(ctx, r.cfg.Duration)
	}()
	sleep(ctx, r.cfg.Duration/3)
	now := time.Now().UnixNano()
	dropped := 0
	for _, v := range r.clients {
		if c := v.client(); c != nil {
			v.droppedAt.Store(now)
			c.Drop()
			dropped++
		}
	}
	r.res.Faults = append(r.res.Faults, fmt.Sprintf("%d connections dropped at once at %s", dropped, r.cfg.Duration/3))
	<-posting
	if err := r.finish(ctx); err != nil {
		return err
	}
	if n := r.resumes.count(); n < int64(dropped) {
		r.res.Failures = append(r.res.Failures, fmt.Sprintf("%d of %d dropped clients never resumed", int64(dropped)-n, dropped))
	}
	if worst := time.Duration(r.resumes.max.Load()) * time.Microsecond; worst > 10*time.Second {
		r.res.Failures = append(r.res.Failures, fmt.Sprintf("the slowest client took %s to resume; SPEC §7 allows 10s", worst.Round(time.Millisecond)))
	}
	return nil
}

// chaos runs fanout on nodes loadtest started and, while posts go on,
// kills and restarts a node, restarts Redis, and terminates the nodes'
// Postgres backends. Nothing acknowledged may be lost and every client
// must converge on the stored sequence.
func chaos(ctx context.Context, r *run) error {
	if r.cluster == nil {
		return fmt.Errorf("chaos needs nodes loadtest starts itself (-nodes)")
	}
	if err := r.start(ctx); err != nil {
		return err
	}
	defer r.closeAll()
	d := r.cfg.Duration
	faults := []struct {
		at   time.Duration
		what func(context.Context) (string, error)
	}{
		{d / 5, r.cluster.killNode},
		{d * 9 / 20, r.cluster.restartRedis},
		{d * 7 / 10, r.cluster.terminateBackends},
	}
	start := time.Now()
	faulted := make(chan error, 1)
	go func() {
		for _, f := range faults {
			sleep(ctx, time.Until(start.Add(f.at)))
			desc, err := f.what(ctx)
			if err != nil {
				faulted <- err
				return
			}
			r.res.Faults = append(r.res.Faults, fmt.Sprintf("%5.1fs %s", time.Since(start).Seconds(), desc))
			r.logf("fault: %s", desc)
		}
		faulted <- nil
	}()
	r.postFor(ctx, d)
	if err := <-faulted; err != nil {
		return fmt.Errorf("inject fault: %w", err)
	}
	return r.finish(ctx)
}

// serverRSS sums the nodes' resident memory, from their metrics or, for
// nodes loadtest started, from /proc; 0 when it cannot be read.
func (r *run) serverRSS(ctx context.Context) int64 {
	var sum int64
	for i := range r.cfg.URLs {
		rss, ok := r.nodeRSS(ctx, i)
		if !ok {
			return 0
		}
		sum += rss
	}
	return sum
}

// nodeRSS is node i's resident memory: from the metrics endpoint it was
// given or chose (or, for running nodes given none, the public URL's
// /metrics, where nodes served their metrics before they had a listener of
// their own), else from /proc for a node loadtest started.
func (r *run) nodeRSS(ctx context.Context, i int) (int64, bool) {
	endpoint := ""
	switch {
	case i < len(r.cfg.MetricsURLs) && r.cfg.MetricsURLs[i] != "":
		endpoint = r.cfg.MetricsURLs[i]
	case r.cluster == nil:
		endpoint = r.cfg.URLs[i] + "/metrics"
	}
	if endpoint != "" {
		if rss, ok := serverMemory(ctx, endpoint); ok {
			return rss, true
		}
	}
	if r.cluster != nil {
		return r.cluster.nodes[i].rss()
	}
	return 0, false
}

// sampleMemory reads the nodes' memory every interval until the returned
// function is called, which returns the samples.
func (r *run) sampleMemory(ctx context.Context, every time.Duration) func() []int64 {
	ctx, cancel := context.WithCancel(ctx)
	out := make(chan []int64, 1)
	go func() {
		var samples []int64
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				out <- samples
				return
			case <-tick.C:
				if rss := r.serverRSS(ctx); rss > 0 {
					samples = append(samples, rss)
				}
			}
		}
	}()
	return func() []int64 { cancel(); return <-out }
}

func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
