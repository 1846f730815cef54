package hub_test

// One test for each defect of the front door's issue list, at the HTTP
// level: what a client sees, and what the store and the audit trail keep.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"patientpass/hub"
	"patientpass/hub/httpjson"
	"patientpass/hub/password"
	"patientpass/hub/totp"
	"patientpass/rooms"
)

// send is do without the test's failure: safe from any goroutine. body is
// sent as it is, with contentType when it is not "".
func (c *client) send(method, path, contentType string, body []byte, header http.Header) (response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, c.e.base+path, rd)
	if err != nil {
		return response{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	res := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &res.body)
	return res, nil
}

// sendJSON is send with a JSON body marshalled from v.
func (c *client) sendJSON(method, path string, v any) (response, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return response{}, err
	}
	return c.send(method, path, "application/json", b, nil)
}

// together runs n requests at once, released by one gate so that they race,
// and returns the answers in order of i. Any transport error fails the test.
func together(t *testing.T, n int, req func(i int) (response, error)) []response {
	t.Helper()
	return inWorkers(t, n, n, req)
}

// inWorkers runs n requests on workers goroutines at once, each worker
// sending its share one after another.
func inWorkers(t *testing.T, workers, n int, req func(i int) (response, error)) []response {
	t.Helper()
	out := make([]response, n)
	errs := make([]error, n)
	gate := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-gate
			for i := w; i < n; i += workers {
				out[i], errs[i] = req(i)
			}
		})
	}
	close(gate)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return out
}

// byStatus counts answers by status.
func byStatus(rs []response) map[int]int {
	m := map[int]int{}
	for _, r := range rs {
		m[r.status]++
	}
	return m
}

// wantRetryLater checks a 429 or 503 answer names its code and carries the
// wait as Retry-After and as retry_after, agreeing, within (0, most].
func wantRetryLater(t *testing.T, what string, res response, status int, code string, most int) {
	t.Helper()
	gotCode, _ := res.errorField()
	retry, err := strconv.Atoi(res.header.Get("Retry-After"))
	if res.status != status || gotCode != code || err != nil || retry < 1 || retry > most || res.body["retry_after"] != float64(retry) {
		t.Fatalf("%s = %d Retry-After %q %s; want %d %s with a Retry-After of 1..%d s matching retry_after",
			what, res.status, res.header.Get("Retry-After"), res.raw, status, code, most)
	}
}

// attemptCounter is the store's side of the throttle, for counting what a
// key holds.
type attemptCounter interface {
	LoginFailures(ctx context.Context, key string, since time.Time) (int, time.Time, error)
}

func (e *env) attempts(t *testing.T, key string, window time.Duration) int {
	t.Helper()
	n, _, err := e.store.(attemptCounter).LoginFailures(context.Background(), key, e.clock.Now().Add(-window))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func countAudit(es []rooms.AuditEntry, actorID, detail string) int {
	n := 0
	for _, a := range es {
		if a.ActorID == actorID && a.Detail == detail {
			n++
		}
	}
	return n
}

// wrongTOTP returns a six-digit code that no step the server accepts now
// (the current one and its neighbours) would take.
func wrongTOTP(t *testing.T, e *env, secret string) string {
	t.Helper()
	taken := map[string]bool{}
	for _, d := range []time.Duration{-time.Minute, -30 * time.Second, 0, 30 * time.Second, time.Minute} {
		c, err := totp.Code(secret, e.clock.Now().Add(d))
		if err != nil {
			t.Fatal(err)
		}
		taken[c] = true
	}
	for n := 123456; ; n++ {
		if c := fmt.Sprintf("%06d", n%1000000); !taken[c] {
			return c
		}
	}
}

// Defect 2: forty guesses at one account at once are five guesses, because
// each is reserved against the throttle before its password is hashed.
func TestLoginThrottleHoldsAgainstConcurrentGuesses(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.client()
		answers := together(t, 40, func(int) (response, error) {
			return c.sendJSON("POST", "/api/session", map[string]any{"email": u.Email, "password": "not the password at all"})
		})
		for i, res := range answers {
			switch res.status {
			case 401:
				wantError(t, fmt.Sprintf("guess %d", i), res, 401, "unauthenticated", "")
			case 429:
				wantRetryLater(t, fmt.Sprintf("guess %d", i), res, 429, "rate_limited", 15*60)
			}
		}
		if got := byStatus(answers); got[401] != 5 || got[429] != 35 || len(got) != 2 {
			t.Fatalf("forty concurrent wrong passwords answered %v; want exactly 5 × 401 and 35 × 429", got)
		}
		failed := e.loginAudit("login.failed")
		if n := countAudit(failed, u.ID, "password"); n != 5 {
			t.Errorf("%d wrong passwords audited; want the 5 evaluated", n)
		}
		if n := countAudit(failed, u.ID, "throttled"); n != 35 {
			t.Errorf("%d throttled logins audited; want 35", n)
		}

		wantRetryLater(t, "right password while locked", c.loginWith(u.Email, testPassword, ""), 429, "rate_limited", 15*60)
		e.clock.Advance(16 * time.Minute)
		wantStatus(t, "right password after the window", c.loginWith(u.Email, testPassword, ""), 200)
	})
}

