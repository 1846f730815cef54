package hub_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"patientpass/hub"
	"patientpass/hub/password"
	"patientpass/hub/totp"
	"patientpass/rooms"
)

// sessionCookie is the cookie's name when the public URL is http.
const sessionCookie = "pp_session"

// loginWith posts a login with a second-factor code ("" for none).
func (c *client) loginWith(email, pw, code string) response {
	c.e.t.Helper()
	body := map[string]any{"email": email, "password": pw}
	if code != "" {
		body["totp"] = code
	}
	return c.do("POST", "/api/session", body)
}

// enrolTOTP sets up two-factor authentication through the API and returns
// the secret and the recovery codes. The step of the code used to confirm is
// spent, so the caller advances the clock before logging in with a code.
func (c *client) enrolTOTP() (secret string, recovery []string) {
	c.e.t.Helper()
	res := c.do("POST", "/api/me/totp", nil)
	if res.status != 200 {
		c.e.t.Fatalf("POST /api/me/totp = %d %s", res.status, res.raw)
	}
	secret, _ = res.body["secret"].(string)
	uri, _ := res.body["otpauth_uri"].(string)
	if secret == "" || !strings.HasPrefix(uri, "otpauth://totp/Patient%20Pass:") || !strings.Contains(uri, "secret="+secret) || !strings.Contains(uri, "issuer=Patient%20Pass") {
		c.e.t.Fatalf("enrolment answer %s", res.raw)
	}
	code, err := totp.Code(secret, c.e.clock.Now())
	if err != nil {
		c.e.t.Fatal(err)
	}
	res = c.do("POST", "/api/me/totp/confirm", map[string]any{"code": code})
	if res.status != 200 {
		c.e.t.Fatalf("POST /api/me/totp/confirm = %d %s", res.status, res.raw)
	}
	codes, _ := res.body["recovery_codes"].([]any)
	for _, rc := range codes {
		recovery = append(recovery, rc.(string))
	}
	if len(recovery) != 10 {
		c.e.t.Fatalf("got %d recovery codes, want 10: %s", len(recovery), res.raw)
	}
	return secret, recovery
}

// enrolledAdmin returns an active admin of org, logged in and enrolled in
// TOTP, with the TOTP secret.
func (e *env) enrolledAdmin(org string) (rooms.User, *client, string) {
	e.t.Helper()
	u := e.user(org, rooms.UserActive, rooms.RoleAdmin)
	c := e.login(u.Email)
	secret, _ := c.enrolTOTP()
	return u, c, secret
}

// code returns the TOTP code for secret at the clock's time.
func (e *env) code(secret string) string {
	e.t.Helper()
	c, err := totp.Code(secret, e.clock.Now())
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// cookieValue returns the value of the client's session cookie ("" when
// none).
func (c *client) cookieValue() string {
	u, _ := url.Parse(c.e.base)
	for _, ck := range c.http.Jar.Cookies(u) {
		if ck.Name == sessionCookie {
			return ck.Value
		}
	}
	return ""
}

// withCookie returns a fresh client carrying only the given session cookie.
func (e *env) withCookie(value string) *client {
	c := e.client()
	u, _ := url.Parse(e.base)
	c.http.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: value}})
	return c
}

func wantStatus(t *testing.T, what string, res response, status int) {
	t.Helper()
	if res.status != status {
		t.Fatalf("%s = %d %s; want %d", what, res.status, res.raw, status)
	}
}

func wantError(t *testing.T, what string, res response, status int, code, field string) {
	t.Helper()
	gotCode, gotField := res.errorField()
	if res.status != status || gotCode != code || gotField != field {
		t.Fatalf("%s = %d %s; want %d %s field %q", what, res.status, res.raw, status, code, field)
	}
}

// loginAudit returns the details of login entries with event and outcome.
func (e *env) loginAudit(event string) []rooms.AuditEntry {
	return e.audit(rooms.AuditFilter{Event: event})
}

func hasDetail(es []rooms.AuditEntry, actorID, detail string) bool {
	for _, a := range es {
		if a.ActorID == actorID && a.Detail == detail {
			return true
		}
	}
	return false
}

