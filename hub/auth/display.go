package auth

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// A wall screen's access (SPEC §9): GET /display?token=… sets a display
// cookie holding the display's token and redirects to the wallboard page.
// The cookie lets in nothing but the wallboard, the system notice and the
// WebSocket (where only the wallboard and system topics subscribe, and
// every command is refused). A display has no idle or absolute timeout —
// a screen on a wall has nobody to log it in again — and lives until an
// admin revokes it, which closes its sockets on every node.

// displayRoutes are the routes a display may use.
var displayRoutes = map[string]bool{
	"GET /api/wallboard":     true,
	"GET /api/system-status": true,
	"GET /ws":                true,
}

// displayRecheck is how often a display's socket reads its display again,
// besides being closed at once when revoked: should the revocation's
// broadcast be lost (a broker outage), a revoked screen is cut off within
// this.
const displayRecheck = time.Minute

// displayCookieMaxAge is as long as browsers keep a cookie (400 days).
const displayCookieMaxAge = 400 * 24 * 60 * 60

// WallboardPage is where a display is sent once its cookie is set.
const WallboardPage = "/wallboard"

// displayTokenPrefix marks the token hash of a display's session record,
// so the transport's session checks read the display.
const displayTokenPrefix = "display:"

func (a *Auth) displayCookieName() string {
	if a.sessions.secure {
		return "__Host-pp_display"
	}
	return "pp_display"
}

// display returns the live display whose token the request's display
// cookie holds.
func (a *Auth) display(r *http.Request) (rooms.Display, string, bool) {
	ck, err := r.Cookie(a.displayCookieName())
	if err != nil || ck.Value == "" || len(ck.Value) > 200 {
		return rooms.Display{}, "", false
	}
	d, err := a.svc.DisplayByToken(r.Context(), ck.Value)
	if err != nil {
		return rooms.Display{}, "", false
	}
	return d, ck.Value, true
}

// serveDisplay serves a request carrying a display's cookie: the display
// routes, with the display as caller; every other route is refused and
// audited.
func (a *Auth) serveDisplay(w http.ResponseWriter, r *http.Request, d rooms.Display, h HandlerFunc) {
	c := rooms.DisplayCaller(d, httpjson.ClientAddr(r))
	if !displayRoutes[r.Pattern] {
		_ = a.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "access", nil, rooms.OutcomeDenied,
			"display route="+httpjson.Printable(r.Pattern, 100))
		httpjson.Error(w, rooms.Forbidden("a wallboard display can only show the wallboard"))
		return
	}
	h(w, r, c)
}

// displaySession is the session record a display's socket keeps.
func displaySession(d rooms.Display, token string, now time.Time) rooms.Session {
	return rooms.Session{ID: rooms.DisplayPrefix + d.ID, TokenHash: displayTokenPrefix + rooms.HashDisplayToken(token),
		UserID: rooms.DisplayPrefix + d.ID, CreatedAt: now, LastSeenAt: now}
}

func isDisplaySession(rec rooms.Session) bool {
	return strings.HasPrefix(rec.TokenHash, displayTokenPrefix)
}

// lookupDisplay reads a display's session record again; rooms.ErrNotFound
// once it is revoked.
func (a *Auth) lookupDisplay(ctx context.Context, rec string) (rooms.Session, error) {
	d, err := a.store.DisplayByTokenHash(ctx, strings.TrimPrefix(rec, displayTokenPrefix))
	if err != nil {
		return rooms.Session{}, err
	}
	if d.RevokedAt != nil {
		return rooms.Session{}, fmt.Errorf("display %s revoked: %w", d.ID, rooms.ErrNotFound)
	}
	now := a.clock.Now()
	return rooms.Session{ID: rooms.DisplayPrefix + d.ID, TokenHash: rec, UserID: rooms.DisplayPrefix + d.ID, CreatedAt: now, LastSeenAt: now}, nil
}

// startDisplay serves GET /display?token=…: a live token sets the display
// cookie and goes to the wallboard page; anything else is told plainly.
func (a *Auth) startDisplay(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("token")
	caller := rooms.Caller{ClientAddr: httpjson.ClientAddr(r)}
	var d rooms.Display
	err := error(rooms.NotFound("display"))
	if token != "" && len(token) <= 200 {
		d, err = a.svc.DisplayByToken(r.Context(), token)
	}
	if err != nil {
		_ = a.svc.AuditCaller(r.Context(), caller, rooms.ActionExecute, "display.start", nil, rooms.OutcomeDenied, "not_found")
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, "This display link is not valid: it was revoked or mistyped. Ask your Patient Pass admin for a new one.")
		return
	}
	c := rooms.DisplayCaller(d, caller.ClientAddr)
	_ = a.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "display.start", nil, rooms.OutcomeSuccess, "display="+d.ID)
	http.SetCookie(w, &http.Cookie{Name: a.displayCookieName(), Value: token, Path: "/", MaxAge: displayCookieMaxAge,
		HttpOnly: true, Secure: a.sessions.secure, SameSite: http.SameSiteLaxMode})
	// The token must not stay in the address bar, the history or a
	// Referer.
	w.Header().Set("Referrer-Policy", "no-referrer")
	http.Redirect(w, r, WallboardPage, http.StatusSeeOther)
}
