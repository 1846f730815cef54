package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"patientpass/rooms"
)

// The limits the hub uses, and its window.
const (
	attemptWindow = 15 * time.Minute
	accountMax    = 5
)

// reserve reserves an attempt against limits at when, failing the test on
// error.
func reserve(t *testing.T, s rooms.Store, when time.Time, limits ...rooms.Limit) rooms.Reservation {
	t.Helper()
	r, err := s.ReserveAttempts(t.Context(), limits, attemptWindow, when)
	if err != nil {
		t.Fatalf("reserve attempt at %v: %v", when, err)
	}
	return r
}

// wantAllowed checks that r let the attempt go ahead under an id.
func wantAllowed(t *testing.T, what string, r rooms.Reservation) {
	t.Helper()
	if !r.Allowed || r.ID == "" || r.RetryAfter != 0 || r.RefusedBy != "" {
		t.Errorf("%s: %+v; want allowed with an id", what, r)
	}
}

// wantRefused checks that r refused the attempt because of key, to be tried
// again after wait.
func wantRefused(t *testing.T, what string, r rooms.Reservation, key string, wait time.Duration) {
	t.Helper()
	if r.Allowed || r.ID != "" || r.RefusedBy != key || r.RetryAfter != wait {
		t.Errorf("%s: %+v; want refused by %s, retry after %v, no id", what, r, key, wait)
	}
}

// forgive forgives a reserved attempt, failing the test on error.
func forgive(t *testing.T, s rooms.Store, id string) {
	t.Helper()
	if err := s.ForgiveAttempt(t.Context(), id); err != nil {
		t.Fatalf("forgive attempt: %v", err)
	}
}

// counted returns how many attempts key has in the window ending at when.
func counted(t *testing.T, s rooms.Store, key string, when time.Time) int {
	t.Helper()
	n, _, err := s.LoginFailures(t.Context(), key, when.Add(-attemptWindow+time.Microsecond))
	if err != nil {
		t.Fatalf("count attempts: %v", err)
	}
	return n
}