func registration(email string) map[string]any {
	return map[string]any{
		"name": "Dr Ada Lovelace", "email": email, "password": "ward round before lunch",
		"professional_body": "GMC", "registration_number": "7654321",
		"organisation": "RJR", "role": "clinician",
	}
}

func TestRegisterApproveThenLogin(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		anon := e.client()
		res := anon.do("POST", "/api/register", registration("Ada.Lovelace@NHS.net"))
		wantStatus(t, "register", res, 201)
		id, _ := res.body["id"].(string)
		if id == "" || res.body["status"] != "pending" {
			t.Fatalf("register answered %s", res.raw)
		}

		res = anon.loginWith("ada.lovelace@nhs.net", "ward round before lunch", "")
		wantError(t, "login while pending", res, 403, "forbidden", "")
		if msg := res.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "awaiting approval") {
			t.Fatalf("pending login message %q does not say it awaits approval", msg)
		}
		if !hasDetail(e.loginAudit("login.failed"), id, "pending") {
			t.Fatal("no audit entry for the refused pending login")
		}

		// An admin of another organisation cannot see or approve the account.
		_, other, _ := e.enrolledAdmin("RET")
		wantError(t, "approve by other organisation's admin", other.do("POST", "/api/admin/users/"+id+"/approve", nil), 404, "not_found", "")

		_, admin, _ := e.enrolledAdmin("RJR")
		res = admin.do("GET", "/api/admin/users?status=pending", nil)
		wantStatus(t, "list pending", res, 200)
		users, _ := res.body["users"].([]any)
		if len(users) != 1 || users[0].(map[string]any)["id"] != id {
			t.Fatalf("pending users %s; want only %s", res.raw, id)
		}
		res = admin.do("POST", "/api/admin/users/"+id+"/approve", nil)
		wantStatus(t, "approve", res, 200)
		if res.body["user"].(map[string]any)["status"] != "active" {
			t.Fatalf("approve answered %s", res.raw)
		}

		res = anon.loginWith("ada.lovelace@nhs.net", "ward round before lunch", "")
		wantStatus(t, "login after approval", res, 200)
		u, _ := res.body["user"].(map[string]any)
		if u["id"] != id || u["email"] != "ada.lovelace@nhs.net" || u["registration_number"] != "7654321" {
			t.Fatalf("login answered %s", res.raw)
		}
		if strings.Contains(res.raw, "argon2") || strings.Contains(strings.ToLower(res.raw), "hash") || strings.Contains(res.raw, "secret") {
			t.Fatalf("login answer leaks a hash or secret: %s", res.raw)
		}
		wantStatus(t, "GET /api/me after login", anon.do("GET", "/api/me", nil), 200)
		if !hasDetail(e.loginAudit("login.success"), id, "password") {
			t.Fatal("no audit entry for the successful login")
		}
	})
}

