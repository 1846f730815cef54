package hub

import (
	"net/http"

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
	origin := s.public.Scheme + "://" + s.public.Host
	if err := cop.AddTrustedOrigin(origin); err != nil {
		// NewServer has validated the URL; this cannot happen.
		panic("trust public origin " + origin + ": " + err.Error())
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Client misbehaviour, or an attack on a user's browser: worth
		// knowing about, not an error of ours.
		s.log.Info().Str("method", r.Method).Str("path", r.URL.Path).Str("client", clientAddr(r)).
			Str("origin", r.Header.Get("Origin")).Msg("cross-origin request refused")
		writeError(w, rooms.Forbidden("this request came from another website and was refused; use Patient Pass directly"))
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
		protected.ServeHTTP(w, r)
	})
}