var attemptTests = []subtest{
	{"attempts_are_allowed_up_to_the_limit_then_refused_until_the_oldest_ages_out", func(t *testing.T, s rooms.Store) {
		const key, other = "account:referrer@demo.test", "account:colleague@demo.test"
		limit := rooms.Limit{Key: key, Max: accountMax}
		ids := map[string]bool{}
		for i := range accountMax {
			r := reserve(t, s, at(time.Duration(i)*time.Minute), limit)
			wantAllowed(t, fmt.Sprintf("attempt %d", i+1), r)
			if ids[r.ID] {
				t.Errorf("attempt %d: id %s given twice", i+1, r.ID)
			}
			ids[r.ID] = true
		}
		r := reserve(t, s, at(5*time.Minute), limit)
		wantRefused(t, "attempt past the limit", r, key, 10*time.Minute)
		// A refused attempt is not counted: counting it would let anyone
		// keep an account locked for ever.
		if n := counted(t, s, key, at(5*time.Minute)); n != accountMax {
			t.Errorf("%d attempts counted after a refusal, want %d", n, accountMax)
		}
		wantAllowed(t, "another key", reserve(t, s, at(5*time.Minute), rooms.Limit{Key: other, Max: accountMax}))
	}},
	{"the_window_slides_with_the_injected_time", func(t *testing.T, s rooms.Store) {
		const key = "account:referrer@demo.test"
		limit := rooms.Limit{Key: key, Max: accountMax}
		for i := range accountMax {
			wantAllowed(t, "filling the window", reserve(t, s, at(time.Duration(i)*time.Minute), limit))
		}
		// The attempt at 0 counts while it is less than the window old.
		wantRefused(t, "a microsecond before the oldest ages out",
			reserve(t, s, at(attemptWindow-time.Microsecond), limit), key, time.Microsecond)
		wantAllowed(t, "as the oldest ages out", reserve(t, s, at(attemptWindow), limit))
		// Now 1..4 minutes and the window's end are counted: the next room
		// comes when the attempt at 1 minute ages out.
		wantRefused(t, "full again", reserve(t, s, at(attemptWindow), limit), key, time.Minute)
		wantAllowed(t, "a window later", reserve(t, s, at(2*attemptWindow), limit))
	}},
	{"retry_after_waits_until_the_count_is_below_the_limit", func(t *testing.T, s rooms.Store) {
		// Failures added the old way are counted too, and may exceed the
		// limit: room comes when the fifth newest ages out, not the oldest.
		const key = "addr:192.0.2.10"
		addFailures(t, s, key, 0, time.Minute, 2*time.Minute, 3*time.Minute, 4*time.Minute, 5*time.Minute, 6*time.Minute)
		wantRefused(t, "over the limit", reserve(t, s, at(7*time.Minute), rooms.Limit{Key: key, Max: accountMax}),
			key, attemptWindow+2*time.Minute-7*time.Minute)
	}},
	{"a_forgiven_attempt_no_longer_counts", func(t *testing.T, s rooms.Store) {
		const key = "account:referrer@demo.test"
		limit := rooms.Limit{Key: key, Max: accountMax}
		var last rooms.Reservation
		for i := range accountMax {
			last = reserve(t, s, at(time.Duration(i)*time.Minute), limit)
		}
		wantRefused(t, "full", reserve(t, s, at(5*time.Minute), limit), key, 10*time.Minute)
		forgive(t, s, last.ID)
		if n := counted(t, s, key, at(5*time.Minute)); n != accountMax-1 {
			t.Errorf("%d attempts counted after forgiving one, want %d", n, accountMax-1)
		}
		wantAllowed(t, "after forgiving one", reserve(t, s, at(5*time.Minute), limit))
		forgive(t, s, last.ID) // twice: already gone
		forgive(t, s, "")      // a refused reservation's id
		forgive(t, s, rooms.NewID())
		if n := counted(t, s, key, at(5*time.Minute)); n != accountMax {
			t.Errorf("%d attempts counted after forgiving gone ids, want %d", n, accountMax)
		}
	}},
	{"clearing_login_failures_forgets_reserved_attempts", func(t *testing.T, s rooms.Store) {
		const key = "account:referrer@demo.test"
		limit := rooms.Limit{Key: key, Max: accountMax}
		var first rooms.Reservation
		for i := range accountMax {
			r := reserve(t, s, at(time.Duration(i)*time.Minute), limit)
			if i == 0 {
				first = r
			}
		}
		if err := s.ClearLoginFailures(t.Context(), key); err != nil {
			t.Fatalf("clear login failures: %v", err)
		}
		wantAllowed(t, "after clearing", reserve(t, s, at(5*time.Minute), limit))
		forgive(t, s, first.ID) // cleared already
		if n := counted(t, s, key, at(5*time.Minute)); n != 1 {
			t.Errorf("%d attempts counted, want 1", n)
		}
	}},
	{"several_keys_are_reserved_all_or_nothing", func(t *testing.T, s rooms.Store) {
		const account, addr = "account:referrer@demo.test", "addr:192.0.2.10"
		accountLimit, addrLimit := rooms.Limit{Key: account, Max: accountMax}, rooms.Limit{Key: addr, Max: 2}
		r1 := reserve(t, s, at(0), accountLimit, addrLimit)
		wantAllowed(t, "first", r1)
		wantAllowed(t, "second", reserve(t, s, at(time.Minute), addrLimit, accountLimit))
		wantRefused(t, "the address is full", reserve(t, s, at(2*time.Minute), accountLimit, addrLimit), addr, 13*time.Minute)
		if n := counted(t, s, account, at(2*time.Minute)); n != 2 {
			t.Errorf("account: %d attempts counted after the address refused, want 2", n)
		}
		// One id covers every key it was reserved on.
		forgive(t, s, r1.ID)
		if a, b := counted(t, s, account, at(2*time.Minute)), counted(t, s, addr, at(2*time.Minute)); a != 1 || b != 1 {
			t.Errorf("after forgiving: account %d, address %d attempts; want 1, 1", a, b)
		}
		// When several keys are full, the wait is the longest, whatever
		// their order.
		wantAllowed(t, "the address again", reserve(t, s, at(3*time.Minute), rooms.Limit{Key: addr, Max: 5}))
		tight := []rooms.Limit{{Key: account, Max: 1}, {Key: addr, Max: 1}}
		wantRefused(t, "both full", reserve(t, s, at(4*time.Minute), tight...), addr, 14*time.Minute)
		wantRefused(t, "both full, swapped", reserve(t, s, at(4*time.Minute), tight[1], tight[0]), addr, 14*time.Minute)
		wantRefused(t, "the account alone", reserve(t, s, at(4*time.Minute), tight[0]), account, 12*time.Minute)
	}},
	{"reserving_with_impossible_limits_is_an_error_and_counts_nothing", func(t *testing.T, s rooms.Store) {
		const key = "totp:u-referrer"
		for name, c := range map[string]struct {
			limits []rooms.Limit
			window time.Duration
		}{
			"no keys":       {nil, attemptWindow},
			"empty key":     {[]rooms.Limit{{Key: key, Max: 5}, {Key: "", Max: 5}}, attemptWindow},
			"limit of zero": {[]rooms.Limit{{Key: key, Max: 0}}, attemptWindow},
			"repeated key":  {[]rooms.Limit{{Key: key, Max: 5}, {Key: key, Max: 50}}, attemptWindow},
			"no window":     {[]rooms.Limit{{Key: key, Max: 5}}, 0},
		} {
			if r, err := s.ReserveAttempts(t.Context(), c.limits, c.window, at(0)); err == nil {
				t.Errorf("%s: %+v, nil; want an error", name, r)
			}
		}
		if n := counted(t, s, key, at(0)); n != 0 {
			t.Errorf("%d attempts counted, want 0", n)
		}
	}},
	{"concurrent_reservations_of_one_key_allow_exactly_the_limit", func(t *testing.T, s rooms.Store) {
		concurrentReservations(t, s, s)
	}},
	{"concurrent_reservations_of_shared_keys_allow_exactly_the_limits", func(t *testing.T, s rooms.Store) {
		concurrentSharedKeys(t, s, s)
	}},
}

