package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	wsclient "patientpass/hub/client"
	"patientpass/hub/wire"
)

// A worker is this program run with -worker: it reads a workerJob from
// stdin, connects the clients, prints a workerReady line, holds them until
// its stdin says stop (or closes), and prints a workerDone line.

type workerJob struct {
	Clients         []clientSpec `json:"clients"`
	DialConcurrency int          `json:"dial_concurrency"`
}

type workerReady struct {
	Connected int     `json:"connected"`
	Failed    int     `json:"failed"`
	FirstErr  string  `json:"first_error,omitempty"`
	ConnectS  float64 `json:"connect_s"`
}

type workerDone struct {
	Stopped    int   `json:"stopped"` // clients the server ended for good
	Reconnects int64 `json:"reconnects"`
	Events     int64 `json:"events"`
	Duplicates int64 `json:"duplicates"`
	Gaps       int64 `json:"gaps"`
}

func serveWorker(ctx context.Context, stdin io.Reader, stdout io.Writer) error {
	in := bufio.NewReader(stdin)
	var job workerJob
	if err := json.NewDecoder(in).Decode(&job); err != nil {
		return fmt.Errorf("read job: %w", err)
	}
	start := time.Now()
	clients := make([]*wsclient.Client, len(job.Clients))
	var g errgroup.Group
	g.SetLimit(max(1, job.DialConcurrency))
	var failed atomic.Int64
	var firstErr atomic.Value
	for i, s := range job.Clients {
		g.Go(func() error {
			dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			defer cancel()
			c, err := dial(dctx, s, 0, nil, func(wire.ServerFrame) {})
			if err != nil {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err.Error())
				return nil
			}
			clients[i] = c
			return nil
		})
	}
	_ = g.Wait()
	ready := workerReady{Connected: len(job.Clients) - int(failed.Load()), Failed: int(failed.Load()), ConnectS: time.Since(start).Seconds()}
	if e, ok := firstErr.Load().(string); ok {
		ready.FirstErr = e
	}
	enc := json.NewEncoder(stdout)
	if err := enc.Encode(ready); err != nil {
		return err
	}

	// Hold until told to stop: a line on stdin, or stdin closing.
	stop := make(chan struct{})
	go func() { _, _ = in.ReadString('\n'); close(stop) }()
	select {
	case <-stop:
	case <-ctx.Done():
	}
	var done workerDone
	for _, c := range clients {
		if c == nil {
			continue
		}
		select {
		case <-c.Done():
			done.Stopped++
		default:
		}
		st := c.Stats()
		done.Reconnects += st.Reconnects
		done.Events += st.Events
		done.Duplicates += st.Duplicates
		done.Gaps += st.Gaps
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		if c != nil {
			wg.Go(func() { _ = c.Close() })
		}
	}
	wg.Wait()
	return enc.Encode(done)
}

// worker is a child process holding some of the clients.
type worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   *bufio.Reader
}

// connectWorkers spreads clients [from, to) over child processes, at most
// cfg.PerProcess each, and waits until they have all connected.
func (r *run) connectWorkers(ctx context.Context, from, to int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable for workers: %w", err)
	}
	start := time.Now()
	var started []*worker
	for lo := from; lo < to; lo += r.cfg.PerProcess {
		job := workerJob{DialConcurrency: r.cfg.DialConcurrency}
		for i := lo; i < min(lo+r.cfg.PerProcess, to); i++ {
			job.Clients = append(job.Clients, r.spec(i))
		}
		cmd := exec.Command(exe, "-worker")
		cmd.Stderr = r.errw
		stdin, err := cmd.StdinPipe()
		if err != nil {
			return err
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			return err
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start worker: %w", err)
		}
		w := &worker{cmd: cmd, stdin: stdin, out: bufio.NewReaderSize(stdout, 64<<10)}
		r.workers = append(r.workers, w)
		started = append(started, w)
		if err := json.NewEncoder(stdin).Encode(job); err != nil {
			return fmt.Errorf("send worker its clients: %w", err)
		}
	}
	r.res.Workers = len(r.workers)
	var failed int64
	var firstErr string
	for _, w := range started {
		line, err := w.out.ReadBytes('\n')
		var ready workerReady
		if err == nil {
			err = json.Unmarshal(line, &ready)
		}
		if err != nil {
			return fmt.Errorf("worker %d did not report: %w", w.cmd.Process.Pid, errors.Join(err, ctx.Err()))
		}
		r.connected.Add(int64(ready.Connected))
		failed += int64(ready.Failed)
		if firstErr == "" {
			firstErr = ready.FirstErr
		}
	}
	r.connectFailed.Add(failed)
	r.noteConnected(time.Since(start), failed, firstErr)
	return nil
}

// stopWorkers ends the workers and adds up what they saw.
func (r *run) stopWorkers() {
	var done workerDone
	for _, w := range r.workers {
		_, _ = io.WriteString(w.stdin, "stop\n")
		var d workerDone
		line, err := w.out.ReadBytes('\n')
		if err == nil && json.Unmarshal(line, &d) == nil {
			done.Stopped += d.Stopped
			done.Reconnects += d.Reconnects
			done.Duplicates += d.Duplicates
			done.Gaps += d.Gaps
		} else {
			r.res.Failures = append(r.res.Failures, fmt.Sprintf("worker %d ended without its figures", w.cmd.Process.Pid))
		}
		_ = w.stdin.Close()
		_ = w.cmd.Wait()
	}
	r.res.Reconnects = done.Reconnects
	r.res.Duplicated += done.Duplicates
	r.res.Lost += done.Gaps
	if done.Stopped > 0 {
		r.res.Failures = append(r.res.Failures, fmt.Sprintf("the server ended %d idle clients", done.Stopped))
	}
}
