package auth

import (
	"net/http"
	"strings"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// Bearer resolves a request's "Authorization: Bearer <token>" to the
// integrator the token was issued to (rooms.IntegrationCaller), for the
// FHIR API. The token and its client are read from the store on every
// request, so a revocation on any node holds from the next one. A missing,
// malformed, expired or revoked token is a *rooms.Error with code
// unauthenticated, and audited; any other error is a failure of ours.
func (a *Auth) Bearer(r *http.Request) (rooms.Caller, error) {
	token, _ := bearerToken(r.Header.Values("Authorization"))
	// An empty token is refused, and audited, by the service like any other
	// that is not one.
	return a.svc.IntegrationCallerByToken(r.Context(), token, httpjson.ClientAddr(r))
}

// bearerToken returns the token of the request's one Authorization header
// when it is of the Bearer scheme (RFC 6750 §2.1; the scheme's name is
// case-insensitive).
func bearerToken(values []string) (string, bool) {
	if len(values) != 1 {
		return "", false
	}
	scheme, token, ok := strings.Cut(values[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
