package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"patientpass/rooms"
)

// newSession returns a session of user with id, its token hash derived
// from the id.
func newSession(id, userID string, created, lastSeen time.Time) rooms.Session {
	return rooms.Session{
		ID:         id,
		TokenHash:  "th-" + id,
		UserID:     userID,
		CreatedAt:  created,
		LastSeenAt: lastSeen,
		ClientAddr: "192.0.2.10",
		UserAgent:  "Mozilla/5.0 (storetest " + id + ")",
	}
}

// createSessions stores sessions, failing the test if any is refused.
func createSessions(t *testing.T, s rooms.Store, xs ...rooms.Session) {
	t.Helper()
	for _, x := range xs {
		if err := s.CreateSession(t.Context(), x); err != nil {
			t.Fatalf("create session %s: %v", x.ID, err)
		}
	}
}

// checkSession compares every field of a session, times at microseconds.
func checkSession(t *testing.T, what string, got, want rooms.Session) {
	t.Helper()
	if got.ID != want.ID || got.TokenHash != want.TokenHash || got.UserID != want.UserID ||
		got.ClientAddr != want.ClientAddr || got.UserAgent != want.UserAgent ||
		!sameTime(got.CreatedAt, want.CreatedAt) || !sameTime(got.LastSeenAt, want.LastSeenAt) {
		t.Errorf("%s:\ngot  %+v\nwant %+v", what, got, want)
	}
}

// sessionByToken looks a session up, failing the test if it is not there.
func sessionByToken(t *testing.T, s rooms.Store, tokenHash string) rooms.Session {
	t.Helper()
	x, err := s.SessionByTokenHash(t.Context(), tokenHash)
	if err != nil {
		t.Fatalf("get session by token hash %s: %v", tokenHash, err)
	}
	return x
}

// userSessionIDs lists the ids of a user's sessions in the store's order.
func userSessionIDs(t *testing.T, s rooms.Store, userID string) []string {
	t.Helper()
	xs, err := s.UserSessions(t.Context(), userID)
	if err != nil {
		t.Fatalf("list sessions of user %s: %v", userID, err)
	}
	ids := []string{}
	for _, x := range xs {
		if x.UserID != userID {
			t.Errorf("sessions of user %s include %s of user %s", userID, x.ID, x.UserID)
		}
		ids = append(ids, x.ID)
	}
	return ids
}

