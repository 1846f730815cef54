package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/gorilla/securecookie"
	"github.com/gorilla/sessions"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// The session lifetimes are IdleTimeout and AbsoluteTimeout (timeouts.go).
const (
	// touchInterval bounds writes: activity is recorded at most once a
	// minute per session, so the idle timeout is at most a minute early.
	touchInterval = time.Minute
	// minKeyLen is the shortest session key accepted: 256 bits for
	// HMAC-SHA-256.
	minKeyLen = 32
)

// sessionValue keys the values of a gorilla session. They live only in
// memory for the request; the cookie holds the token alone.
type sessionValue int

const (
	// valueRecord holds the rooms.Session a cookie resolved to.
	valueRecord sessionValue = iota
	// valueUserID names the user a new session is for, until Save creates
	// it.
	valueUserID
)

// sessionManager is a gorilla sessions.Store whose cookie carries only a
// random token, signed with the session keys; the session itself lives in
// the store (rooms.Session, keyed by the token's SHA-256), so the server can
// end it and every node sharing the database sees the same sessions.
type sessionManager struct {
	store  rooms.SessionStore
	clock  rooms.Clock
	ender  SessionEnder
	codecs []securecookie.Codec
	// name is the cookie name; __Host- on https, which makes the browser
	// insist on Secure, Path=/ and no Domain.
	name   string
	secure bool
}

var _ sessions.Store = (*sessionManager)(nil)

// newSessionManager returns a session store signing cookies with keys,
// newest first; cookies signed with an older key still verify, so keys can
// rotate without logging everyone out.
func newSessionManager(store rooms.SessionStore, clock rooms.Clock, public *url.URL, keys [][]byte, ender SessionEnder) (*sessionManager, error) {
	if len(keys) == 0 {
		return nil, errors.New("at least one session key is required")
	}
	pairs := make([][]byte, 0, 2*len(keys))
	for i, k := range keys {
		if len(k) < minKeyLen {
			return nil, fmt.Errorf("session key %d is %d bytes; at least %d are required", i+1, len(k), minKeyLen)
		}
		pairs = append(pairs, k, nil) // signed, not encrypted: the token is opaque anyway
	}
	codecs := securecookie.CodecsFromPairs(pairs...)
	for _, c := range codecs {
		// Belt and braces: a cookie older than the absolute timeout is
		// refused before the store is asked.
		c.(*securecookie.SecureCookie).MaxAge(int(AbsoluteTimeout / time.Second))
	}
	m := &sessionManager{store: store, clock: clock, ender: ender, codecs: codecs, name: "pp_session"}
	if public.Scheme == "https" {
		m.secure = true
		m.name = "__Host-pp_session"
	}
	return m, nil
}

// options are the cookie's attributes. The cookie lasts as long as the
// browser runs (no Max-Age), and the server ends it sooner.
func (m *sessionManager) options() *sessions.Options {
	return &sessions.Options{Path: "/", HttpOnly: true, Secure: m.secure, SameSite: http.SameSiteLaxMode}
}

// Get returns the request's session, resolving the cookie once per request.
func (m *sessionManager) Get(r *http.Request, name string) (*sessions.Session, error) {
	return sessions.GetRegistry(r).Get(m, name)
}

// New returns the session the request's cookie names, or a new empty one
// when there is no cookie or it is invalid, unknown or expired. It returns an
// error only when the store cannot be read.
func (m *sessionManager) New(r *http.Request, name string) (*sessions.Session, error) {
	sess := sessions.NewSession(m, name)
	sess.Options = m.options()
	sess.IsNew = true
	ck, err := r.Cookie(name)
	if err != nil {
		return sess, nil
	}
	var token string
	if err := securecookie.DecodeMulti(name, ck.Value, &token, m.codecs...); err != nil || token == "" {
		return sess, nil
	}
	rec, err := m.store.SessionByTokenHash(r.Context(), tokenHash(token))
	if errors.Is(err, rooms.ErrNotFound) {
		return sess, nil
	}
	if err != nil {
		return sess, fmt.Errorf("read session: %w", err)
	}
	if m.expired(rec, m.clock.Now()) {
		if err := m.store.DeleteSession(r.Context(), rec.ID); err != nil && !errors.Is(err, rooms.ErrNotFound) {
			return sess, fmt.Errorf("delete expired session %s: %w", rec.ID, err)
		}
		return sess, nil
	}
	sess.ID = rec.ID
	sess.IsNew = false
	sess.Values[valueRecord] = rec
	return sess, nil
}