// Defect 2, second factor: codes are reserved against the account's code
// throttle before they are checked. The guesses go five at a time, as many
// as the password throttle lets through together, so that every one
// reaches the second factor and only its throttle stands in the way.
func TestTOTPThrottleHoldsAgainstConcurrentGuesses(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		secret, _ := e.login(u.Email).enrolTOTP()
		e.clock.Advance(30 * time.Second)
		wrong := wrongTOTP(t, e, secret)
		c := e.client()
		answers := inWorkers(t, 5, 40, func(int) (response, error) {
			return c.sendJSON("POST", "/api/session", map[string]any{"email": u.Email, "password": testPassword, "totp": wrong})
		})
		evaluated := 0
		for i, res := range answers {
			switch res.status {
			case 401:
				wantError(t, fmt.Sprintf("code %d", i), res, 401, "unauthenticated", "totp")
				evaluated++
			case 429:
				wantRetryLater(t, fmt.Sprintf("code %d", i), res, 429, "rate_limited", 15*60)
			default:
				t.Fatalf("code %d = %d %s; want 401 or 429", i, res.status, res.raw)
			}
		}
		// Five workers never hold more than the password throttle's five
		// reservations, so every attempt reaches the second factor.
		if evaluated != 5 {
			t.Fatalf("%d of forty wrong codes were checked (%v); want the throttle's 5", evaluated, byStatus(answers))
		}
		if n := countAudit(e.loginAudit("login.failed"), u.ID, "totp"); n != evaluated {
			t.Errorf("%d wrong codes audited; want %d", n, evaluated)
		}
		wantRetryLater(t, "right code while locked", c.loginWith(u.Email, testPassword, e.code(secret)), 429, "rate_limited", 15*60)
		e.clock.Advance(16 * time.Minute)
		wantStatus(t, "right code after the window", c.loginWith(u.Email, testPassword, e.code(secret)), 200)
	})
}