func TestRegisterRefusesBadFieldsAndStoresNothing(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		c := e.client()
		for i, tc := range []struct {
			name  string
			set   map[string]any
			field string
		}{
			{"malformed email", map[string]any{"email": "not-an-email"}, "email"},
			{"password too short", map[string]any{"password": "short pass"}, "password"},
			{"common password", map[string]any{"password": "Qwertyuiop123"}, "password"},
			{"GMC number of 6 digits", map[string]any{"registration_number": "765432"}, "registration_number"},
			{"malformed NMC PIN", map[string]any{"professional_body": "NMC", "registration_number": "12345678"}, "registration_number"},
			{"unknown professional body", map[string]any{"professional_body": "BMA"}, "professional_body"},
			{"unknown organisation", map[string]any{"organisation": "ZZZ99"}, "organisation"},
			{"malformed organisation", map[string]any{"organisation": "R!"}, "organisation"},
			{"admin role", map[string]any{"role": "admin"}, "role"},
			{"no role", map[string]any{"role": ""}, "role"},
			{"missing name", map[string]any{"name": " "}, "name"},
			{"unknown field", map[string]any{"is_admin": true}, "is_admin"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				email := fmt.Sprintf("bad%d@nhs.net", i)
				body := registration(email)
				for k, v := range tc.set {
					body[k] = v
				}
				wantError(t, "register", c.do("POST", "/api/register", body), 400, "invalid", tc.field)
				if _, err := e.store.UserByEmail(context.Background(), email); !errors.Is(err, rooms.ErrNotFound) {
					t.Fatalf("an account was stored for a refused registration (err %v)", err)
				}
			})
		}
		us, err := e.store.Users(context.Background(), rooms.UserFilter{})
		if err != nil || len(us) != 0 {
			t.Fatalf("users after refused registrations: %d, %v", len(us), err)
		}
		// The good form works. The same email again is answered exactly as
		// a new one, so registration tells nobody which emails have
		// accounts; nothing is created, and the attempt is audited.
		first := c.do("POST", "/api/register", registration("ok@nhs.net"))
		wantStatus(t, "register", first, 201)
		again := c.do("POST", "/api/register", registration("OK@nhs.net"))
		wantStatus(t, "register again", again, 201)
		if again.body["id"] == first.body["id"] || again.body["status"] != "pending" || len(again.body) != len(first.body) {
			t.Fatalf("register again = %s; want a pending answer shaped like the first (%s) with another id", again.raw, first.raw)
		}
		if us, _ := e.store.Users(context.Background(), rooms.UserFilter{}); len(us) != 1 {
			t.Fatalf("%d accounts after registering one email twice; want 1", len(us))
		}
		dups := 0
		for _, a := range e.audit(rooms.AuditFilter{Event: "user.register"}) {
			if a.Detail == "duplicate_email" {
				dups++
			}
		}
		if dups != 1 {
			t.Errorf("%d duplicate_email registration entries; want the duplicate audited once", dups)
		}
		ok := registration("nurse@nhs.net")
		ok["professional_body"], ok["registration_number"] = "NMC", "12A3456B"
		wantStatus(t, "register nurse", c.do("POST", "/api/register", ok), 201)
	})
}

func TestLogoutEndsTheSessionOnTheServer(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		old := c.cookieValue()
		if old == "" {
			t.Fatal("no session cookie after login")
		}
		wantStatus(t, "GET /api/me with a copy of the cookie", e.withCookie(old).do("GET", "/api/me", nil), 200)
		res := c.do("DELETE", "/api/session", nil)
		wantStatus(t, "logout", res, 204)
		if c.cookieValue() != "" {
			t.Fatal("logout did not clear the cookie")
		}
		wantError(t, "GET /api/me after logout", c.do("GET", "/api/me", nil), 401, "unauthenticated", "")
		wantError(t, "replayed cookie after logout", e.withCookie(old).do("GET", "/api/me", nil), 401, "unauthenticated", "")
		if len(e.audit(rooms.AuditFilter{Event: "logout", ActorID: u.ID})) != 1 {
			t.Fatal("logout not audited")
		}
	})
}

func TestEachLoginStartsANewSession(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		first := c.cookieValue()
		wantStatus(t, "second login", c.loginWith(u.Email, testPassword, ""), 200)
		second := c.cookieValue()
		if second == "" || second == first {
			t.Fatal("a second login kept the session token")
		}
		// The session the browser had before logging in again is ended.
		wantError(t, "cookie from before the second login", e.withCookie(first).do("GET", "/api/me", nil), 401, "unauthenticated", "")
		wantStatus(t, "cookie from the second login", c.do("GET", "/api/me", nil), 200)
	})
}

func TestRequestsWithoutAWorkingSessionAreRefused(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		wantError(t, "no cookie", e.client().do("GET", "/api/me", nil), 401, "unauthenticated", "")
		wantError(t, "garbage cookie", e.withCookie("garbage").do("GET", "/api/me", nil), 401, "unauthenticated", "")
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		v := e.login(u.Email).cookieValue()
		tampered := v[:len(v)-2] + map[bool]string{true: "AA", false: "BB"}[!strings.HasSuffix(v, "AA")]
		wantError(t, "tampered cookie", e.withCookie(tampered).do("GET", "/api/me", nil), 401, "unauthenticated", "")
		wantError(t, "logout without a session", e.client().do("DELETE", "/api/session", nil), 401, "unauthenticated", "")
	})
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		// Activity keeps the session alive past 30 minutes from login.
		for range 3 {
			e.clock.Advance(29 * time.Minute)
			wantStatus(t, "GET /api/me after 29 idle minutes", c.do("GET", "/api/me", nil), 200)
		}
		e.clock.Advance(31 * time.Minute)
		wantError(t, "GET /api/me after 31 idle minutes", c.do("GET", "/api/me", nil), 401, "unauthenticated", "")
		// The expired session is gone: going back in time does not revive it.
		e.clock.Advance(-31 * time.Minute)
		wantError(t, "expired session later", c.do("GET", "/api/me", nil), 401, "unauthenticated", "")
	})
}

