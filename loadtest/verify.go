package main

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// finish waits for the posts in flight and for every client to receive
// everything stored, then checks each client against the store.
func (r *run) finish(ctx context.Context) error {
	waited := make(chan struct{})
	go func() { r.inFlight.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		return ctx.Err()
	}
	truth, err := r.readStore(ctx)
	if err != nil {
		return fmt.Errorf("read the stored events to check against: %w", err)
	}
	r.converge(ctx, truth)
	r.check(truth)
	return nil
}

// roomTruth is what the store holds for a room: the post number at each
// seq (-1 for events that are not load posts) and the head.
type roomTruth struct {
	ids  map[int64]int64
	head int64
}

// readStore reads every room's events through the API, as the referrer.
func (r *run) readStore(ctx context.Context) ([]roomTruth, error) {
	truth := make([]roomTruth, len(r.rooms))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, rm := range r.rooms {
		g.Go(func() error {
			evs, err := r.fx.referrer.events(gctx, rm.id)
			if err != nil {
				return err
			}
			t := roomTruth{ids: make(map[int64]int64, len(evs))}
			for _, ev := range evs {
				t.ids[ev.Seq] = r.postID(ev.Body)
				t.head = max(t.head, ev.Seq)
			}
			truth[i] = t
			return nil
		})
	}
	return truth, g.Wait()
}

// converge waits until every connected client has received up to its
// room's stored head, or cfg.Converge passes.
func (r *run) converge(ctx context.Context, truth []roomTruth) {
	start := time.Now()
	deadline := start.Add(r.cfg.Converge)
	for {
		behind := 0
		for i, rm := range r.rooms {
			for _, v := range rm.members {
				if !v.subscribed.Load() {
					continue
				}
				v.mu.Lock()
				if v.max < truth[i].head {
					behind++
				}
				v.mu.Unlock()
			}
		}
		if behind == 0 {
			r.res.ConvergeS = time.Since(start).Seconds()
			return
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			r.logf("%d clients still behind the store after %s", behind, r.cfg.Converge)
			r.res.ConvergeS = time.Since(start).Seconds()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// check compares what each client received with the store and each ack
// with the store, and fills in the correctness counts.
func (r *run) check(truth []roomTruth) {
	res := &r.res
	for i, rm := range r.rooms {
		t := truth[i]
		for _, v := range rm.members {
			if !v.subscribed.Load() {
				continue
			}
			v.mu.Lock()
			res.Delivered += v.recv
			res.Duplicated += v.dup
			res.OutOfOrder += v.ooo
			res.Foreign += v.other
			for seq := v.after + 1; seq <= t.head; seq++ {
				res.Expected++
				j := seq - v.after - 1
				switch {
				case j >= int64(len(v.ids)) || v.ids[j] == 0:
					res.Lost++
				case v.ids[j]-1 != t.ids[seq] && !(v.ids[j] == -1 && t.ids[seq] == -1):
					res.Diverged++
				}
			}
			// Anything received beyond the head was never stored.
			for j := t.head - v.after; j >= 0 && j < int64(len(v.ids)); j++ {
				if v.ids[j] != 0 {
					res.Phantom++
				}
			}
			v.mu.Unlock()
		}
	}
	for id := range r.posts.count() {
		rec := &r.posts.recs[id]
		if rec.sent.Load() == 0 {
			continue
		}
		res.Sent++
		if rec.acked.Load() == 0 {
			res.Unacked++
			continue
		}
		res.Acked++
		if got, ok := truth[rec.room].ids[rec.seq.Load()]; !ok || got != id {
			res.AckedNotStored++
		}
	}
	res.PostErrors = r.postErrors.Load()
	res.Retries = r.retries.Load()
	res.Behind = r.behind.Load()
	last, _ := r.lastPostError.Load().(string)
	if n := res.PostErrors - res.Unacked; n > 0 {
		// Posts that never went out: their room had no connected member.
		res.Failures = append(res.Failures, fmt.Sprintf("%d posts could not be sent (last: %s)", n, last))
	}
	for _, c := range []struct {
		n    int64
		what string
	}{
		{res.Lost, "lost (stored but never delivered to a subscribed client)"},
		{res.Duplicated, "duplicated deliveries"},
		{res.OutOfOrder, "out-of-order deliveries"},
		{res.Diverged, "deliveries differing from the stored event at their seq"},
		{res.Phantom, "deliveries of seqs the store does not hold"},
		{res.AckedNotStored, "acknowledged posts not in the store at their acknowledged seq"},
		{res.Unacked, "posts never acknowledged (last error: " + last + ")"},
	} {
		if c.n > 0 {
			res.Failures = append(res.Failures, fmt.Sprintf("%d %s", c.n, c.what))
		}
	}
}