// Defect 1: a burst of registrations waits for a bounded number of hash
// turns, or is told to come back, never an error of ours.
func TestRegistrationBurstIsBoundedByTheHashLimiter(t *testing.T) {
	t.Parallel()
	hashes := password.NewLimiter(1, 2, 200*time.Millisecond)
	e := newEnvWith(t, openEmbedded(t), func(c *envConfig) { c.Hashes = hashes })

	// Sampled while the burst runs: the limiter's own count of turns held.
	var peak int
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			if r := hashes.Stats().Running; r > peak {
				peak = r
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	c := e.client()
	answers := together(t, 40, func(i int) (response, error) {
		return c.sendJSON("POST", "/api/register", registration(fmt.Sprintf("burst%d@nhs.net", i)))
	})
	close(stop)
	<-sampled

	busy := 0
	for i, res := range answers {
		switch res.status {
		case 201, 429:
		case 503:
			wantRetryLater(t, fmt.Sprintf("registration %d", i), res, 503, "unavailable", 60)
			busy++
		default:
			t.Fatalf("registration %d = %d %s; want 201, 429 or 503", i, res.status, res.raw)
		}
	}
	got := byStatus(answers)
	if busy == 0 {
		t.Fatalf("forty registrations against one hash turn and two places in the queue answered %v; want some 503", got)
	}
	st := hashes.Stats()
	if peak > 1 || st.Running != 0 || st.Queued != 0 {
		t.Fatalf("limiter ran %d hashes at once and holds %d running, %d queued after the burst; want at most 1, then none", peak, st.Running, st.Queued)
	}
	if refused := int(st.QueueFull + st.TimedOut); refused != busy {
		t.Errorf("limiter refused %d hashes but %d registrations were answered 503", refused, busy)
	}
	us, err := e.store.Users(context.Background(), rooms.UserFilter{})
	if err != nil || len(us) != got[201] {
		t.Fatalf("%d accounts stored (%v) for %d registrations answered 201", len(us), err, got[201])
	}
	// A registration turned away for want of a hash turn is not the
	// client's doing: it does not count against the address.
	if n := e.attempts(t, "register:127.0.0.1", time.Hour); n != got[201] {
		t.Errorf("the address has %d registrations counted; want the %d that went through", n, got[201])
	}
	if n := countAudit(e.audit(rooms.AuditFilter{Event: "user.register", Outcome: rooms.OutcomeFailed}), "", "busy"); n != busy {
		t.Errorf("%d busy registrations audited; want %d", n, busy)
	}
}

// Defect 1: registrations are throttled per address, one after another.
func TestRegistrationThrottledPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, openEmbedded(t), func(c *envConfig) { c.Hashes = password.NewLimiter(2, 64, 30*time.Second) })
	c := e.client()
	for i := range 30 {
		wantStatus(t, fmt.Sprintf("registration %d", i+1), c.do("POST", "/api/register", registration(fmt.Sprintf("seq%d@nhs.net", i))), 201)
	}
	res := c.do("POST", "/api/register", registration("seq30@nhs.net"))
	wantRetryLater(t, "registration 31", res, 429, "rate_limited", 3600)
	if _, err := e.store.UserByEmail(context.Background(), "seq30@nhs.net"); !errors.Is(err, rooms.ErrNotFound) {
		t.Fatalf("the throttled registration stored an account (err %v)", err)
	}
	denied := e.audit(rooms.AuditFilter{Event: "user.register", Outcome: rooms.OutcomeDenied})
	if countAudit(denied, "", "throttled") != 1 {
		t.Fatalf("throttled registration audited %d times; want once: %+v", countAudit(denied, "", "throttled"), denied)
	}
	e.clock.Advance(61 * time.Minute)
	wantStatus(t, "registration after the window", c.do("POST", "/api/register", registration("later@nhs.net")), 201)
}

// Defect 1: the registration throttle holds when the registrations race.
func TestRegistrationThrottleHoldsUnderConcurrency(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e0 *env) {
		e := newEnvWith(t, e0.store, func(c *envConfig) { c.Hashes = password.NewLimiter(2, 64, 30*time.Second) })
		c := e.client()
		answers := together(t, 40, func(i int) (response, error) {
			return c.sendJSON("POST", "/api/register", registration(fmt.Sprintf("race%d@nhs.net", i)))
		})
		for i, res := range answers {
			if res.status == 429 {
				wantRetryLater(t, fmt.Sprintf("registration %d", i), res, 429, "rate_limited", 3600)
			}
		}
		got := byStatus(answers)
		// The limiter waits long enough that no hash is refused, so every
		// one of the 30 reservations becomes an account.
		if got[201] != 30 || got[429] != 10 {
			t.Fatalf("forty concurrent registrations from one address answered %v; want 30 × 201 and 10 × 429", got)
		}
		if us, _ := e.store.Users(context.Background(), rooms.UserFilter{}); len(us) != got[201] || len(us) > 30 {
			t.Fatalf("%d accounts stored; want the %d answered 201, at most 30", len(us), got[201])
		}
	})
}

