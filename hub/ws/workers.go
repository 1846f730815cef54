package ws

import (
	"sync/atomic"
	"time"
)

// workerIdle is how long a worker waits for more work before it exits.
const workerIdle = 5 * time.Second

// workers runs the connections' short-lived work (a writer draining its
// queue, a frame executing) on goroutines kept for a while between jobs.
// A goroutine starts with a 2 KiB stack and grows it by copying as the job
// goes deeper (a socket write, a store transaction); a fresh goroutine for
// every job paid for that growth every time, about a tenth of the node's
// CPU in a fan-out profile. A worker keeps its grown stack across jobs,
// and exits once idle for workerIdle, so an idle node holds none.
//
// A job never waits for a worker: with none idle it gets a goroutine of
// its own, which then stays as a worker. So a job that blocks (a write to
// a slow client, up to the write timeout) holds up no other.
type workers struct {
	jobs chan func()   // unbuffered: a send succeeds only to an idle worker
	idle time.Duration // how long a worker waits for a job before it exits
	live atomic.Int64  // workers running, busy or idle
}

func newWorkers(idle time.Duration) *workers { return &workers{jobs: make(chan func()), idle: idle} }

// run runs job on an idle worker, or on a new one.
func (w *workers) run(job func()) {
	select {
	case w.jobs <- job:
	default:
		go w.work(job)
	}
}

func (w *workers) work(job func()) {
	w.live.Add(1)
	defer w.live.Add(-1)
	job()
	idle := time.NewTimer(w.idle)
	defer idle.Stop()
	for {
		select {
		case job := <-w.jobs:
			job()
			idle.Reset(w.idle)
		case <-idle.C:
			return
		}
	}
}
