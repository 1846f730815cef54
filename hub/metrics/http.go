package metrics

import (
	"net/http"
	"time"
)

// unmatched is the route label of a request no pattern matched (404, 405,
// the mux's own redirects). The raw path is never used: it holds ids.
const unmatched = "unmatched"

// Middleware records each request's duration in
// patientpass_http_request_duration_seconds, labelled by method, by the
// ServeMux pattern that matched it (as "POST /api/referrals") and by status
// class.
//
// next should be the *http.ServeMux itself, with any middleware that
// replaces the request (r.WithContext, r.Clone) outside this one: the mux
// sets Pattern on the request it is handed, and that is the request this
// middleware reads once next returns. Placed further out, every request is
// counted as "unmatched" — less precise, never a path.
//
// A WebSocket upgrade is timed until it writes its 101, not for the life of
// the socket, which would swamp the histogram. The response writer passed on
// unwraps (Unwrap) to the server's, so http.ResponseController and
// coder/websocket still find its Hijacker and Flusher.
func (m *Metrics) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.now()
		rec := &statusRecorder{ResponseWriter: w, now: m.now}
		next.ServeHTTP(rec, r)
		end := rec.upgradedAt
		if end.IsZero() {
			end = m.now()
		}
		route := r.Pattern
		if route == "" {
			route = unmatched
		}
		m.requestDuration.WithLabelValues(methodLabel(r.Method), route, codeClass(rec.status)).
			Observe(end.Sub(start).Seconds())
	})
}

// statusRecorder notes the final status a handler writes. It implements
// only what it must observe; everything else (Flush, Hijack, deadlines) is
// reached through Unwrap.
type statusRecorder struct {
	http.ResponseWriter
	status     int       // 0 until the final status is written
	upgradedAt time.Time // when a 101 was written; zero otherwise
	now        func() time.Time
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		switch {
		case code == http.StatusSwitchingProtocols:
			r.status, r.upgradedAt = code, r.now()
		case code >= 200:
			r.status = code
		}
		// Other 1xx (103 Early Hints) are interim: the final status follows.
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the server's writer, for Flush,
// Hijack and the deadlines.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// methodLabel bounds the method label: a client may send any token as a
// method, and each would be a new series.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "other"
}

// codeClass is the status class: "2xx" for 200 to 299. A handler that
// wrote nothing was answered 200 by net/http; a status that was written
// directly to an unwrapped writer (a Flush before any Write) is the same.
func codeClass(status int) string {
	switch {
	case status == 0:
		return "2xx"
	case status >= 100 && status < 600:
		return classes[status/100-1]
	}
	return "other"
}

var classes = [...]string{"1xx", "2xx", "3xx", "4xx", "5xx"}
