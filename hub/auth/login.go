package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"patientpass/hub/httpjson"
	"patientpass/hub/password"
	"patientpass/rooms"
)

// Login failure reasons recorded in audit entries ("login.failed").
const (
	reasonPassword       = "password"
	reasonTOTP           = "totp"
	reasonTOTPRequired   = "totp_required"
	reasonPending        = "pending"
	reasonSuspended      = "suspended"
	reasonThrottled      = "throttled"
	reasonBusy           = "busy"
	reasonUnknownAccount = "unknown_account"
)

// dummyHash is verified against when the email names no account, so that a
// login for an unknown email takes as long as one for a known email with a
// wrong password, and timing does not reveal which accounts exist.
// It is made on first use, not at start-up, so commands that never log
// anyone in do not pay for it.
var dummyHash = sync.OnceValue(func() string {
	h, err := password.Hash("no account has this password; it only spends time")
	if err != nil {
		panic("hash dummy password: " + err.Error())
	}
	return h
})

// badCredentials is deliberately the same for an unknown email and a wrong
// password.
var badCredentials = &rooms.Error{Code: rooms.CodeUnauthenticated, Message: "the email address or password is not right"}

type registerRequest struct {
	Name               string `json:"name"`
	Email              string `json:"email"`
	Password           string `json:"password"`
	ProfessionalBody   string `json:"professional_body"`
	RegistrationNumber string `json:"registration_number"`
	Organisation       string `json:"organisation"`
	Role               string `json:"role"`
}

// register creates a pending account. Every field is checked before the
// password is hashed, so bad input costs the server little; registrations
// are throttled per address, and the hash waits its turn among the others
// (bounded memory), or is refused with 503 and Retry-After.
//
// An email that already has an account is answered exactly as a new one
// (the service creates nothing and audits the attempt), so registration
// does not tell anyone which emails have accounts.
func (a *Auth) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := httpjson.Decode(w, r, &req); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	addr := httpjson.ClientAddr(r)
	anonymous := rooms.Caller{ClientAddr: addr}
	n := rooms.NewUser{
		Name: req.Name, Email: req.Email,
		ProfessionalBody: rooms.ProfessionalBody(req.ProfessionalBody), RegistrationNumber: req.RegistrationNumber,
		Organisation: req.Organisation, Roles: []rooms.Role{rooms.Role(req.Role)}, Status: rooms.UserPending,
	}
	if err := validateRegistration(n, req.Password); err != nil {
		de := &rooms.Error{}
		errors.As(err, &de)
		_ = a.svc.AuditCaller(r.Context(), anonymous, rooms.ActionCreate, "user.register", nil, rooms.OutcomeInvalid, "invalid "+de.Field)
		httpjson.Fail(w, r, err)
		return
	}
	ctx := r.Context()
	res, err := a.reserve(ctx, []rooms.Limit{{Key: registerKey(addr), Max: a.registrationsPerHour}}, registerWindow)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if !res.Allowed {
		a.m.ThrottledRegister.Inc()
		_ = a.svc.AuditCaller(ctx, anonymous, rooms.ActionCreate, "user.register", nil, rooms.OutcomeDenied, reasonThrottled)
		a.retryLater(w, rooms.CodeRateLimited, res.RetryAfter,
			"too many registrations from your network; please wait %s and try again, or ask an admin of your organisation for help")
		return
	}
	hash, err := a.hash(ctx, req.Password)
	if ctx.Err() != nil {
		// The client left while waiting for its turn.
		_ = a.store.ForgiveAttempt(context.WithoutCancel(ctx), res.ID)
		return
	}
	if errors.Is(err, password.ErrBusy) {
		// Not the client's fault: the attempt does not count.
		_ = a.store.ForgiveAttempt(context.WithoutCancel(ctx), res.ID)
		_ = a.svc.AuditCaller(ctx, anonymous, rooms.ActionCreate, "user.register", nil, rooms.OutcomeFailed, reasonBusy)
		a.busy(w)
		return
	}
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	n.PasswordHash = hash
	u, err := a.svc.Register(ctx, addr, n)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	httpjson.Write(w, http.StatusCreated, map[string]string{"id": u.ID, "status": string(u.Status)})
}

// validateRegistration checks what can be checked without the store; the
// service checks the rest (the organisation exists).
func validateRegistration(n rooms.NewUser, pw string) error {
	if n.Roles[0] == "" {
		return rooms.Invalid("role", "choose the role you need: clinician, specialist, coordinator or bed_manager")
	}
	if _, err := rooms.ParseRole("role", string(n.Roles[0])); err != nil {
		return err
	}
	if n.Roles[0] == rooms.RoleAdmin {
		return rooms.Invalid("role", "admin accounts are created by an existing admin, not requested")
	}
	n.PasswordHash = "checked separately"
	if err := n.Validate(); err != nil {
		return err
	}
	if err := password.Check(pw); err != nil {
		return rooms.Invalid("password", "%s", err.Error())
	}
	return nil
}

