package ws

import (
	"sync"
	"testing"
	"time"
)

// A job that blocks holds up no other, forty at once all run, and the
// workers they leave exit once idle.
func TestWorkersNeverQueueAJobAndExitWhenIdle(t *testing.T) {
	w := newWorkers(50 * time.Millisecond)
	blocked := make(chan struct{})
	w.run(func() { <-blocked })
	done := make(chan struct{})
	w.run(func() { close(done) })
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("a job waited behind a blocked one")
	}

	const n = 40
	var started, wg sync.WaitGroup
	started.Add(n)
	wg.Add(n)
	release := make(chan struct{})
	for range n {
		w.run(func() {
			defer wg.Done()
			started.Done()
			<-release // every job is running before any ends
		})
	}
	waitOrFail(t, &started, "forty jobs to start at once")
	if live := w.live.Load(); live < n+1 {
		t.Fatalf("%d workers for %d jobs running at once and one blocked", live, n)
	}
	close(release)
	waitOrFail(t, &wg, "forty jobs to end")

	// Idle workers take the next jobs rather than new goroutines (a
	// worker that has just ended a job may not be back waiting for the
	// next yet, hence the two spare).
	before := w.live.Load()
	for range 10 {
		ran := make(chan struct{})
		w.run(func() { close(ran) })
		<-ran
	}
	if live := w.live.Load(); live > before+2 {
		t.Fatalf("%d workers after ten jobs one at a time, %d before: idle workers were not reused", live, before)
	}

	close(blocked)
	deadline := time.Now().Add(10 * time.Second)
	for w.live.Load() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers still running after being idle", w.live.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, what string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("waited 10s for %s", what)
	}
}
