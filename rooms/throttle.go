package rooms

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limit is how many attempts one throttling key may make within a window:
// "account:<email>" 5, "addr:<ip>" 50, "totp:<user id>" 5.
type Limit struct {
	Key string
	Max int
}

// Reservation is the store's answer to a request to make an attempt.
type Reservation struct {
	// Allowed reports whether the attempt may go ahead. An allowed attempt
	// is already counted, as a failure, against every key it was reserved
	// on.
	Allowed bool
	// ID names the counted attempt, for ForgiveAttempt; empty when refused.
	ID string
	// RetryAfter, when refused, is how long until the refusing key's window
	// has room for one more attempt. It is at least a microsecond.
	RetryAfter time.Duration
	// RefusedBy, when refused, is the key whose limit was reached (the
	// longest wait when several were), so a refusal can be audited as the
	// account's or the address's. It holds an email or an address: compare
	// it with the keys asked for; never log it.
	RefusedBy string
}

// AttemptStore throttles guesses (passwords, second-factor codes) on every
// node at once. Reserving before the slow check and counting at once is
// what makes the limit hold under concurrency: counting after the check
// lets every concurrent guess through the gate before any is counted.
//
// Attempts share the rows of CredentialStore's login failures, so
// LoginFailures counts reserved attempts and ClearLoginFailures forgets
// them.
type AttemptStore interface {
	// ReserveAttempts counts one attempt against every key in limits at
	// now, if each key has fewer than its Max attempts in the window
	// (those less than window old); otherwise it counts nothing on any key
	// and reports the refusal. Concurrent reservations, from any node,
	// are serialised per key: of N racing for a key with room for L, L are
	// allowed.
	ReserveAttempts(ctx context.Context, limits []Limit, window time.Duration, now time.Time) (Reservation, error)
	// ForgiveAttempt removes the attempt id from every key it was counted
	// on, because it succeeded or turned out not to be a guess. An id
	// already gone (cleared, pruned, forgiven) is not an error.
	ForgiveAttempt(ctx context.Context, id string) error
}

// ReserveAttempt reserves an attempt against one key.
func ReserveAttempt(ctx context.Context, s AttemptStore, key string, limit int, window time.Duration, now time.Time) (Reservation, error) {
	return s.ReserveAttempts(ctx, []Limit{{Key: key, Max: limit}}, window, now)
}

// CheckLimits reports limits or window that no store can honour: an empty
// list, a Max below one, an empty or repeated key (which would count one
// attempt twice), a window that is not positive. Stores call it before
// touching anything.
func CheckLimits(limits []Limit, window time.Duration) error {
	if window <= 0 {
		return fmt.Errorf("reserve attempt: window %v is not positive", window)
	}
	if len(limits) == 0 {
		return errors.New("reserve attempt: no keys")
	}
	seen := make(map[string]bool, len(limits))
	for _, l := range limits {
		switch {
		case l.Key == "":
			return errors.New("reserve attempt: empty key")
		case l.Max < 1:
			// A limit of zero would refuse for ever with nothing to wait
			// for; it is a mistake in the caller, not a policy.
			return fmt.Errorf("reserve attempt: limit %d is below one", l.Max)
		case seen[l.Key]:
			return errors.New("reserve attempt: a key is given twice")
		}
		seen[l.Key] = true
	}
	return nil
}
