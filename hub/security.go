package hub

import (
	"net/http"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// contentSecurityPolicy allows only the UI's own scripts, styles and
// connections: no inline script, so an injected <script> does not run, and
// no framing, so the UI cannot be overlaid by another site (clickjacking).
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// secure wraps h with the security headers every response carries and with
// cross-origin request protection on every state-changing request.
// http.CrossOriginProtection lets GET, HEAD and OPTIONS through by design;
// those routes change nothing.
func (s *Server) secure(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	// The public URL is trusted explicitly: behind a proxy the Host the
	// server sees may differ from the origin browsers use.
	origin := s.origin()
	if err := cop.AddTrustedOrigin(origin); err != nil {
		// NewServer has validated the URL; this cannot happen.
		panic("trust public origin " + origin + ": " + err.Error())
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Client misbehaviour, or an attack on a user's browser: worth
		// knowing about, not an error of ours.
		s.log.Info().Str("method", r.Method).Str("path", httpjson.Printable(r.URL.Path, 200)).Str("client", httpjson.ClientAddr(r)).
			Msg("cross-origin request refused")
		// Audited against the user whose cookie came with it, if any:
		// that is what a cross-site request forgery looks like.
		c, ok := s.auth.Identify(r)
		if !ok {
			c = rooms.Caller{ClientAddr: httpjson.ClientAddr(r)}
		}
		_ = s.svc.AuditCaller(r.Context(), c, rooms.ActionExecute, "http.request", nil, rooms.OutcomeDenied,
			"cross_origin origin="+httpjson.Printable(r.Header.Get("Origin"), 200)+" method="+httpjson.Printable(r.Method, 16))
		httpjson.Error(w, rooms.Forbidden("this request came from another website and was refused; use Patient Pass directly"))
	}))
	protected := cop.Handler(h)
	hsts := s.public.Scheme == "https"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		if hsts {
			// Only over https: on http the header is ignored, and sending it
			// from a development server would be misleading.
			hd.Set("Strict-Transport-Security", "max-age=63072000; includeSubDomains")
		}
		// No route takes a body larger than a JSON request may be.
		r.Body = http.MaxBytesReader(w, r.Body, httpjson.MaxBody)
		// Handlers log through the request's context (httpjson.Fail).
		protected.ServeHTTP(w, r.WithContext(s.log.WithContext(r.Context())))
	})
}