// raceReservers is how many attempts race for one key: the 40 concurrent
// guesses that all got through when the hub counted after the check.
const raceReservers = 40

// concurrentReservations races raceReservers reservations for one key with
// room for accountMax, half on each store, and checks that exactly
// accountMax are allowed and counted.
func concurrentReservations(t *testing.T, a, b rooms.Store) {
	for round := range 5 {
		key := fmt.Sprintf("account:round-%d@demo.test", round)
		var turn atomic.Int32
		won := race(t, raceReservers, func() (bool, error) {
			s := a
			if (turn.Add(1)-1)%2 == 1 {
				s = b
			}
			r, err := rooms.ReserveAttempt(t.Context(), s, key, accountMax, attemptWindow, at(0))
			return r.Allowed, err
		})
		if won != accountMax {
			t.Errorf("round %d: %d of %d concurrent reservations allowed, want %d", round, won, raceReservers, accountMax)
		}
		if n := counted(t, a, key, at(0)); n != accountMax {
			t.Errorf("round %d: %d attempts counted, want %d", round, n, accountMax)
		}
	}
}

// concurrentSharedKeys races reservations of an account key and one shared
// address key, in both orders (which would deadlock a store that locks keys
// as given), and checks that the address's limit holds and that no refused
// reservation left an attempt on an account.
func concurrentSharedKeys(t *testing.T, a, b rooms.Store) {
	const accounts, addrMax = 4, 12
	const addr = "addr:192.0.2.10"
	var turn atomic.Int32
	won := race(t, raceReservers, func() (bool, error) {
		i := turn.Add(1) - 1
		s := a
		if i%2 == 1 {
			s = b
		}
		limits := []rooms.Limit{{Key: fmt.Sprintf("account:%d@demo.test", i%accounts), Max: accountMax}, {Key: addr, Max: addrMax}}
		if i%3 == 0 {
			limits[0], limits[1] = limits[1], limits[0]
		}
		r, err := s.ReserveAttempts(t.Context(), limits, attemptWindow, at(0))
		return r.Allowed, err
	})
	if won != addrMax {
		t.Errorf("%d of %d concurrent reservations allowed, want %d", won, raceReservers, addrMax)
	}
	if n := counted(t, a, addr, at(0)); n != addrMax {
		t.Errorf("address: %d attempts counted, want %d", n, addrMax)
	}
	sum := 0
	for i := range accounts {
		n := counted(t, a, fmt.Sprintf("account:%d@demo.test", i), at(0))
		if n > accountMax {
			t.Errorf("account %d: %d attempts counted, more than its limit %d", i, n, accountMax)
		}
		sum += n
	}
	if sum != addrMax {
		t.Errorf("accounts: %d attempts counted in all, want %d (one per allowed reservation)", sum, addrMax)
	}
}

// RunShared runs the checks that need two stores on one database, as two
// nodes share one Postgres (or two processes one SQLite file). open returns
// two stores opened separately on the same new, empty, migrated database.
func RunShared(t *testing.T, open func(t *testing.T) (rooms.Store, rooms.Store)) {
	t.Helper()
	for _, st := range []struct {
		name string
		run  func(t *testing.T, a, b rooms.Store)
	}{
		{"concurrent_reservations_of_one_key_from_two_stores_allow_exactly_the_limit", concurrentReservations},
		{"concurrent_reservations_of_shared_keys_from_two_stores_allow_exactly_the_limits", concurrentSharedKeys},
		{"scheduler_lock_is_held_by_one_store_until_it_releases_or_closes", schedulerLockShared},
		{"concurrent_holds_of_the_scheduler_lock_from_two_stores_give_one_holder", schedulerLockConcurrent},
	} {
		t.Run(st.name, func(t *testing.T) {
			t.Parallel()
			a, b := open(t)
			st.run(t, a, b)
		})
	}
}