type loginRequest struct {
	Email    string `json:"email"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

// login checks the email, password and (when enrolled) second factor, and
// starts a new session. Every outcome is audited, never with the password.
//
// The attempt is reserved against the account and the client's address
// before the password is hashed, atomically on every node, so of forty
// concurrent guesses at one account only the throttle's five are
// evaluated. An attempt that turns out not to be a guess (the password was
// right) is forgiven.
func (a *Auth) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	// refuse answers a login refused before any account is looked up, and
	// audits it by the field at fault, never its content.
	refuse := func(field string, err error) {
		a.auditLogin(r.Context(), rooms.Caller{ClientAddr: httpjson.ClientAddr(r)}, rooms.OutcomeInvalid, "invalid "+field)
		httpjson.Fail(w, r, err)
	}
	if err := httpjson.Decode(w, r, &req); err != nil {
		field := ""
		if de := (*rooms.Error)(nil); errors.As(err, &de) {
			field = de.Field
		}
		refuse(field, err)
		return
	}
	email := rooms.NormaliseEmail(req.Email)
	switch {
	case email == "":
		refuse("email", rooms.Invalid("email", "enter your email address"))
		return
	case req.Password == "":
		refuse("password", rooms.Invalid("password", "enter your password"))
		return
	case len(req.Password) > 4*password.MaxLength:
		// No stored password is this long; refusing early bounds the
		// hashing work an attacker can ask for.
		refuse("password", badCredentials)
		return
	}
	if err := rooms.CheckEmail("email", email); err != nil {
		refuse("email", err)
		return
	}
	ctx := r.Context()
	addr := httpjson.ClientAddr(r)
	anonymous := rooms.Caller{ClientAddr: addr}

	res, err := a.reserve(ctx, []rooms.Limit{
		{Key: accountKey(email), Max: maxAccountFailures},
		{Key: addrKey(addr), Max: maxClientAddrFailures},
	}, throttleWindow)
	if err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	if !res.Allowed {
		a.m.ThrottledLogin.Inc()
		u, _ := a.store.UserByEmail(ctx, email) // only to name the actor in the audit entry
		a.auditLogin(ctx, rooms.Caller{User: u, ClientAddr: addr}, rooms.OutcomeDenied, reasonThrottled)
		a.retryLater(w, rooms.CodeRateLimited, res.RetryAfter,
			"too many failed logins; please wait %s and try again, or ask an admin of your organisation for help")
		return
	}
	// forgive takes back the reservation of an attempt that was no guess.
	forgive := func() { _ = a.store.ForgiveAttempt(context.WithoutCancel(ctx), res.ID) }

	u, err := a.store.UserByEmail(ctx, email)
	found := err == nil
	if err != nil && !errors.Is(err, rooms.ErrNotFound) {
		forgive()
		httpjson.Fail(w, r, fmt.Errorf("look up account: %w", err))
		return
	}
	encoded := dummyHash()
	if found {
		encoded = u.PasswordHash
	}
	ok, rehash, err := a.verify(ctx, req.Password, encoded)
	if ctx.Err() != nil {
		forgive() // the client left while waiting for its turn: no answer, no guess
		return
	}
	if errors.Is(err, password.ErrBusy) {
		forgive()
		a.auditLogin(ctx, rooms.Caller{User: u, ClientAddr: addr}, rooms.OutcomeFailed, reasonBusy)
		a.busy(w)
		return
	}
	if err != nil {
		forgive()
		httpjson.Fail(w, r, fmt.Errorf("verify password of user %s: %w", u.ID, err))
		return
	}
	if !found {
		a.auditLogin(ctx, anonymous, rooms.OutcomeDenied, reasonUnknownAccount)
		httpjson.Error(w, badCredentials)
		return
	}
	caller := rooms.Caller{User: u, ClientAddr: addr}
	if !ok {
		a.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonPassword)
		httpjson.Error(w, badCredentials)
		return
	}

	// The password was right: whatever follows, this was no guess at it.
	forgive()
	// The account's status is told only to someone who knows its password.
	switch u.Status {
	case rooms.UserPending:
		a.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonPending)
		httpjson.Error(w, rooms.Forbidden("your account is awaiting approval by an admin of your organisation; you can log in once they have approved it"))
		return
	case rooms.UserSuspended:
		a.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonSuspended)
		httpjson.Error(w, rooms.Forbidden("your account is suspended; please contact an admin of your organisation"))
		return
	case rooms.UserActive:
	default:
		httpjson.Fail(w, r, fmt.Errorf("user %s has unknown status %q", u.ID, u.Status))
		return
	}

	factor := "password"
	if u.TOTPSecret != "" {
		if req.TOTP == "" {
			// Not counted as a failure: the app asks for the code in a second
			// step after the password.
			a.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonTOTPRequired)
			httpjson.Error(w, &rooms.Error{Code: rooms.CodeUnauthenticated, Field: "totp", Message: "enter the code from your authenticator app"})
			return
		}
		var err error
		factor, err = a.checkSecondFactor(ctx, u, req.TOTP, addr)
		if err != nil {
			var de *rooms.Error
			switch {
			case errors.Is(err, errThrottled):
				a.m.ThrottledTOTP.Inc()
				a.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonThrottled)
				a.retryLater(w, rooms.CodeRateLimited, throttledFor(err),
					"too many wrong codes; please wait %s and try again, or ask an admin of your organisation for help")
			case errors.As(err, &de):
				a.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonTOTP)
				httpjson.Error(w, de)
			default:
				httpjson.Fail(w, r, err)
			}
			return
		}
	}

	if err := a.store.ClearLoginFailures(ctx, accountKey(email)); err != nil {
		httpjson.Fail(w, r, fmt.Errorf("clear login failures: %w", err))
		return
	}
	if rehash {
		a.rehashPassword(ctx, caller, req.Password)
	}
	if _, err := a.sessions.start(w, r, u.ID); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	a.auditLogin(ctx, caller, rooms.OutcomeSuccess, factor)
	httpjson.Write(w, http.StatusOK, map[string]any{"user": u})
}

// auditLogin appends a login entry. A login is answered even when the audit
// store fails, as every other refusal is; the failure is logged.
func (a *Auth) auditLogin(ctx context.Context, c rooms.Caller, outcome, detail string) {
	event := "login.failed"
	if outcome == rooms.OutcomeSuccess {
		event = "login.success"
	}
	if err := a.svc.AuditCaller(context.WithoutCancel(ctx), c, rooms.ActionExecute, event, nil, outcome, detail); err != nil {
		a.log.Error().Err(err).Str("event", event).Msg("audit login")
	}
}

// rehashPassword replaces a hash made with old parameters, now that the
// password is known to be right. A failure is logged and the login goes on:
// the old hash still works.
func (a *Auth) rehashPassword(ctx context.Context, c rooms.Caller, pw string) {
	hash, err := a.hash(ctx, pw)
	if err == nil {
		err = a.svc.UpdateCredentials(ctx, c, c.User.ID, "user.password_rehash", func(cr *rooms.Credentials) { cr.PasswordHash = hash })
	}
	if err != nil {
		a.log.Error().Err(err).Str("user", c.User.ID).Msg("rehash password")
	}
}

// logout ends the session on the server and clears the cookie.
func (a *Auth) logout(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	sess, _, ok := a.sessions.current(r)
	if !ok {
		httpjson.Error(w, unauthenticated)
		return
	}
	// Ending it on the server closes its sockets on every node.
	if err := a.sessions.end(w, r, sess); err != nil {
		httpjson.Fail(w, r, err)
		return
	}
	_ = a.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "logout", nil, rooms.OutcomeSuccess, "session="+sess.ID)
	w.WriteHeader(http.StatusNoContent)
}

// me returns the current user and where they stand on two-factor
// authentication, so the UI can send an admin to set it up.
func (a *Auth) me(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	httpjson.Write(w, http.StatusOK, map[string]any{
		"user":          c.User,
		"totp_enrolled": c.User.TOTPSecret != "",
		"totp_required": c.User.HasRole(rooms.RoleAdmin),
	})
}

// sessionView is one of the user's sessions as they see it.
type sessionView struct {
	rooms.Session
	Current bool `json:"current"`
}

// mySessions lists the user's live sessions, marking the one in use.
func (a *Auth) mySessions(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	_, cur, _ := a.sessions.current(r)
	all, err := a.store.UserSessions(r.Context(), c.User.ID)
	if err != nil {
		httpjson.Fail(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	now := a.clock.Now()
	views := []sessionView{}
	for _, rec := range all {
		if a.sessions.expired(rec, now) {
			continue
		}
		views = append(views, sessionView{Session: rec, Current: rec.ID == cur.ID})
	}
	httpjson.Write(w, http.StatusOK, map[string]any{"sessions": views})
}

// endMySession ends one of the user's own sessions (a browser left logged in
// elsewhere). Another user's session is not found, whether it exists or not.
func (a *Auth) endMySession(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	id := r.PathValue("id")
	all, err := a.store.UserSessions(r.Context(), c.User.ID)
	if err != nil {
		httpjson.Fail(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	found := false
	for _, rec := range all {
		found = found || rec.ID == id
	}
	if !found {
		_ = a.svc.AuditCaller(r.Context(), c, rooms.ActionDelete, "session.end", nil, rooms.OutcomeDenied, "not_found")
		httpjson.Fail(w, r, rooms.NotFound("session"))
		return
	}
	// Ending a session closes its sockets on every node.
	if sess, cur, ok := a.sessions.current(r); ok && cur.ID == id {
		err = a.sessions.end(w, r, sess)
	} else if err = a.store.DeleteSession(r.Context(), id); err == nil || errors.Is(err, rooms.ErrNotFound) {
		a.ender.EndSessions(id, "")
	}
	if err != nil && !errors.Is(err, rooms.ErrNotFound) {
		httpjson.Fail(w, r, fmt.Errorf("end session %s: %w", id, err))
		return
	}
	_ = a.svc.AuditCaller(r.Context(), c, rooms.ActionDelete, "session.end", nil, rooms.OutcomeSuccess, "session="+id)
	w.WriteHeader(http.StatusNoContent)
}