var sessionTests = []subtest{
	{"create_then_lookup_by_token_hash_round_trips_every_field", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := newSession("s-1", f.referrer.ID, at(-time.Hour), at(-time.Minute))
		other := newSession("s-2", f.colleague.ID, at(-2*time.Hour), at(-2*time.Hour))
		other.ClientAddr, other.UserAgent = "2001:db8::1", "curl/8.0"
		createSessions(t, s, want, other)
		checkSession(t, "session by token hash", sessionByToken(t, s, want.TokenHash), want)
		checkSession(t, "other session by token hash", sessionByToken(t, s, other.TokenHash), other)
	}},
	{"unknown_token_hash_is_not_found", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		createSessions(t, s, newSession("s-1", f.referrer.ID, at(0), at(0)))
		_, err := s.SessionByTokenHash(t.Context(), "th-unknown")
		wantNotFound(t, "get session by unknown token hash", err)
		// The session id is not its token hash.
		_, err = s.SessionByTokenHash(t.Context(), "s-1")
		wantNotFound(t, "get session by its id as token hash", err)
	}},
	{"duplicate_token_hash_or_id_is_duplicate", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		first := newSession("s-1", f.referrer.ID, at(0), at(0))
		createSessions(t, s, first)
		sameToken := newSession("s-2", f.colleague.ID, at(time.Minute), at(time.Minute))
		sameToken.TokenHash = first.TokenHash
		wantDuplicate(t, "create session with a taken token hash", s.CreateSession(t.Context(), sameToken))
		sameID := newSession("s-1", f.colleague.ID, at(time.Minute), at(time.Minute))
		sameID.TokenHash = "th-fresh"
		wantDuplicate(t, "create session with a taken id", s.CreateSession(t.Context(), sameID))

		checkSession(t, "first session after refused duplicates", sessionByToken(t, s, first.TokenHash), first)
		_, err := s.SessionByTokenHash(t.Context(), sameID.TokenHash)
		wantNotFound(t, "token hash of refused session", err)
		checkIDs(t, "sessions of the refused sessions' user", userSessionIDs(t, s, f.colleague.ID), []string{})
	}},
	{"session_of_unknown_user_is_not_found", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		x := newSession("s-ghost", "u-ghost", at(0), at(0))
		wantNotFound(t, "create session of unknown user", s.CreateSession(t.Context(), x))
		_, err := s.SessionByTokenHash(t.Context(), x.TokenHash)
		wantNotFound(t, "token hash of refused session", err)
	}},
	{"touch_never_moves_last_seen_backwards", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := newSession("s-1", f.referrer.ID, at(0), at(0))
		other := newSession("s-2", f.referrer.ID, at(0), at(0))
		createSessions(t, s, want, other)
		for _, c := range []struct {
			touch, want time.Duration
		}{
			{10 * time.Minute, 10 * time.Minute},
			{5 * time.Minute, 10 * time.Minute},  // earlier: kept
			{10 * time.Minute, 10 * time.Minute}, // the same: kept
			{10*time.Minute + time.Microsecond, 10*time.Minute + time.Microsecond},
			{-time.Hour, 10*time.Minute + time.Microsecond},
		} {
			if err := s.TouchSession(t.Context(), want.ID, at(c.touch)); err != nil {
				t.Fatalf("touch session at %v: %v", c.touch, err)
			}
			want.LastSeenAt = at(c.want)
			checkSession(t, "session touched at "+c.touch.String(), sessionByToken(t, s, want.TokenHash), want)
		}
		checkSession(t, "session not touched", sessionByToken(t, s, other.TokenHash), other)
		wantNotFound(t, "touch unknown session", s.TouchSession(t.Context(), "s-unknown", at(time.Hour)))
	}},
	{"user_sessions_are_listed_newest_first", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		mid := newSession("s-mid", f.referrer.ID, at(-2*time.Hour), at(-10*time.Minute))
		newest := newSession("s-new", f.referrer.ID, at(-time.Hour), at(-time.Hour))
		oldest := newSession("s-old", f.referrer.ID, at(-3*time.Hour), at(-time.Minute))
		other := newSession("s-other", f.colleague.ID, at(0), at(0))
		createSessions(t, s, mid, newest, oldest, other)
		got, err := s.UserSessions(t.Context(), f.referrer.ID)
		if err != nil {
			t.Fatalf("list sessions: %v", err)
		}
		want := []rooms.Session{newest, mid, oldest}
		if len(got) != len(want) {
			t.Fatalf("listed %d sessions, want %d: %+v", len(got), len(want), got)
		}
		for i := range want {
			checkSession(t, "session "+want[i].ID, got[i], want[i])
		}
		checkIDs(t, "other user's sessions", userSessionIDs(t, s, f.colleague.ID), []string{other.ID})
		checkIDs(t, "sessions of a user without any", userSessionIDs(t, s, f.outsider.ID), []string{})
		checkIDs(t, "sessions of an unknown user", userSessionIDs(t, s, "u-ghost"), []string{})
	}},
	{"delete_ends_one_session", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		gone := newSession("s-gone", f.referrer.ID, at(0), at(0))
		kept := newSession("s-kept", f.referrer.ID, at(time.Minute), at(time.Minute))
		createSessions(t, s, gone, kept)
		if err := s.DeleteSession(t.Context(), gone.ID); err != nil {
			t.Fatalf("delete session: %v", err)
		}
		_, err := s.SessionByTokenHash(t.Context(), gone.TokenHash)
		wantNotFound(t, "get deleted session", err)
		checkIDs(t, "sessions after delete", userSessionIDs(t, s, f.referrer.ID), []string{kept.ID})
		checkSession(t, "session not deleted", sessionByToken(t, s, kept.TokenHash), kept)
		wantNotFound(t, "delete session again", s.DeleteSession(t.Context(), gone.ID))
		wantNotFound(t, "delete unknown session", s.DeleteSession(t.Context(), "s-unknown"))
		wantNotFound(t, "touch deleted session", s.TouchSession(t.Context(), gone.ID, at(time.Hour)))
	}},
	{"delete_user_sessions_ends_them_all_and_counts_them", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		createSessions(t, s,
			newSession("s-a1", f.referrer.ID, at(0), at(0)),
			newSession("s-a2", f.referrer.ID, at(time.Minute), at(time.Minute)),
			newSession("s-a3", f.referrer.ID, at(2*time.Minute), at(2*time.Minute)),
			newSession("s-b1", f.colleague.ID, at(0), at(0)),
		)
		n, err := s.DeleteUserSessions(t.Context(), f.referrer.ID)
		if err != nil || n != 3 {
			t.Errorf("delete sessions of user: %d, %v; want 3, nil", n, err)
		}
		checkIDs(t, "sessions after deleting them all", userSessionIDs(t, s, f.referrer.ID), []string{})
		for _, id := range []string{"s-a1", "s-a2", "s-a3"} {
			_, err := s.SessionByTokenHash(t.Context(), "th-"+id)
			wantNotFound(t, "get deleted session "+id, err)
		}
		checkIDs(t, "other user's sessions", userSessionIDs(t, s, f.colleague.ID), []string{"s-b1"})
		n, err = s.DeleteUserSessions(t.Context(), f.referrer.ID)
		if err != nil || n != 0 {
			t.Errorf("delete sessions of user again: %d, %v; want 0, nil", n, err)
		}
		n, err = s.DeleteUserSessions(t.Context(), "u-ghost")
		if err != nil || n != 0 {
			t.Errorf("delete sessions of unknown user: %d, %v; want 0, nil", n, err)
		}
	}},
	{"delete_expired_removes_idle_and_old_sessions", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		idleBefore, createdBefore := at(-30*time.Minute), at(-12*time.Hour)
		createSessions(t, s,
			newSession("s-fresh", f.referrer.ID, at(-time.Hour), at(0)),
			newSession("s-idle", f.referrer.ID, at(-time.Hour), idleBefore.Add(-time.Microsecond)),
			newSession("s-idle-edge", f.referrer.ID, at(-2*time.Hour), idleBefore),
			newSession("s-old", f.colleague.ID, createdBefore.Add(-time.Microsecond), at(0)),
			newSession("s-old-edge", f.colleague.ID, createdBefore, at(0)),
			newSession("s-idle-and-old", f.colleague.ID, at(-20*time.Hour), at(-20*time.Hour)),
		)
		n, err := s.DeleteExpiredSessions(t.Context(), idleBefore, createdBefore)
		if err != nil || n != 3 {
			t.Errorf("delete expired sessions: %d, %v; want 3, nil", n, err)
		}
		checkIDs(t, "referrer's sessions left", userSessionIDs(t, s, f.referrer.ID), []string{"s-fresh", "s-idle-edge"})
		checkIDs(t, "colleague's sessions left", userSessionIDs(t, s, f.colleague.ID), []string{"s-old-edge"})
		n, err = s.DeleteExpiredSessions(t.Context(), idleBefore, createdBefore)
		if err != nil || n != 0 {
			t.Errorf("delete expired sessions again: %d, %v; want 0, nil", n, err)
		}
	}},
	{"touch_keeps_a_session_from_expiring", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		x := newSession("s-1", f.referrer.ID, at(-time.Hour), at(-time.Hour))
		createSessions(t, s, x)
		if err := s.TouchSession(t.Context(), x.ID, at(0)); err != nil {
			t.Fatalf("touch session: %v", err)
		}
		n, err := s.DeleteExpiredSessions(t.Context(), at(-30*time.Minute), at(-12*time.Hour))
		if err != nil || n != 0 {
			t.Errorf("delete expired sessions after touch: %d, %v; want 0, nil", n, err)
		}
		checkIDs(t, "sessions left", userSessionIDs(t, s, f.referrer.ID), []string{x.ID})
	}},
}