func TestAbsoluteTimeout(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		elapsed := time.Duration(0)
		for elapsed+20*time.Minute < 12*time.Hour {
			e.clock.Advance(20 * time.Minute)
			elapsed += 20 * time.Minute
			wantStatus(t, fmt.Sprintf("GET /api/me %v after login", elapsed), c.do("GET", "/api/me", nil), 200)
		}
		e.clock.Advance(20 * time.Minute)
		wantError(t, "GET /api/me 12h after login", c.do("GET", "/api/me", nil), 401, "unauthenticated", "")
		wantStatus(t, "login again", c.loginWith(u.Email, testPassword, ""), 200)
	})
}

func TestSuspensionEndsSessionsAtOnce(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		_, admin, _ := e.enrolledAdmin("RJR")
		res := admin.do("POST", "/api/admin/users/"+u.ID+"/suspend", nil)
		wantStatus(t, "suspend", res, 200)
		if res.body["user"].(map[string]any)["status"] != "suspended" {
			t.Fatalf("suspend answered %s", res.raw)
		}
		wantError(t, "suspended user's session", c.do("GET", "/api/me", nil), 401, "unauthenticated", "")
		res = c.loginWith(u.Email, testPassword, "")
		wantError(t, "suspended user's login", res, 403, "forbidden", "")
		if msg := res.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "suspended") {
			t.Fatalf("message %q does not say the account is suspended", msg)
		}
		if !hasDetail(e.loginAudit("login.failed"), u.ID, "suspended") {
			t.Fatal("refused suspended login not audited")
		}
		wantError(t, "suspend again", admin.do("POST", "/api/admin/users/"+u.ID+"/suspend", nil), 409, "conflict", "")
		wantStatus(t, "reinstate", admin.do("POST", "/api/admin/users/"+u.ID+"/reinstate", nil), 200)
		wantStatus(t, "login after reinstatement", c.loginWith(u.Email, testPassword, ""), 200)
	})
}

// A user suspended without going through SuspendUser (by another node, or in
// the database) is refused by the per-request status check.
func TestSessionOfSuspendedUserIsRefusedEvenIfNotDeleted(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		u.Status = rooms.UserSuspended
		err := e.store.InTx(context.Background(), func(tx rooms.Tx) error { return tx.UpdateUser(context.Background(), u) })
		if err != nil {
			t.Fatal(err)
		}
		wantError(t, "session of a suspended user", c.do("GET", "/api/me", nil), 401, "unauthenticated", "")
		ss, err := e.store.UserSessions(context.Background(), u.ID)
		if err != nil || len(ss) != 0 {
			t.Fatalf("sessions of suspended user: %d, %v; want them deleted", len(ss), err)
		}
	})
}

