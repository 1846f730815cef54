package hub

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

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
// password is hashed, so bad input costs the server little.
func (s *Server) register(w http.ResponseWriter, r *http.Request) {
	var req registerRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	addr := clientAddr(r)
	n := rooms.NewUser{
		Name: req.Name, Email: req.Email,
		ProfessionalBody: rooms.ProfessionalBody(req.ProfessionalBody), RegistrationNumber: req.RegistrationNumber,
		Organisation: req.Organisation, Roles: []rooms.Role{rooms.Role(req.Role)}, Status: rooms.UserPending,
	}
	if err := validateRegistration(n, req.Password); err != nil {
		de := &rooms.Error{}
		errors.As(err, &de)
		_ = s.svc.AuditCaller(r.Context(), rooms.Caller{ClientAddr: addr}, rooms.ActionCreate, "user.register", nil, rooms.OutcomeInvalid, "invalid "+de.Field)
		s.fail(w, r, err)
		return
	}
	hash, err := password.Hash(req.Password)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	n.PasswordHash = hash
	u, err := s.svc.Register(r.Context(), addr, n)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, map[string]string{"id": u.ID, "status": string(u.Status)})
}

// validateRegistration checks what can be checked without the store; the
// service checks the rest (the organisation exists, the email is free).
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
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	var req loginRequest
	if err := decode(w, r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	email := rooms.NormaliseEmail(req.Email)
	switch {
	case email == "":
		s.fail(w, r, rooms.Invalid("email", "enter your email address"))
		return
	case req.Password == "":
		s.fail(w, r, rooms.Invalid("password", "enter your password"))
		return
	case len(req.Password) > 4*password.MaxLength:
		// No stored password is this long; refusing early bounds the
		// hashing work an attacker can ask for.
		s.fail(w, r, badCredentials)
		return
	}
	ctx := r.Context()
	addr := clientAddr(r)
	anonymous := rooms.Caller{ClientAddr: addr}

	wait, err := s.throttle.wait(ctx, email, addr)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if wait > 0 {
		u, _ := s.store.UserByEmail(ctx, email) // only to name the actor in the audit entry
		s.auditLogin(ctx, rooms.Caller{User: u, ClientAddr: addr}, rooms.OutcomeDenied, reasonThrottled)
		s.rateLimited(w, wait)
		return
	}

	u, err := s.store.UserByEmail(ctx, email)
	if errors.Is(err, rooms.ErrNotFound) {
		_, _, _ = password.Verify(req.Password, dummyHash())
		s.loginFailed(w, r, anonymous, email, reasonUnknownAccount, badCredentials)
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("look up account: %w", err))
		return
	}
	caller := rooms.Caller{User: u, ClientAddr: addr}
	ok, rehash, err := password.Verify(req.Password, u.PasswordHash)
	if err != nil {
		s.fail(w, r, fmt.Errorf("verify password of user %s: %w", u.ID, err))
		return
	}
	if !ok {
		s.loginFailed(w, r, caller, email, reasonPassword, badCredentials)
		return
	}

	// The account's status is told only to someone who knows its password.
	switch u.Status {
	case rooms.UserPending:
		s.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonPending)
		writeError(w, rooms.Forbidden("your account is awaiting approval by an admin of your organisation; you can log in once they have approved it"))
		return
	case rooms.UserSuspended:
		s.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonSuspended)
		writeError(w, rooms.Forbidden("your account is suspended; please contact an admin of your organisation"))
		return
	case rooms.UserActive:
	default:
		s.fail(w, r, fmt.Errorf("user %s has unknown status %q", u.ID, u.Status))
		return
	}

	factor := "password"
	if u.TOTPSecret != "" {
		if req.TOTP == "" {
			// Not counted as a failure: the app asks for the code in a second
			// step after the password.
			s.auditLogin(ctx, caller, rooms.OutcomeDenied, reasonTOTPRequired)
			writeError(w, &rooms.Error{Code: rooms.CodeUnauthenticated, Field: "totp", Message: "enter the code from your authenticator app"})
			return
		}
		var err error
		factor, err = s.checkSecondFactor(ctx, u, req.TOTP)
		if err != nil {
			if de := (*rooms.Error)(nil); errors.As(err, &de) {
				s.loginFailed(w, r, caller, email, reasonTOTP, de)
			} else {
				s.fail(w, r, err)
			}
			return
		}
	}

	if err := s.throttle.succeed(ctx, email); err != nil {
		s.fail(w, r, err)
		return
	}
	if rehash {
		s.rehashPassword(ctx, caller, req.Password)
	}
	if _, err := s.sessions.start(w, r, u.ID); err != nil {
		s.fail(w, r, err)
		return
	}
	s.auditLogin(ctx, caller, rooms.OutcomeSuccess, factor)
	writeJSON(w, http.StatusOK, map[string]any{"user": u})
}

