package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"patientpass/hub/httpjson"
	"patientpass/hub/password"
	"patientpass/rooms"
)

// Throttling limits (OWASP ASVS 2.2.1). Per account, five failures in
// fifteen minutes is more than a person mistyping makes and far too few to
// guess a password; per client address the limit is higher because a
// hospital's staff may share one outgoing address. The same holds for
// second-factor codes, per account. Registrations are limited per address
// because each costs a slow hash and a row an admin must review.
const (
	throttleWindow        = 15 * time.Minute
	maxAccountFailures    = 5
	maxClientAddrFailures = 50
	maxTOTPFailures       = 5
	registerWindow        = time.Hour
	// DefaultRegistrationsPerHour is how many registrations one address may
	// make an hour unless configured otherwise.
	DefaultRegistrationsPerHour = 30
	// busyRetry is how long a client is asked to wait when every password
	// hash slot is taken and the queue is full.
	busyRetry = 5 * time.Second
)

// The keys attempts are counted under. They hold an email, an address or
// a user id: never log them.
func accountKey(email string) string { return "account:" + email }
func addrKey(addr string) string     { return "addr:" + addr }
func totpKey(userID string) string   { return "totp:" + userID }
func registerKey(addr string) string { return "register:" + addr }

// reserve counts an attempt against every limit before it is evaluated,
// atomically on every node, or reports how long to wait.
func (a *Auth) reserve(ctx context.Context, limits []rooms.Limit, window time.Duration) (rooms.Reservation, error) {
	res, err := a.store.ReserveAttempts(ctx, limits, window, a.clock.Now())
	if err != nil {
		return rooms.Reservation{}, fmt.Errorf("reserve an attempt: %w", err)
	}
	return res, nil
}

// throttled is the refusal of a second factor whose attempts are used up.
type throttled struct{ wait time.Duration }

func (t throttled) Error() string { return "throttled" }

// errThrottled matches any throttled refusal with errors.Is.
var errThrottled = throttled{}

func (t throttled) Is(target error) bool { _, ok := target.(throttled); return ok }

func throttledFor(err error) time.Duration {
	var t throttled
	if errors.As(err, &t) {
		return t.wait
	}
	return time.Minute
}

// hash hashes a password within the bound on concurrent hashing.
func (a *Auth) hash(ctx context.Context, pw string) (string, error) {
	a.m.PasswordHashWaiting.Inc()
	defer a.m.PasswordHashWaiting.Dec()
	h, err := a.hashes.HashCtx(ctx, pw)
	if err != nil && errors.Is(err, password.ErrBusy) {
		a.m.PasswordHashRefused.Inc()
	}
	return h, err
}

// verify checks a password within the bound on concurrent hashing.
func (a *Auth) verify(ctx context.Context, pw, encoded string) (ok, rehash bool, err error) {
	a.m.PasswordHashWaiting.Inc()
	defer a.m.PasswordHashWaiting.Dec()
	ok, rehash, err = a.hashes.VerifyCtx(ctx, pw, encoded)
	if err != nil && errors.Is(err, password.ErrBusy) {
		a.m.PasswordHashRefused.Inc()
	}
	return ok, rehash, err
}

// retryLater answers code with how long to wait, in whole seconds rounded
// up; message has one %s for the wait in words.
func (a *Auth) retryLater(w http.ResponseWriter, code rooms.Code, wait time.Duration, message string) {
	secs := max(int((wait+time.Second-1)/time.Second), 1)
	httpjson.RetryLater(w, code, secs, fmt.Sprintf(message, humanWait(secs)))
}

// busy answers 503 when password hashing is saturated: the node is
// protecting its memory, and the client may try again shortly.
func (a *Auth) busy(w http.ResponseWriter) {
	a.retryLater(w, rooms.CodeUnavailable, busyRetry, "Patient Pass is very busy signing people in; please try again in %s")
}

func humanWait(secs int) string {
	switch {
	case secs < 60:
		return fmt.Sprintf("%d seconds", secs)
	case secs <= 60:
		return "a minute"
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}
