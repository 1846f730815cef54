package hub

import (
	"context"
	"fmt"
	"time"

	"patientpass/rooms"
)

// Login throttling limits (OWASP ASVS 2.2.1). Per account, five failures in
// fifteen minutes is more than a person mistyping makes and far too few to
// guess a password; per client address the limit is higher because a
// hospital's staff may share one outgoing address.
const (
	throttleWindow       = 15 * time.Minute
	maxAccountFailures   = 5
	maxClientAddrFailure = 50
)

// throttle counts failed logins in the store, so that every node agrees and
// a restart does not reset an attacker's count.
type throttle struct {
	store rooms.Store
	clock rooms.Clock
}

func newThrottle(store rooms.Store, clock rooms.Clock) *throttle {
	return &throttle{store: store, clock: clock}
}

func accountKey(email string) string { return "account:" + email }
func addrKey(addr string) string     { return "addr:" + addr }

// wait returns how long logins for email from addr must wait, zero when they
// may proceed. Refused attempts are not counted as failures: counting them
// would let anyone keep an account locked forever.
func (t *throttle) wait(ctx context.Context, email, addr string) (time.Duration, error) {
	now := t.clock.Now()
	// A failure counts while it is less than the window old; stores keep
	// microseconds, so the oldest time still inside is a microsecond later.
	since := now.Add(-throttleWindow + time.Microsecond)
	var longest time.Duration
	for _, k := range []struct {
		key   string
		limit int
	}{{accountKey(email), maxAccountFailures}, {addrKey(addr), maxClientAddrFailure}} {
		n, oldest, err := t.store.LoginFailures(ctx, k.key, since)
		if err != nil {
			return 0, fmt.Errorf("count login failures: %w", err)
		}
		if n < k.limit {
			continue
		}
		// The window slides: one more attempt is allowed when the oldest
		// failure in it ages out.
		if d := oldest.Add(throttleWindow).Sub(now); d > longest {
			longest = d
		}
		if longest <= 0 { // the clock moved back; wait a little
			longest = time.Second
		}
	}
	return longest, nil
}

// fail records a failed login for email and addr.
func (t *throttle) fail(ctx context.Context, email, addr string) error {
	now := t.clock.Now()
	for _, key := range []string{accountKey(email), addrKey(addr)} {
		if err := t.store.AddLoginFailure(ctx, key, now); err != nil {
			return fmt.Errorf("record login failure: %w", err)
		}
	}
	return nil
}

// succeed forgets the account's failures. The address's failures stay: an
// attacker holding one valid account must not be able to reset the count
// for their address by logging into it.
func (t *throttle) succeed(ctx context.Context, email string) error {
	if err := t.store.ClearLoginFailures(ctx, accountKey(email)); err != nil {
		return fmt.Errorf("clear login failures: %w", err)
	}
	return nil
}