// wantFailures checks what LoginFailures reports for key since since.
func wantFailures(t *testing.T, s rooms.Store, what, key string, since time.Time, wantN int, wantOldest time.Time) {
	t.Helper()
	n, oldest, err := s.LoginFailures(t.Context(), key, since)
	if err != nil {
		t.Errorf("%s: count login failures: %v", what, err)
		return
	}
	if n != wantN {
		t.Errorf("%s: %d failures, want %d", what, n, wantN)
	}
	if wantOldest.IsZero() {
		if !oldest.IsZero() {
			t.Errorf("%s: oldest failure %v, want the zero time", what, oldest)
		}
	} else if !sameTime(oldest, wantOldest) {
		t.Errorf("%s: oldest failure %v, want %v", what, oldest, wantOldest)
	}
}

// addFailures records a failed login for key at each of ds after base.
func addFailures(t *testing.T, s rooms.Store, key string, ds ...time.Duration) {
	t.Helper()
	for _, d := range ds {
		if err := s.AddLoginFailure(t.Context(), key, at(d)); err != nil {
			t.Fatalf("add login failure: %v", err)
		}
	}
}

// wantCodesLeft checks how many unused recovery codes a user has.
func wantCodesLeft(t *testing.T, s rooms.Store, what, userID string, want int) {
	t.Helper()
	n, err := s.RecoveryCodesLeft(t.Context(), userID)
	if err != nil || n != want {
		t.Errorf("%s: %d recovery codes left, %v; want %d, nil", what, n, err, want)
	}
}

