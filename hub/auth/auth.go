// Package auth is how people get in: registration, login with password and
// second factor, server-side sessions behind a signed cookie, throttling of
// every guessable step, the bound on concurrent password hashing, and the
// middleware that resolves a request to an active user. Every way a session
// ends closes its sockets, on every node, through the SessionEnder handed in.
package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"patientpass/hub/httpjson"
	"patientpass/hub/metrics"
	"patientpass/hub/password"
	"patientpass/rooms"
)

// Store is what authentication keeps: sessions, throttled attempts and
// second factors, and the accounts they belong to.
type Store interface {
	rooms.SessionStore
	rooms.CredentialStore
	rooms.AttemptStore
	User(ctx context.Context, id string) (rooms.User, error)
	UserByEmail(ctx context.Context, email string) (rooms.User, error)
	DisplayByTokenHash(ctx context.Context, tokenHash string) (rooms.Display, error)
}

// SessionEnder closes the sockets of ended sessions on every node: of one
// session (sessionID), or of every session of a user (userID).
type SessionEnder interface {
	EndSessions(sessionID, userID string)
}

// Config configures Auth.
type Config struct {
	Service *rooms.Service
	Store   Store
	Clock   rooms.Clock
	Logger  zerolog.Logger
	Metrics *metrics.Metrics
	// Public is the public URL; https turns on Secure cookies with the
	// __Host- prefix.
	Public *url.URL
	// SessionKeys sign session cookies, newest first.
	SessionKeys [][]byte
	// Ender closes the sockets of sessions that end.
	Ender SessionEnder
	// Hashes bounds concurrent password hashing; nil takes the default.
	Hashes *password.Limiter
	// RegistrationsPerHour bounds the registrations from one address in an
	// hour (0: DefaultRegistrationsPerHour). A hospital whose staff all
	// leave through one address may raise it for a day of onboarding.
	RegistrationsPerHour int
}

// Auth serves the account and session routes and authenticates the others.
type Auth struct {
	svc      *rooms.Service
	store    Store
	clock    rooms.Clock
	log      zerolog.Logger
	m        *metrics.Metrics
	sessions *sessionManager
	ender    SessionEnder
	hashes   *password.Limiter
	// registrationsPerHour bounds the registrations from one address.
	registrationsPerHour int
	// publicURL is the public URL without a trailing slash (tokenURL).
	publicURL string
}

// New returns Auth over cfg.
func New(cfg Config) (*Auth, error) {
	if cfg.Clock == nil {
		cfg.Clock = rooms.SystemClock{}
	}
	if cfg.Hashes == nil {
		cfg.Hashes = password.NewDefaultLimiter()
	}
	if cfg.RegistrationsPerHour <= 0 {
		cfg.RegistrationsPerHour = DefaultRegistrationsPerHour
	}
	if cfg.Ender == nil {
		return nil, errors.New("auth needs a SessionEnder: ended sessions must close their sockets")
	}
	sm, err := newSessionManager(cfg.Store, cfg.Clock, cfg.Public, cfg.SessionKeys, cfg.Ender)
	if err != nil {
		return nil, err
	}
	return &Auth{svc: cfg.Service, store: cfg.Store, clock: cfg.Clock, log: cfg.Logger, m: cfg.Metrics,
		sessions: sm, ender: cfg.Ender, hashes: cfg.Hashes, registrationsPerHour: cfg.RegistrationsPerHour,
		publicURL: strings.TrimSuffix(cfg.Public.String(), "/")}, nil
}

// HandlerFunc is a handler for an authenticated request.
type HandlerFunc = func(w http.ResponseWriter, r *http.Request, c rooms.Caller)

// unauthenticated is the answer to a request without a working session.
var unauthenticated = &rooms.Error{Code: rooms.CodeUnauthenticated, Message: "please log in; your session has ended or you have not logged in yet"}

// totpSetupRoutes are the routes an admin who has not set up two-factor
// authentication may use: enough to see who they are, set it up, and leave.
var totpSetupRoutes = map[string]bool{
	"GET /api/me":                  true,
	"POST /api/me/totp":            true,
	"POST /api/me/totp/confirm":    true,
	"GET /api/me/sessions":         true,
	"DELETE /api/me/sessions/{id}": true,
	"DELETE /api/session":          true,
}

// Required resolves the request's session to an active user and calls h
// with them as the caller. The user is read on every request, so a
// suspension takes effect at once even on a node that did not perform it.
// A request with no session may be a wallboard display's.
func (a *Auth) Required(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := a.session(w, r)
		if errors.Is(err, errNoSession) {
			if d, _, ok := a.display(r); ok {
				a.serveDisplay(w, r, d, h)
				return
			}
			err = a.noSession(w, r)
		}
		if err != nil {
			httpjson.Fail(w, r, err)
			return
		}
		h(w, r, c)
	})
}

// Session resolves the request's session to an active user, as Required
// does, for handlers that answer in a format of their own (the FHIR API);
// a display's cookie is no session there. The error is a *rooms.Error to
// show (unauthenticated, forbidden) or an internal failure; a session that
// has ended has its cookie cleared on w.
func (a *Auth) Session(w http.ResponseWriter, r *http.Request) (rooms.Caller, error) {
	c, err := a.session(w, r)
	if errors.Is(err, errNoSession) {
		err = a.noSession(w, r)
	}
	return c, err
}