// Defect 5: identifiers and JSON strings that are not text are refused as
// invalid input, naming the field, audited, and never reach a store.
func TestNULAndInvalidUTF8AreRefusedNamingTheField(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		for _, id := range []string{"%00x", "%C3%28", "not-an-id", "%00" + r.id[1:]} {
			wantError(t, "GET referral "+id, r.rc.do("GET", "/api/referrals/"+id, nil), 400, "invalid", "referral")
			wantError(t, "GET events of "+id, r.rc.do("GET", "/api/referrals/"+id+"/events", nil), 400, "invalid", "referral")
		}
		refused := e.audit(rooms.AuditFilter{ActorID: r.referrer.ID, Outcome: rooms.OutcomeInvalid})
		views := 0
		for _, a := range refused {
			if a.Event == "referral.view" && a.Detail == "invalid referral" {
				views++
			}
		}
		if views != 4 {
			t.Errorf("%d refused referral views audited; want 4: %+v", views, refused)
		}
		// A query parameter reaches the store too: Postgres refuses NUL.
		for _, p := range []string{"%00", "%FF", "m%00scc"} {
			wantError(t, "list with pathway "+p, r.rc.do("GET", "/api/referrals?pathway="+p, nil), 400, "invalid", "pathway")
		}

		anon := e.client()
		reg := registration("nul@nhs.net")
		reg["name"] = "Ada\u0000Lovelace"
		// Invalid UTF-8 must go as raw bytes: json.Marshal would mend it.
		// Each with its own ref, so none could pass as a repeat of another.
		rawWith := func(ref, old, bad string) string {
			body, err := json.Marshal(referralBody(ref))
			if err != nil {
				t.Fatal(err)
			}
			return string(bytes.Replace(body, []byte(old), []byte(bad), 1))
		}
		for _, tc := range []struct {
			name  string
			c     *client
			path  string
			body  any
			field string
		}{
			{"login with a NUL in the email", anon, "/api/session", map[string]any{"email": "a\u0000@b.nhs.uk", "password": testPassword}, "email"},
			{"login with a NUL in the password", anon, "/api/session", map[string]any{"email": r.referrer.Email, "password": testPassword + "\u0000"}, "password"},
			{"register with a NUL in the name", anon, "/api/register", reg, "name"},
			{"referral with invalid UTF-8 in the patient's name", r.rc, "/api/referrals", rawWith("utf8-name", `"Test Patient"`, "\"Test \xffPatient\""), "patient.name"},
			{"referral with invalid UTF-8 in a form field", r.rc, "/api/referrals", rawWith("utf8-form", `"Prostate"`, "\"Pro\xc3\x28state\""), "form.primary_cancer"},
			{"referral with a NUL in a form field", r.rc, "/api/referrals", rawWith("nul-form", `"Prostate"`, `"Pro\u0000state"`), "form.primary_cancer"},
			{"message with invalid UTF-8", r.rc, "/api/referrals/" + r.id + "/messages", "{\"ref\":\"m\",\"body\":\"hi \xff\"}", "body"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantError(t, tc.name, tc.c.do("POST", tc.path, tc.body), 400, "invalid", tc.field)
			})
		}
		// Refused logins are audited by the field at fault, never its text.
		logins := 0
		for _, a := range e.audit(rooms.AuditFilter{Event: "login.failed", Outcome: rooms.OutcomeInvalid}) {
			if a.Detail == "invalid email" || a.Detail == "invalid password" {
				logins++
			}
		}
		if logins != 2 {
			t.Errorf("%d refused logins audited; want the 2 above", logins)
		}
		if ss, _ := e.store.UserSessions(context.Background(), r.referrer.ID); len(ss) != 1 {
			t.Errorf("%d sessions after refused logins; want the one the room made", len(ss))
		}
		if _, err := e.store.UserByEmail(context.Background(), "nul@nhs.net"); !errors.Is(err, rooms.ErrNotFound) {
			t.Errorf("an account was stored for a name with a NUL (err %v)", err)
		}
		list, err := e.store.Referrals(context.Background(), rooms.ReferralFilter{VisibleToOrganisation: "RET"})
		if err != nil || len(list) != 1 {
			t.Fatalf("%d referrals stored (%v); want only the room's", len(list), err)
		}
		if got := r.rc.do("GET", "/api/referrals/"+r.id, nil); got.body["head_seq"] != 2.0 {
			t.Fatalf("refused requests changed the referral: %s", got.raw)
		}
	})
}