// wantUse checks the result of spending a recovery code.
func wantUse(t *testing.T, s rooms.Store, userID, hash string, want bool) {
	t.Helper()
	used, err := s.UseRecoveryCode(t.Context(), userID, hash, at(time.Minute))
	if err != nil || used != want {
		t.Errorf("use recovery code %s of user %s: %v, %v; want %v, nil", hash, userID, used, err, want)
	}
}

// setCodes replaces a user's recovery codes, failing the test on error.
func setCodes(t *testing.T, s rooms.Store, userID string, hashes ...string) {
	t.Helper()
	if err := s.SetRecoveryCodes(t.Context(), userID, hashes); err != nil {
		t.Fatalf("set recovery codes of user %s: %v", userID, err)
	}
}

// wantClaim checks the result of claiming a TOTP step.
func wantClaim(t *testing.T, s rooms.Store, userID string, step int64, want bool) {
	t.Helper()
	ok, err := s.ClaimTOTPStep(t.Context(), userID, step)
	if err != nil || ok != want {
		t.Errorf("claim TOTP step %d of user %s: %v, %v; want %v, nil", step, userID, ok, err, want)
	}
}

// raceRounds is how many times a concurrency test races.
const raceRounds = 20

// race runs fn from n goroutines released together and returns how many
// returned true; any error fails the test.
func race(t *testing.T, n int, fn func() (bool, error)) int {
	t.Helper()
	var (
		wins  atomic.Int32
		wg    sync.WaitGroup
		mu    sync.Mutex
		errs  []error
		start = make(chan struct{})
	)
	for range n {
		wg.Go(func() {
			<-start
			ok, err := fn()
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			if ok {
				wins.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Errorf("%d of %d concurrent calls failed: %v", len(errs), n, err)
	}
	return int(wins.Load())
}

var credentialTests = []subtest{
	{"login_failures_are_counted_within_the_window", func(t *testing.T, s rooms.Store) {
		const key, other = "account:referrer@demo.test", "addr:192.0.2.10"
		addFailures(t, s, key, -time.Minute, -10*time.Minute, -5*time.Minute) // out of order
		addFailures(t, s, other, -20*time.Minute)
		wantFailures(t, s, "last 6 minutes", key, at(-6*time.Minute), 2, at(-5*time.Minute))
		wantFailures(t, s, "since the oldest, inclusive", key, at(-10*time.Minute), 3, at(-10*time.Minute))
		wantFailures(t, s, "since just after the oldest", key, at(-10*time.Minute+time.Microsecond), 2, at(-5*time.Minute))
		wantFailures(t, s, "since the newest, inclusive", key, at(-time.Minute), 1, at(-time.Minute))
		wantFailures(t, s, "since after the newest", key, at(0), 0, time.Time{})
		wantFailures(t, s, "other key", other, at(-time.Hour), 1, at(-20*time.Minute))
		wantFailures(t, s, "unknown key", "account:nobody@demo.test", at(-time.Hour), 0, time.Time{})
	}},
	{"clear_login_failures_forgets_only_that_key", func(t *testing.T, s rooms.Store) {
		const key, other = "account:referrer@demo.test", "account:colleague@demo.test"
		addFailures(t, s, key, -3*time.Minute, -2*time.Minute)
		addFailures(t, s, other, -time.Minute)
		if err := s.ClearLoginFailures(t.Context(), key); err != nil {
			t.Fatalf("clear login failures: %v", err)
		}
		wantFailures(t, s, "cleared key", key, at(-time.Hour), 0, time.Time{})
		wantFailures(t, s, "other key", other, at(-time.Hour), 1, at(-time.Minute))
		if err := s.ClearLoginFailures(t.Context(), "account:nobody@demo.test"); err != nil {
			t.Errorf("clear login failures of a key without any: %v", err)
		}
		addFailures(t, s, key, 0)
		wantFailures(t, s, "failure after clearing", key, at(-time.Hour), 1, at(0))
	}},
	{"adding_a_login_failure_prunes_that_keys_failures_older_than_a_day", func(t *testing.T, s rooms.Store) {
		// The stores keep a key's failures bounded: not part of
		// rooms.CredentialStore's contract, but both stores do it and the
		// throttle never looks back further than a day.
		const key, other = "addr:192.0.2.10", "addr:192.0.2.11"
		addFailures(t, s, key, -30*time.Hour, -25*time.Hour, -23*time.Hour) // within a day of each other
		addFailures(t, s, other, -48*time.Hour)
		wantFailures(t, s, "before pruning", key, at(-100*time.Hour), 3, at(-30*time.Hour))
		addFailures(t, s, key, 0)
		wantFailures(t, s, "after pruning", key, at(-100*time.Hour), 2, at(-23*time.Hour))
		wantFailures(t, s, "other key", other, at(-100*time.Hour), 1, at(-48*time.Hour))
	}},
	{"totp_step_is_claimed_once", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		wantClaim(t, s, f.referrer.ID, 1000, true)
		wantClaim(t, s, f.referrer.ID, 1000, false)
		wantClaim(t, s, f.referrer.ID, 999, false)
		wantClaim(t, s, f.referrer.ID, 1001, true)
		wantClaim(t, s, f.referrer.ID, 1000, false)
		wantClaim(t, s, f.referrer.ID, 1001, false)
		// Steps are per user.
		wantClaim(t, s, f.colleague.ID, 1000, true)
		wantClaim(t, s, f.colleague.ID, 1000, false)
	}},
	{"totp_step_claimed_survives_user_update", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		wantClaim(t, s, f.referrer.ID, 1000, true)
		u := f.referrer
		u.TOTPSecret = "JBSWY3DPEHPK3PXP"
		u.UpdatedAt = at(time.Hour)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateUser(ctx, u) })
		wantClaim(t, s, f.referrer.ID, 1000, false)
		wantClaim(t, s, f.referrer.ID, 1001, true)
	}},
	{"totp_claim_of_unknown_user_claims_nothing", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		ok, err := s.ClaimTOTPStep(t.Context(), "u-ghost", 1000)
		if ok || (err != nil && !errors.Is(err, rooms.ErrNotFound)) {
			t.Errorf("claim TOTP step of unknown user: %v, %v; want false and no error or one wrapping rooms.ErrNotFound", ok, err)
		}
	}},
	{"concurrent_claims_of_one_totp_step_succeed_once", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		// Many rounds, so that a check-then-act store is caught once its
		// connections are warm and the claims really overlap.
		for round := range raceRounds {
			step := int64(5000 + round)
			wins := race(t, 10, func() (bool, error) { return s.ClaimTOTPStep(t.Context(), f.referrer.ID, step) })
			if wins != 1 {
				t.Fatalf("round %d: %d of 10 concurrent claims of one step succeeded, want 1", round, wins)
			}
		}
		wantClaim(t, s, f.referrer.ID, 5000+raceRounds-1, false)
	}},
	{"recovery_code_is_used_once", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		wantCodesLeft(t, s, "before any are set", f.referrer.ID, 0)
		setCodes(t, s, f.referrer.ID, "h-1", "h-2", "h-3")
		wantCodesLeft(t, s, "after setting 3", f.referrer.ID, 3)
		wantUse(t, s, f.referrer.ID, "h-1", true)
		wantCodesLeft(t, s, "after using one", f.referrer.ID, 2)
		wantUse(t, s, f.referrer.ID, "h-1", false)
		wantUse(t, s, f.referrer.ID, "h-unknown", false)
		wantCodesLeft(t, s, "after refused uses", f.referrer.ID, 2)
		// Codes are per user: another user cannot spend them, and may hold
		// the same hash.
		wantUse(t, s, f.colleague.ID, "h-2", false)
		wantCodesLeft(t, s, "after another user tried one", f.referrer.ID, 2)
		setCodes(t, s, f.colleague.ID, "h-2")
		wantUse(t, s, f.colleague.ID, "h-2", true)
		wantCodesLeft(t, s, "colleague after using theirs", f.colleague.ID, 0)
		wantCodesLeft(t, s, "referrer after colleague used the same hash", f.referrer.ID, 2)
		wantUse(t, s, f.referrer.ID, "h-2", true)
		wantUse(t, s, f.referrer.ID, "h-3", true)
		wantCodesLeft(t, s, "after using all", f.referrer.ID, 0)
	}},
	{"set_recovery_codes_replaces_them", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		setCodes(t, s, f.referrer.ID, "h-a", "h-b", "h-c")
		setCodes(t, s, f.colleague.ID, "h-x")
		wantUse(t, s, f.referrer.ID, "h-a", true)
		setCodes(t, s, f.referrer.ID, "h-d", "h-e")
		wantCodesLeft(t, s, "after replacing", f.referrer.ID, 2)
		wantUse(t, s, f.referrer.ID, "h-b", false)
		wantUse(t, s, f.referrer.ID, "h-c", false)
		wantUse(t, s, f.referrer.ID, "h-d", true)
		wantCodesLeft(t, s, "after using a new one", f.referrer.ID, 1)
		// A new set starts unused, even with a hash spent before.
		setCodes(t, s, f.referrer.ID, "h-a", "h-d")
		wantCodesLeft(t, s, "after setting spent hashes again", f.referrer.ID, 2)
		wantUse(t, s, f.referrer.ID, "h-a", true)
		wantUse(t, s, f.referrer.ID, "h-e", false)
		setCodes(t, s, f.referrer.ID)
		wantCodesLeft(t, s, "after setting none", f.referrer.ID, 0)
		wantUse(t, s, f.referrer.ID, "h-d", false)
		wantCodesLeft(t, s, "other user's codes", f.colleague.ID, 1)
	}},
	{"failed_replacement_keeps_the_old_codes", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		setCodes(t, s, f.referrer.ID, "h-a", "h-b")
		err := s.SetRecoveryCodes(t.Context(), f.referrer.ID, []string{"h-c", "h-d", "h-c"})
		wantDuplicate(t, "set recovery codes with a repeated hash", err)
		wantCodesLeft(t, s, "after the refused replacement", f.referrer.ID, 2)
		wantUse(t, s, f.referrer.ID, "h-c", false)
		wantUse(t, s, f.referrer.ID, "h-d", false)
		wantUse(t, s, f.referrer.ID, "h-a", true)
	}},
	{"recovery_codes_of_unknown_user", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		wantNotFound(t, "set recovery codes of unknown user", s.SetRecoveryCodes(t.Context(), "u-ghost", []string{"h-a"}))
		wantCodesLeft(t, s, "unknown user", "u-ghost", 0)
		wantUse(t, s, "u-ghost", "h-a", false)
	}},
	{"concurrent_uses_of_one_recovery_code_succeed_once", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		hashes := make([]string, raceRounds+1)
		for i := range hashes {
			hashes[i] = fmt.Sprintf("h-%02d", i)
		}
		setCodes(t, s, f.referrer.ID, hashes...)
		for round, h := range hashes[:raceRounds] {
			wins := race(t, 10, func() (bool, error) {
				return s.UseRecoveryCode(t.Context(), f.referrer.ID, h, at(time.Minute))
			})
			if wins != 1 {
				t.Fatalf("round %d: %d of 10 concurrent uses of one code succeeded, want 1", round, wins)
			}
		}
		wantCodesLeft(t, s, "after the races", f.referrer.ID, 1)
	}},
	{"pending_totp_secret_round_trips", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := testUser("u-enrolling", "enrolling@demo.test", "RET", at(time.Minute), rooms.RoleClinician)
		want.TOTPPendingSecret = "GEZDGNBVGY3TQOJQ"
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.CreateUser(ctx, want) })
		check := func(what string) {
			t.Helper()
			got, err := s.User(t.Context(), want.ID)
			if err != nil {
				t.Fatalf("%s: get user: %v", what, err)
			}
			checkUser(t, what+": by id", got, want)
			got, err = s.UserByEmail(t.Context(), want.Email)
			if err != nil {
				t.Fatalf("%s: get user by email: %v", what, err)
			}
			checkUser(t, what+": by email", got, want)
			us, err := s.Users(t.Context(), rooms.UserFilter{Organisation: want.Organisation})
			if err != nil {
				t.Fatalf("%s: list users: %v", what, err)
			}
			found := false
			for _, u := range us {
				if u.ID == want.ID {
					found = true
					checkUser(t, what+": in list", u, want)
				}
			}
			if !found {
				t.Errorf("%s: user %s not listed", what, want.ID)
			}
			// Another user's secrets are untouched.
			other, err := s.User(t.Context(), f.specialist.ID)
			if err != nil {
				t.Fatalf("%s: get other user: %v", what, err)
			}
			checkUser(t, what+": other user", other, f.specialist)
		}
		check("created")

		// Confirmed: the pending secret becomes the secret.
		want.TOTPSecret, want.TOTPPendingSecret = want.TOTPPendingSecret, ""
		want.UpdatedAt = at(2 * time.Minute)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateUser(ctx, want) })
		check("confirmed")

		// Re-enrolling: a new secret pending beside the current one.
		want.TOTPPendingSecret = "MFRGGZDFMZTWQ2LK"
		want.UpdatedAt = at(3 * time.Minute)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateUser(ctx, want) })
		check("re-enrolling")
	}},
}