// errNoSession is session's answer to a request whose cookie holds no
// session.
var errNoSession = errors.New("no session")

// noSession answers a request with no session: unauthenticated, with a
// stale cookie cleared.
func (a *Auth) noSession(w http.ResponseWriter, r *http.Request) error {
	if _, err := r.Cookie(a.sessions.name); err == nil {
		a.sessions.clearCookie(w)
	}
	return unauthenticated
}

// session resolves r's session cookie to its active user; errNoSession
// when the cookie holds none.
func (a *Auth) session(w http.ResponseWriter, r *http.Request) (rooms.Caller, error) {
	sess, err := a.sessions.Get(r, a.sessions.name)
	if err != nil {
		return rooms.Caller{}, err
	}
	rec, ok := sess.Values[valueRecord].(rooms.Session)
	if !ok {
		return rooms.Caller{}, errNoSession
	}
	u, err := a.store.User(r.Context(), rec.UserID)
	if err != nil && !errors.Is(err, rooms.ErrNotFound) {
		return rooms.Caller{}, fmt.Errorf("read user of session %s: %w", rec.ID, err)
	}
	if err != nil || u.Status != rooms.UserActive {
		if err := a.sessions.end(w, r, sess); err != nil {
			return rooms.Caller{}, err
		}
		return rooms.Caller{}, unauthenticated
	}
	if alive, err := a.sessions.touch(r.Context(), rec, a.clock.Now()); err != nil {
		return rooms.Caller{}, err
	} else if !alive {
		a.sessions.clearCookie(w)
		return rooms.Caller{}, unauthenticated
	}
	c := rooms.Caller{User: u, ClientAddr: httpjson.ClientAddr(r)}
	if u.HasRole(rooms.RoleAdmin) && u.TOTPSecret == "" && !totpSetupRoutes[r.Pattern] {
		_ = a.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "access", nil, rooms.OutcomeDenied,
			"totp_required route="+httpjson.Printable(r.Pattern, 100))
		return rooms.Caller{}, rooms.Forbidden("set up two-factor authentication first: admins must use an authenticator app")
	}
	return c, nil
}

// Current returns the session Required resolved for r.
func (a *Auth) Current(r *http.Request) (rooms.Session, bool) {
	_, rec, ok := a.sessions.current(r)
	if !ok {
		if d, token, ok := a.display(r); ok {
			return displaySession(d, token, a.clock.Now()), true
		}
	}
	return rec, ok
}

// Identify names the user whose live session a request's cookie carries,
// without touching it: to audit a refusal against them.
func (a *Auth) Identify(r *http.Request) (rooms.Caller, bool) {
	_, rec, ok := a.sessions.current(r)
	if !ok {
		if d, _, ok := a.display(r); ok {
			return rooms.DisplayCaller(d, httpjson.ClientAddr(r)), true
		}
		return rooms.Caller{}, false
	}
	u, err := a.store.User(r.Context(), rec.UserID)
	if err != nil {
		return rooms.Caller{}, false
	}
	return rooms.Caller{User: u, ClientAddr: httpjson.ClientAddr(r)}, true
}

// Lookup reads a session by its token hash; rooms.ErrNotFound when it has
// ended.
func (a *Auth) Lookup(ctx context.Context, tokenHash string) (rooms.Session, error) {
	if strings.HasPrefix(tokenHash, displayTokenPrefix) {
		return a.lookupDisplay(ctx, tokenHash)
	}
	return a.store.SessionByTokenHash(ctx, tokenHash)
}

// Expired reports whether rec has passed its idle or absolute timeout at
// now. A display's never does.
func (a *Auth) Expired(rec rooms.Session, now time.Time) bool {
	return !isDisplaySession(rec) && a.sessions.expired(rec, now)
}

// Deadline is when rec times out without further activity; a display's
// socket reads its display again after displayRecheck.
func (a *Auth) Deadline(rec rooms.Session) time.Time {
	if isDisplaySession(rec) {
		return a.clock.Now().Add(displayRecheck)
	}
	deadline := rec.LastSeenAt.Add(IdleTimeout)
	if abs := rec.CreatedAt.Add(AbsoluteTimeout); abs.Before(deadline) {
		deadline = abs
	}
	return deadline
}

// Touch records activity on rec at now, at most once per touchInterval. It
// reports false when the session has been ended meanwhile.
func (a *Auth) Touch(ctx context.Context, rec rooms.Session, now time.Time) (bool, error) {
	if isDisplaySession(rec) {
		return true, nil
	}
	return a.sessions.touch(ctx, rec, now)
}

// Routes registers the account and session routes on mux.
func (a *Auth) Routes(mux *http.ServeMux) {
	mux.HandleFunc("GET /display", a.startDisplay)
	mux.HandleFunc("POST /api/register", a.register)
	mux.HandleFunc("POST /api/session", a.login)
	mux.Handle("DELETE /api/session", a.Required(a.logout))
	mux.Handle("GET /api/me", a.Required(a.me))
	mux.Handle("GET /api/me/sessions", a.Required(a.mySessions))
	mux.Handle("DELETE /api/me/sessions/{id}", a.Required(a.endMySession))
	mux.Handle("POST /api/me/totp", a.Required(a.totpEnrol))
	mux.Handle("POST /api/me/totp/confirm", a.Required(a.totpConfirm))
	mux.HandleFunc("POST "+TokenPath, a.token)
}