// Save creates the session on the server and sets its cookie when it is new
// (Values[valueUserID] set), or ends it on the server and clears the cookie
// when Options.MaxAge < 0. An existing session needs no saving: its state is
// on the server.
func (m *sessionManager) Save(r *http.Request, w http.ResponseWriter, sess *sessions.Session) error {
	if sess.Options.MaxAge < 0 {
		if rec, ok := sess.Values[valueRecord].(rooms.Session); ok {
			// Already gone (ended from another browser, or the account
			// suspended) is as good as ended here.
			if err := m.store.DeleteSession(r.Context(), rec.ID); err != nil && !errors.Is(err, rooms.ErrNotFound) {
				return fmt.Errorf("delete session %s: %w", rec.ID, err)
			}
			m.ender.EndSessions(rec.ID, "")
		}
		http.SetCookie(w, sessions.NewCookie(sess.Name(), "", sess.Options))
		return nil
	}
	userID, _ := sess.Values[valueUserID].(string)
	if !sess.IsNew || userID == "" {
		return nil
	}
	token, err := newToken()
	if err != nil {
		return err
	}
	now := m.clock.Now().Truncate(time.Microsecond)
	rec := rooms.Session{
		ID: rooms.NewID(), TokenHash: tokenHash(token), UserID: userID,
		CreatedAt: now, LastSeenAt: now,
		ClientAddr: httpjson.ClientAddr(r), UserAgent: httpjson.Printable(r.UserAgent(), 256),
	}
	if err := m.store.CreateSession(r.Context(), rec); err != nil {
		return fmt.Errorf("create session: %w", err)
	}
	encoded, err := securecookie.EncodeMulti(sess.Name(), token, m.codecs...)
	if err != nil {
		return fmt.Errorf("sign session cookie: %w", err)
	}
	http.SetCookie(w, sessions.NewCookie(sess.Name(), encoded, sess.Options))
	sess.ID = rec.ID
	sess.IsNew = false
	delete(sess.Values, valueUserID)
	sess.Values[valueRecord] = rec
	return nil
}

// expired reports whether rec has passed its idle or absolute timeout at now.
func (m *sessionManager) expired(rec rooms.Session, now time.Time) bool {
	return !now.Before(rec.LastSeenAt.Add(IdleTimeout)) || !now.Before(rec.CreatedAt.Add(AbsoluteTimeout))
}

// start begins a new session for user, with a new token, and sets its
// cookie. A session the request already carried is ended first, so a login
// never keeps a token that existed before it (session fixation).
func (m *sessionManager) start(w http.ResponseWriter, r *http.Request, userID string) (rooms.Session, error) {
	if old, err := m.New(r, m.name); err == nil && !old.IsNew {
		// Only on the server: the new cookie below replaces the old one.
		// Its sockets close too, on every node: they must not go on
		// receiving events on a session that no longer exists.
		if err := m.store.DeleteSession(r.Context(), old.ID); err != nil && !errors.Is(err, rooms.ErrNotFound) {
			return rooms.Session{}, fmt.Errorf("end previous session %s: %w", old.ID, err)
		}
		m.ender.EndSessions(old.ID, "")
	}
	sess := sessions.NewSession(m, m.name)
	sess.Options = m.options()
	sess.IsNew = true
	sess.Values[valueUserID] = userID
	if err := m.Save(r, w, sess); err != nil {
		return rooms.Session{}, err
	}
	return sess.Values[valueRecord].(rooms.Session), nil
}

// end deletes sess on the server and clears its cookie.
func (m *sessionManager) end(w http.ResponseWriter, r *http.Request, sess *sessions.Session) error {
	sess.Options.MaxAge = -1
	return m.Save(r, w, sess)
}

// clearCookie tells the browser to forget a cookie that no longer names a
// session.
func (m *sessionManager) clearCookie(w http.ResponseWriter) {
	opts := m.options()
	opts.MaxAge = -1
	http.SetCookie(w, sessions.NewCookie(m.name, "", opts))
}

// current returns the session the request was authenticated with; authed
// has resolved it already, so this reads the request's registry.
func (m *sessionManager) current(r *http.Request) (*sessions.Session, rooms.Session, bool) {
	sess, err := m.Get(r, m.name)
	if err != nil {
		return nil, rooms.Session{}, false
	}
	rec, ok := sess.Values[valueRecord].(rooms.Session)
	return sess, rec, ok
}

// touch records activity on rec at now, at most once per touchInterval. It
// reports false when the session has been ended meanwhile.
func (m *sessionManager) touch(ctx context.Context, rec rooms.Session, now time.Time) (bool, error) {
	if now.Sub(rec.LastSeenAt) < touchInterval {
		return true, nil
	}
	err := m.store.TouchSession(ctx, rec.ID, now.Truncate(time.Microsecond))
	if errors.Is(err, rooms.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("touch session %s: %w", rec.ID, err)
	}
	return true, nil
}

// tokenHash is what the store keeps of a token: a database copy does not
// yield cookies that work.
func tokenHash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// newToken returns 256 random bits, base64url-encoded.
func newToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("read random session token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}