func TestLoginThrottlePerAccount(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.client()
		var res response
		statuses := []int{}
		for range 10 {
			res = c.loginWith(u.Email, "not the password at all", "")
			statuses = append(statuses, res.status)
		}
		if fmt.Sprint(statuses) != "[401 401 401 401 401 429 429 429 429 429]" {
			t.Fatalf("statuses of ten wrong passwords: %v", statuses)
		}
		code, _ := res.errorField()
		retry, err := strconv.Atoi(res.header.Get("Retry-After"))
		if code != "rate_limited" || err != nil || retry < 1 || retry > 15*60 || res.body["retry_after"] != float64(retry) {
			t.Fatalf("throttled answer: Retry-After %q, %s", res.header.Get("Retry-After"), res.raw)
		}
		wantError(t, "right password while locked", c.loginWith(u.Email, testPassword, ""), 429, "rate_limited", "")
		// Another account from the same address is not locked.
		other := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		wantStatus(t, "other account", c.loginWith(other.Email, testPassword, ""), 200)

		e.clock.Advance(time.Duration(retry) * time.Second)
		wantStatus(t, "right password after the window", c.loginWith(u.Email, testPassword, ""), 200)

		failed := e.loginAudit("login.failed")
		if !hasDetail(failed, u.ID, "password") || !hasDetail(failed, u.ID, "throttled") {
			t.Fatal("failed and throttled logins not audited")
		}
		for _, a := range e.audit(rooms.AuditFilter{}) {
			if strings.Contains(a.Detail, "not the password") || strings.Contains(a.Detail, testPassword) {
				t.Fatalf("audit entry %d holds a password: %q", a.ID, a.Detail)
			}
		}
	})
}

func TestLoginThrottlePerClientAddress(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		c := e.client()
		// Ten accounts, five failures each: no account reaches its own limit
		// of five before its fifth, but the address reaches fifty.
		for i := range 50 {
			res := c.loginWith(fmt.Sprintf("nobody%d@nhs.net", i/5), "not the password at all", "")
			wantError(t, fmt.Sprintf("failure %d", i+1), res, 401, "unauthenticated", "")
		}
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		wantError(t, "login from a throttled address", c.loginWith(u.Email, testPassword, ""), 429, "rate_limited", "")
		if !hasDetail(e.loginAudit("login.failed"), "", "unknown_account") {
			t.Fatal("unknown-account failures not audited with an empty actor")
		}
	})
}

func TestTOTPLogin(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		res := c.do("GET", "/api/me", nil)
		if res.body["totp_enrolled"] != false || res.body["totp_required"] != false {
			t.Fatalf("GET /api/me before enrolment: %s", res.raw)
		}
		secret, recovery := c.enrolTOTP()
		if res := c.do("GET", "/api/me", nil); res.body["totp_enrolled"] != true {
			t.Fatalf("GET /api/me after enrolment: %s", res.raw)
		}
		wantError(t, "enrol again", c.do("POST", "/api/me/totp", nil), 409, "conflict", "")

		// The code that confirmed enrolment is spent.
		wantError(t, "login with the confirmation code", e.client().loginWith(u.Email, testPassword, e.code(secret)), 401, "unauthenticated", "totp")
		e.clock.Advance(30 * time.Second)

		res = e.client().loginWith(u.Email, testPassword, "")
		wantError(t, "login without a code", res, 401, "unauthenticated", "totp")
		if msg := res.body["error"].(map[string]any)["message"]; msg != "enter the code from your authenticator app" {
			t.Fatalf("message %q", msg)
		}
		wantError(t, "login with a wrong code", e.client().loginWith(u.Email, testPassword, "000000"), 401, "unauthenticated", "totp")
		code := e.code(secret)
		wantStatus(t, "login with the code", e.client().loginWith(u.Email, testPassword, code), 200)
		wantError(t, "login with the same code again", e.client().loginWith(u.Email, testPassword, code), 401, "unauthenticated", "totp")
		wantError(t, "code without the password", e.client().loginWith(u.Email, "not the password at all", e.code(secret)), 401, "unauthenticated", "")

		// Failures above count towards the throttle; a success clears them.
		e.clock.Advance(30 * time.Second)
		wantStatus(t, "login with the next code", e.client().loginWith(u.Email, testPassword, e.code(secret)), 200)

		wantStatus(t, "login with a recovery code", e.client().loginWith(u.Email, testPassword, strings.ToUpper(recovery[3])), 200)
		wantError(t, "login with the same recovery code", e.client().loginWith(u.Email, testPassword, recovery[3]), 401, "unauthenticated", "totp")
		wantStatus(t, "login with another recovery code", e.client().loginWith(u.Email, testPassword, recovery[4]), 200)
		if !hasDetail(e.loginAudit("login.success"), u.ID, "recovery_code") || !hasDetail(e.loginAudit("login.failed"), u.ID, "totp") {
			t.Fatal("second-factor logins not audited")
		}
	})
}