// loginFailed counts a failure against the account and the address, audits
// it, and answers with de.
func (s *Server) loginFailed(w http.ResponseWriter, r *http.Request, c rooms.Caller, email, reason string, de *rooms.Error) {
	if err := s.throttle.fail(r.Context(), email, c.ClientAddr); err != nil {
		s.fail(w, r, err)
		return
	}
	s.auditLogin(r.Context(), c, rooms.OutcomeDenied, reason)
	writeError(w, de)
}

// auditLogin appends a login entry. A login is answered even when the audit
// store fails, as every other refusal is; the failure is logged.
func (s *Server) auditLogin(ctx context.Context, c rooms.Caller, outcome, detail string) {
	event := "login.failed"
	if outcome == rooms.OutcomeSuccess {
		event = "login.success"
	}
	if err := s.svc.AuditCaller(context.WithoutCancel(ctx), c, rooms.ActionExecute, event, nil, outcome, detail); err != nil {
		s.log.Error().Err(err).Str("event", event).Msg("audit login")
	}
}

// rateLimited answers 429 with how long to wait, in whole seconds rounded up.
func (s *Server) rateLimited(w http.ResponseWriter, wait time.Duration) {
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	var body errorBody
	body.Error.Code = rooms.CodeRateLimited
	body.Error.Message = fmt.Sprintf("too many failed logins; please wait %s and try again, or ask an admin of your organisation for help", humanWait(secs))
	body.RetryAfter = secs
	writeJSON(w, http.StatusTooManyRequests, body)
}

func humanWait(secs int) string {
	if secs <= 60 {
		return "a minute"
	}
	return fmt.Sprintf("%d minutes", (secs+59)/60)
}

// rehashPassword replaces a hash made with old parameters, now that the
// password is known to be right. A failure is logged and the login goes on:
// the old hash still works.
func (s *Server) rehashPassword(ctx context.Context, c rooms.Caller, pw string) {
	hash, err := password.Hash(pw)
	if err == nil {
		err = s.svc.UpdateCredentials(ctx, c, c.User.ID, "user.password_rehash", func(cr *rooms.Credentials) { cr.PasswordHash = hash })
	}
	if err != nil {
		s.log.Error().Err(err).Str("user", c.User.ID).Msg("rehash password")
	}
}

// logout ends the session on the server and clears the cookie.
func (s *Server) logout(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	sess, _, ok := s.sessions.current(r)
	if !ok {
		writeError(w, unauthenticated)
		return
	}
	if err := s.sessions.end(w, r, sess); err != nil {
		s.fail(w, r, err)
		return
	}
	s.rt.EndSessions(sess.ID, "")
	_ = s.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "logout", nil, rooms.OutcomeSuccess, "session="+sess.ID)
	w.WriteHeader(http.StatusNoContent)
}

// me returns the current user and where they stand on two-factor
// authentication, so the UI can send an admin to set it up.
func (s *Server) me(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	writeJSON(w, http.StatusOK, map[string]any{
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
func (s *Server) mySessions(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	_, cur, _ := s.sessions.current(r)
	all, err := s.store.UserSessions(r.Context(), c.User.ID)
	if err != nil {
		s.fail(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	now := s.clock.Now()
	views := []sessionView{}
	for _, rec := range all {
		if s.sessions.expired(rec, now) {
			continue
		}
		views = append(views, sessionView{Session: rec, Current: rec.ID == cur.ID})
	}
	writeJSON(w, http.StatusOK, map[string]any{"sessions": views})
}

// endMySession ends one of the user's own sessions (a browser left logged in
// elsewhere). Another user's session is not found, whether it exists or not.
func (s *Server) endMySession(w http.ResponseWriter, r *http.Request, c rooms.Caller) {
	id := r.PathValue("id")
	all, err := s.store.UserSessions(r.Context(), c.User.ID)
	if err != nil {
		s.fail(w, r, fmt.Errorf("list sessions: %w", err))
		return
	}
	found := false
	for _, rec := range all {
		found = found || rec.ID == id
	}
	if !found {
		_ = s.svc.AuditCaller(r.Context(), c, rooms.ActionDelete, "session.end", nil, rooms.OutcomeDenied, "not_found")
		s.fail(w, r, rooms.NotFound("session"))
		return
	}
	if sess, cur, ok := s.sessions.current(r); ok && cur.ID == id {
		err = s.sessions.end(w, r, sess)
	} else {
		err = s.store.DeleteSession(r.Context(), id)
	}
	if err != nil && !errors.Is(err, rooms.ErrNotFound) {
		s.fail(w, r, fmt.Errorf("end session %s: %w", id, err))
		return
	}
	s.rt.EndSessions(id, "")
	_ = s.svc.AuditCaller(r.Context(), c, rooms.ActionDelete, "session.end", nil, rooms.OutcomeSuccess, "session="+id)
	w.WriteHeader(http.StatusNoContent)
}