// Defect 10: refusals before any handler runs are audited against the
// user they concern.
func TestRefusalsBeforeTheHandlerAreAudited(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		admin := e.user("RJR", rooms.UserActive, rooms.RoleAdmin)
		ac := e.login(admin.Email)
		wantError(t, "admin without TOTP lists users", ac.do("GET", "/api/admin/users", nil), 403, "forbidden", "")
		found := false
		for _, a := range e.audit(rooms.AuditFilter{ActorID: admin.ID, Event: "access", Outcome: rooms.OutcomeDenied}) {
			found = found || strings.HasPrefix(a.Detail, "totp_required")
		}
		if !found {
			t.Error("the refusal of an admin without TOTP is not audited as access denied, totp_required")
		}

		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		b, _ := json.Marshal(referralBody("csrf"))
		res, err := c.send("POST", "/api/referrals", "application/json", b, http.Header{
			"Origin": {"https://evil.example"}, "Sec-Fetch-Site": {"cross-site"},
		})
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, "cross-origin create with the user's cookie", res, 403, "forbidden", "")
		found = false
		for _, a := range e.audit(rooms.AuditFilter{Event: "http.request", Outcome: rooms.OutcomeDenied}) {
			if strings.Contains(a.Detail, "cross_origin") {
				if a.ActorID != u.ID {
					t.Errorf("cross-origin refusal audited against %q; want the cookie's user %s", a.ActorID, u.ID)
				}
				found = true
			}
		}
		if !found {
			t.Error("the cross-origin refusal is not audited as http.request denied, cross_origin")
		}
		if list, _ := e.store.Referrals(context.Background(), rooms.ReferralFilter{VisibleToOrganisation: "RET"}); len(list) != 0 {
			t.Fatalf("the cross-origin request created %d referrals", len(list))
		}
	})
}

// Defect 11: text that would mislead a reader is refused at the HTTP level,
// and only JSON is taken as JSON.
func TestTextRulesAndContentTypeAtTheHTTPLevel(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		anon := e.client()
		reg := registration("blank@nhs.net")
		reg["name"] = "\u200b\u200b"
		wantError(t, "register with a name of zero-width spaces", anon.do("POST", "/api/register", reg), 400, "invalid", "name")
		reg = registration("a@b")
		wantError(t, "register with email a@b", anon.do("POST", "/api/register", reg), 400, "invalid", "email")
		wantError(t, "login with email a@b", anon.do("POST", "/api/session", map[string]any{"email": "a@b", "password": testPassword}), 400, "invalid", "email")
		if us, _ := e.store.Users(context.Background(), rooms.UserFilter{}); len(us) != 0 {
			t.Fatalf("%d accounts stored by refused registrations", len(us))
		}

		r := e.room()
		wantError(t, "message with a bidi override", r.rc.do("POST", "/api/referrals/"+r.id+"/messages", map[string]any{"ref": "m1", "body": "dose 5\u202e01 mg"}), 400, "invalid", "body")
		wantError(t, "plan text with a C1 control", r.sc.do("PUT", "/api/referrals/"+r.id+"/plan/imaging", map[string]any{"ref": "p1", "base_revision": 0, "text": "MRI\u0085whole spine"}), 400, "invalid", "text")
		if got := r.rc.do("GET", "/api/referrals/"+r.id, nil); got.body["head_seq"] != 2.0 {
			t.Fatalf("refused text changed the referral: %s", got.raw)
		}

		login, _ := json.Marshal(map[string]any{"email": r.referrer.Email, "password": testPassword})
		for _, ct := range []string{"application/jsonp", "application/json-seq", "text/plain", "application/json; charset=latin1", "application/json; boundary=x"} {
			res, err := anon.send("POST", "/api/session", ct, login, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantError(t, "login sent as "+ct, res, 400, "invalid", "")
		}
		if n := len(e.audit(rooms.AuditFilter{ActorID: r.referrer.ID, Event: "login.success"})); n != 1 {
			t.Fatalf("%d logins went through; want only the room's", n)
		}
		for _, ct := range []string{"application/json; charset=utf-8", "application/json; charset=UTF-8"} {
			res, err := anon.send("POST", "/api/session", ct, login, nil)
			if err != nil {
				t.Fatal(err)
			}
			wantStatus(t, "login sent as "+ct, res, 200)
		}
	})
}

