package webhooks

import (
	"testing"
	"time"

	"patientpass/rooms"
)

func TestBackoffDoublesFromASecondToFiveMinutesForADay(t *testing.T) {
	d := New(Config{})
	first := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	c := rooms.WebhookClaim{Message: rooms.WebhookMessage{At: first}}
	at := first
	var waits []time.Duration
	for {
		next, retry := d.nextAttempt(c, at)
		if !retry {
			break
		}
		waits = append(waits, next.Sub(at))
		c.Attempts++
		at = next
		if len(waits) > 1000 {
			t.Fatal("retries never end")
		}
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256}
	for i, w := range want {
		if waits[i] != w*time.Second {
			t.Errorf("wait %d: %v, want %v", i+1, waits[i], w*time.Second)
		}
	}
	for i, w := range waits[len(want) : len(waits)-1] {
		if w != 5*time.Minute {
			t.Fatalf("wait %d: %v, want the 5 minute cap", len(want)+i+1, w)
		}
	}
	if last := waits[len(waits)-1]; last <= 0 || last > 5*time.Minute {
		t.Errorf("last wait %v", last)
	}
	if !at.Equal(first.Add(24 * time.Hour)) {
		t.Errorf("last attempt at %v, want a day after the first, %v", at, first.Add(24*time.Hour))
	}
	// 511 s of doubling, then 5 minute waits to the end of the day.
	if wantN := len(want) + (86400-511+299)/300; len(waits) != wantN {
		t.Errorf("%d retries, want %d", len(waits), wantN)
	}
}

// TestBackoffCountsTheDayFromTheEvent: a message that waited behind a
// failing one (seq order) has less of its day left when first tried, so a
// receiver that stays down fails a referral's queue in about a day, not a
// day per message.
func TestBackoffCountsTheDayFromTheEvent(t *testing.T) {
	d := New(Config{})
	event := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	c := rooms.WebhookClaim{Message: rooms.WebhookMessage{At: event}}
	at := event.Add(23*time.Hour + 59*time.Minute)
	next, retry := d.nextAttempt(c, at)
	if !retry || next.Sub(at) != time.Second {
		t.Fatalf("first attempt a minute before the day ends: next %v, %v", next, retry)
	}
	if _, retry := d.nextAttempt(c, event.Add(24*time.Hour)); retry {
		t.Fatal("a message whose event is a day old is retried")
	}
}