func TestTOTPConfirmRefusesAWrongCode(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		wantError(t, "confirm before enrolling", c.do("POST", "/api/me/totp/confirm", map[string]any{"code": "123456"}), 409, "conflict", "")
		res := c.do("POST", "/api/me/totp", nil)
		wantStatus(t, "enrol", res, 200)
		secret := res.body["secret"].(string)
		wrong, _ := totp.Code(secret, e.clock.Now().Add(5*time.Minute))
		wantError(t, "confirm with a wrong code", c.do("POST", "/api/me/totp/confirm", map[string]any{"code": wrong}), 400, "invalid", "code")
		// Not enrolled: logging in needs no code.
		wantStatus(t, "login", e.client().loginWith(u.Email, testPassword, ""), 200)
	})
}

func TestAdminMustEnrolInTOTP(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleAdmin)
		c := e.login(u.Email)
		res := c.do("GET", "/api/me", nil)
		wantStatus(t, "GET /api/me", res, 200)
		if res.body["totp_enrolled"] != false || res.body["totp_required"] != true {
			t.Fatalf("GET /api/me: %s", res.raw)
		}
		res = c.do("GET", "/api/admin/users", nil)
		wantError(t, "admin users before enrolment", res, 403, "forbidden", "")
		if msg := res.body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, "two-factor") {
			t.Fatalf("message %q", msg)
		}
		wantError(t, "referrals before enrolment", c.do("GET", "/api/referrals", nil), 403, "forbidden", "")
		wantStatus(t, "own sessions before enrolment", c.do("GET", "/api/me/sessions", nil), 200)

		secret, _ := c.enrolTOTP()
		wantStatus(t, "admin users after enrolment", c.do("GET", "/api/admin/users", nil), 200)

		e.clock.Advance(30 * time.Second)
		wantError(t, "admin login without a code", e.client().loginWith(u.Email, testPassword, ""), 401, "unauthenticated", "totp")
		wantStatus(t, "admin login with a code", e.client().loginWith(u.Email, testPassword, e.code(secret)), 200)
		wantStatus(t, "logout", c.do("DELETE", "/api/session", nil), 204)
	})
}

func TestAdminOnlyRoutesRefuseOthers(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		c := e.login(u.Email)
		wantError(t, "clinician lists users", c.do("GET", "/api/admin/users", nil), 403, "forbidden", "")
		_, admin, _ := e.enrolledAdmin("RJR")
		wantError(t, "bad status filter", admin.do("GET", "/api/admin/users?status=deleted", nil), 400, "invalid", "status")
		wantError(t, "approve unknown user", admin.do("POST", "/api/admin/users/"+rooms.NewID()+"/approve", nil), 404, "not_found", "")
	})
}

func TestUsersListAndEndTheirOwnSessions(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		a, b := e.login(u.Email), e.login(u.Email)
		other := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		oc := e.login(other.Email)

		res := a.do("GET", "/api/me/sessions", nil)
		wantStatus(t, "list sessions", res, 200)
		ss, _ := res.body["sessions"].([]any)
		if len(ss) != 2 {
			t.Fatalf("sessions %s; want 2", res.raw)
		}
		var current, elsewhere string
		for _, s := range ss {
			m := s.(map[string]any)
			if m["user_id"] != u.ID || m["client_addr"] != "127.0.0.1" {
				t.Fatalf("session %v", m)
			}
			if m["current"] == true {
				current = m["id"].(string)
			} else {
				elsewhere = m["id"].(string)
			}
		}
		if current == "" || elsewhere == "" || strings.Contains(res.raw, "token") {
			t.Fatalf("sessions %s; want one current and one not, no token", res.raw)
		}

		otherSessions := oc.do("GET", "/api/me/sessions", nil).body["sessions"].([]any)
		otherID := otherSessions[0].(map[string]any)["id"].(string)
		wantError(t, "end another user's session", a.do("DELETE", "/api/me/sessions/"+otherID, nil), 404, "not_found", "")
		wantStatus(t, "other user still logged in", oc.do("GET", "/api/me", nil), 200)

		wantStatus(t, "end own other session", a.do("DELETE", "/api/me/sessions/"+elsewhere, nil), 204)
		wantError(t, "ended session", b.do("GET", "/api/me", nil), 401, "unauthenticated", "")
		wantStatus(t, "current session still works", a.do("GET", "/api/me", nil), 200)
		wantStatus(t, "end current session", a.do("DELETE", "/api/me/sessions/"+current, nil), 204)
		wantError(t, "after ending the current session", a.do("GET", "/api/me", nil), 401, "unauthenticated", "")
	})
}