// Defect 7: the public listener bounds how long a request may take to
// arrive, so a client trickling bytes cannot hold a connection.
func TestPublicListenerTimeouts(t *testing.T) {
	t.Parallel()
	e := newEnv(t, openEmbedded(t))
	hs := e.hub.HTTPServer()
	if hs.ReadHeaderTimeout != hub.HeaderTimeout || hub.HeaderTimeout != 10*time.Second ||
		hs.ReadTimeout != hub.RequestTimeout || hub.RequestTimeout != 20*time.Second ||
		hs.IdleTimeout != 2*time.Minute || hs.WriteTimeout <= 0 ||
		hs.MaxHeaderBytes <= 0 || hs.MaxHeaderBytes > 1<<20 || hs.Handler == nil {
		t.Fatalf("public listener: header %v, request %v, write %v, idle %v, max header bytes %d, handler %v",
			hs.ReadHeaderTimeout, hs.ReadTimeout, hs.WriteTimeout, hs.IdleTimeout, hs.MaxHeaderBytes, hs.Handler != nil)
	}

	t.Run("a trickled body is cut off", func(t *testing.T) {
		t.Parallel()
		hs := e.hub.HTTPServer()
		hs.ReadTimeout = time.Second // 20 s is too long to wait for here
		srv := httptest.NewUnstartedServer(hs.Handler)
		srv.Config = hs
		srv.Start()
		t.Cleanup(srv.Close)
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const length = 1000
		if _, err := fmt.Fprintf(conn, "POST /api/session HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", srv.Listener.Addr(), length); err != nil {
			t.Fatal(err)
		}
		var (
			mu   sync.Mutex
			sent int
		)
		stop := make(chan struct{})
		trickled := make(chan struct{})
		go func() {
			defer close(trickled)
			tick := time.NewTicker(200 * time.Millisecond)
			defer tick.Stop()
			for range length {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				if _, err := conn.Write([]byte(" ")); err != nil {
					return
				}
				mu.Lock()
				sent++
				mu.Unlock()
			}
		}()
		// A failure bound only: the server's 1 s cuts in long before.
		conn.SetReadDeadline(time.Now().Add(8 * time.Second))
		_, err = io.Copy(io.Discard, conn)
		close(stop)
		<-trickled
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the server still held the connection after %d of %d trickled bytes; want it closed", sent, length)
		}
	})

	t.Run("an oversized body is refused before it is read", func(t *testing.T) {
		t.Parallel()
		addr := strings.TrimPrefix(e.base, "http://")
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		const declared = 64 << 20
		if _, err := fmt.Fprintf(conn, "POST /api/register HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", addr, declared); err != nil {
			t.Fatal(err)
		}
		// A little more than the limit, of the 64 MiB announced.
		part := append([]byte(`{"name":"`), bytes.Repeat([]byte("a"), httpjson.MaxBody+4096)...)
		if _, err := conn.Write(part); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(8 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer after %d of %d bytes: %v", len(part), declared, err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 400 || !strings.Contains(string(raw), `"code":"invalid"`) || !strings.Contains(string(raw), "too large") || !resp.Close {
			t.Fatalf("oversized body = %d close %v %s; want 400 invalid, too large, and the connection closed", resp.StatusCode, resp.Close, raw)
		}
	})
}

// Defect 4: an outcome takes only its status's fields, and each status
// keeps its own outcome.
func TestOutcomesAreCheckedAndKeptPerStatus(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		r := e.room()
		beds := e.login(e.user("RET", rooms.UserActive, rooms.RoleBedManager).Email)
		move := func(c *client, ref, to string, outcome map[string]any) response {
			return c.do("POST", "/api/referrals/"+r.id+"/transitions", map[string]any{"ref": ref, "to": to, "outcome": outcome})
		}
		wantStatus(t, "in_triage", move(r.sc, "t1", "in_triage", nil), 200)
		wantError(t, "accepted with an extra key", move(r.sc, "t2", "accepted", map[string]any{"bed_type": "spinal", "extra": "x"}), 400, "invalid", "outcome.extra")
		wantStatus(t, "accepted", move(r.sc, "t3", "accepted", map[string]any{"bed_type": "spinal"}), 200)
		wantStatus(t, "transfer_booked", move(beds, "t4", "transfer_booked",
			map[string]any{"bed_type": "neurosurgical", "ward": "Ward 4", "expected_at": "2026-11-24T10:00:00Z"}), 200)

		got := r.rc.do("GET", "/api/referrals/"+r.id, nil)
		wantStatus(t, "GET referral", got, 200)
		outcomes, _ := got.body["outcomes"].(map[string]any)
		accepted, _ := outcomes["accepted"].(map[string]any)
		booked, _ := outcomes["transfer_booked"].(map[string]any)
		if got.body["status"] != "transfer_booked" || len(accepted) != 1 || accepted["bed_type"] != "spinal" ||
			len(booked) != 3 || booked["bed_type"] != "neurosurgical" || booked["ward"] != "Ward 4" || booked["expected_at"] != "2026-11-24T10:00:00Z" {
			t.Fatalf("referral outcomes %v (status %v); want accepted {bed_type: spinal} and transfer_booked's three fields", got.body["outcomes"], got.body["status"])
		}
	})
}
