package client

import (
	"math/rand/v2"
	"net/http"
	"testing"
	"time"
)

func TestBackoffStaysWithinItsCeiling(t *testing.T) {
	const minB, maxB = 100 * time.Millisecond, 5 * time.Second
	lowest := func(int64) int64 { return 0 }
	highest := func(n int64) int64 { return n - 1 }
	wantCeilings := []time.Duration{200, 400, 800, 1600, 3200, 5000, 5000}
	for attempt, want := range wantCeilings {
		want *= time.Millisecond
		if got := backoff(minB, maxB, attempt, lowest); got != minB {
			t.Errorf("attempt %d: lowest delay = %v, want %v", attempt, got, minB)
		}
		if got := backoff(minB, maxB, attempt, highest); got != want {
			t.Errorf("attempt %d: highest delay = %v, want the ceiling %v", attempt, got, want)
		}
	}
	for attempt := range 100 {
		ceiling := wantCeilings[min(attempt, len(wantCeilings)-1)] * time.Millisecond
		for range 50 {
			if got := backoff(minB, maxB, attempt, rand.Int64N); got < minB || got > ceiling {
				t.Fatalf("attempt %d: delay %v outside [%v, %v]", attempt, got, minB, ceiling)
			}
		}
	}
}

func TestBackoffWithEqualBoundsIsFixed(t *testing.T) {
	for attempt := range 5 {
		if got := backoff(time.Second, time.Second, attempt, rand.Int64N); got != time.Second {
			t.Errorf("attempt %d: delay %v, want 1s", attempt, got)
		}
	}
}

func TestBackoffDefaults(t *testing.T) {
	c := newTestClient(t, Options{URL: "ws://127.0.0.1:1/ws"})
	if c.opts.MinBackoff != 100*time.Millisecond || c.opts.MaxBackoff != 5*time.Second {
		t.Errorf("defaults = %v..%v, want 100ms..5s", c.opts.MinBackoff, c.opts.MaxBackoff)
	}
	c = newTestClient(t, Options{URL: "ws://127.0.0.1:1/ws", MinBackoff: time.Second, MaxBackoff: time.Millisecond})
	if c.opts.MaxBackoff != time.Second {
		t.Errorf("MaxBackoff below MinBackoff became %v, want it raised to 1s", c.opts.MaxBackoff)
	}
}

func TestOnlyMissingSessionAndWrongOriginArePermanent(t *testing.T) {
	for status, want := range map[int]bool{
		http.StatusUnauthorized:       true,
		http.StatusForbidden:          true,
		http.StatusNotFound:           false,
		http.StatusTooManyRequests:    false,
		http.StatusBadGateway:         false,
		http.StatusServiceUnavailable: false,
	} {
		if got := (&HandshakeError{Status: status}).permanent(); got != want {
			t.Errorf("status %d: permanent = %v, want %v", status, got, want)
		}
	}
}