func TestLoginRehashesOldHashes(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		old, err := password.HashWith(password.Params{MemoryKiB: 8 * 1024, Time: 1, Threads: 1}, testPassword)
		if err != nil {
			t.Fatal(err)
		}
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		err = e.svc.UpdateCredentials(context.Background(), rooms.System, u.ID, "user.test_old_hash", func(c *rooms.Credentials) { c.PasswordHash = old })
		if err != nil {
			t.Fatal(err)
		}
		e.login(u.Email)
		got, err := e.store.User(context.Background(), u.ID)
		if err != nil {
			t.Fatal(err)
		}
		ok, rehash, err := password.Verify(testPassword, got.PasswordHash)
		if got.PasswordHash == old || !ok || rehash || err != nil {
			t.Fatalf("hash after login %q: ok %v rehash %v err %v", got.PasswordHash, ok, rehash, err)
		}
		e.login(u.Email)
	})
}

func TestCookieFlagsOverHTTP(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		res := e.client().loginWith(u.Email, testPassword, "")
		wantStatus(t, "login", res, 200)
		ck := setCookie(t, res.header, sessionCookie)
		if !ck.HttpOnly || ck.SameSite != http.SameSiteLaxMode || ck.Path != "/" || ck.Secure || ck.Domain != "" {
			t.Fatalf("cookie %s: want HttpOnly, SameSite=Lax, Path=/, not Secure, no Domain", ck)
		}
		if ss, _ := e.store.UserSessions(context.Background(), u.ID); len(ss) != 1 || strings.Contains(ck.Value, ss[0].ID) || strings.Contains(ck.Value, ss[0].TokenHash) {
			t.Fatalf("cookie %q carries the session's id or token hash", ck.Value)
		}
	})
}

func TestCookieFlagsAndHSTSOverHTTPS(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e0 *env) {
		e := newEnvWith(t, e0.store, func(c *envConfig) { c.PublicURL = "https://pp.example.nhs.uk" })
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		h := e.srv.Config.Handler

		rec := httptest.NewRecorder()
		req := httptest.NewRequest("POST", "https://pp.example.nhs.uk/api/session",
			strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, u.Email, testPassword)))
		req.Header.Set("Content-Type", "application/json")
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("login = %d %s", rec.Code, rec.Body)
		}
		ck := setCookie(t, rec.Header(), "__Host-pp_session")
		if !ck.Secure || !ck.HttpOnly || ck.Path != "/" || ck.Domain != "" || ck.SameSite != http.SameSiteLaxMode {
			t.Fatalf("cookie %s: want Secure, HttpOnly, Path=/, no Domain, SameSite=Lax", ck)
		}
		if got := rec.Header().Get("Strict-Transport-Security"); got != "max-age=63072000; includeSubDomains" {
			t.Fatalf("HSTS %q", got)
		}

		rec = httptest.NewRecorder()
		req = httptest.NewRequest("GET", "https://pp.example.nhs.uk/api/me", nil)
		req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET /api/me with the __Host- cookie = %d %s", rec.Code, rec.Body)
		}
		rec = httptest.NewRecorder()
		req = httptest.NewRequest("GET", "https://pp.example.nhs.uk/api/me", nil)
		req.AddCookie(&http.Cookie{Name: sessionCookie, Value: ck.Value})
		h.ServeHTTP(rec, req)
		if rec.Code != 401 {
			t.Fatalf("GET /api/me with the cookie under its http name = %d; want 401", rec.Code)
		}
	})
}

func setCookie(t *testing.T, h http.Header, name string) *http.Cookie {
	t.Helper()
	for _, line := range h.Values("Set-Cookie") {
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", line, err)
		}
		if ck.Name == name {
			return ck
		}
	}
	t.Fatalf("no Set-Cookie for %s in %q", name, h.Values("Set-Cookie"))
	return nil
}

func TestSecurityHeaders(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		for _, path := range []string{"/healthz", "/api/me", "/api/nowhere"} {
			res := e.client().do("GET", path, nil)
			want := map[string]string{
				"Content-Security-Policy": "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
				"X-Content-Type-Options":  "nosniff",
				"Referrer-Policy":         "no-referrer",
				"X-Frame-Options":         "DENY",
			}
			for k, v := range want {
				if got := res.header.Get(k); got != v {
					t.Errorf("GET %s: %s = %q, want %q", path, k, got, v)
				}
			}
			if got := res.header.Get("Strict-Transport-Security"); got != "" {
				t.Errorf("GET %s over http sent HSTS %q", path, got)
			}
		}
	})
}

func TestCrossOriginPostIsRefused(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		post := func(origin, site string) response {
			req, _ := http.NewRequest("POST", e.base+"/api/session",
				strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, u.Email, testPassword)))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Origin", origin)
			req.Header.Set("Sec-Fetch-Site", site)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			return response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
		}
		res := post("https://evil.example", "cross-site")
		if res.status != 403 || !strings.Contains(res.raw, `"code":"forbidden"`) || res.header.Get("Content-Security-Policy") == "" {
			t.Fatalf("cross-origin POST = %d %s; want 403 forbidden with the security headers", res.status, res.raw)
		}
		if n := len(e.loginAudit("login.success")); n != 0 {
			t.Fatalf("cross-origin login went through: %d successes audited", n)
		}
		if res := post(e.base, "same-origin"); res.status != 200 {
			t.Fatalf("same-origin POST = %d %s; want 200", res.status, res.raw)
		}
	})
}

func TestNewServerRefusesWeakSessionKeys(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		for name, keys := range map[string][][]byte{
			"no key":          nil,
			"31-byte key":     {make([]byte, 31)},
			"one short older": {make([]byte, 32), make([]byte, 16)},
		} {
			if _, err := hub.NewServer(e.withKeys(keys)); err == nil {
				t.Errorf("%s: NewServer accepted the keys", name)
			}
		}
	})
}

func TestSessionKeysRotate(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		oldKey := make([]byte, 32)
		for i := range oldKey {
			oldKey[i] = 7 // the harness's key
		}
		newKey := []byte(strings.Repeat("n", 32))
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		cookie := e.login(u.Email).cookieValue()
		get := func(keys ...[]byte) int {
			s, err := hub.NewServer(e.withKeys(keys))
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", e.base+"/api/me", nil)
			req.AddCookie(&http.Cookie{Name: sessionCookie, Value: cookie})
			s.Handler().ServeHTTP(rec, req)
			return rec.Code
		}
		if got := get(newKey, oldKey); got != 200 {
			t.Fatalf("cookie signed with the older key = %d; want 200", got)
		}
		if got := get(newKey); got != 401 {
			t.Fatalf("cookie signed with a retired key = %d; want 401", got)
		}
	})
}

// A User-Agent is arbitrary bytes; storing it must not break login.
func TestLoginWithAnOddUserAgent(t *testing.T) {
	t.Parallel()
	eachStore(t, func(t *testing.T, e *env) {
		u := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		req, _ := http.NewRequest("POST", e.base+"/api/session",
			strings.NewReader(fmt.Sprintf(`{"email":%q,"password":%q}`, u.Email, testPassword)))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", "\xff\xfe"+strings.Repeat("é", 200)+"\tend")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("login = %d", resp.StatusCode)
		}
		ss, err := e.store.UserSessions(context.Background(), u.ID)
		if err != nil || len(ss) != 1 {
			t.Fatalf("sessions: %d, %v", len(ss), err)
		}
		if ua := ss[0].UserAgent; len(ua) > 256 || !utf8.ValidString(ua) || !strings.HasPrefix(ua, "éé") {
			t.Fatalf("stored user agent %q", ua)
		}
	})
}
