package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"patientpass/hub/httpjson"
	"patientpass/rooms"
)

// The token endpoint of SMART Backend Services (SPEC §10): a registered
// client presents an assertion it signed (RFC 7523 client authentication)
// and receives a bearer token. Errors are RFC 6749 §5.2's.

// TokenPath is where clients ask for tokens; the assertion's audience is
// the public URL followed by it.
const TokenPath = "/oauth/token"

// Bounds of a token request. An assertion is a header, a few claims and a
// signature: an RS384 signature of a 4096-bit key is 683 characters, so 8
// KiB is ample, and the body holds little else. Failed requests per client
// address are throttled like failed logins: each costs a signature
// verification and a transaction, and a guessing client should not be able
// to make them without end. Successful requests are not counted.
const (
	maxTokenRequest         = 16 << 10
	maxAssertion            = 8 << 10
	tokenFailureWindow      = 15 * time.Minute
	maxTokenFailuresPerAddr = 50
	// notBeforeLeeway is how far a client's clock may run ahead of ours
	// before an assertion's nbf refuses it.
	notBeforeLeeway = time.Minute
)

const (
	grantClientCredentials = "client_credentials"
	assertionTypeJWT       = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
)

func tokenKey(addr string) string { return "oauth:" + addr }

// assertionAlgorithms are the only signatures accepted (SMART Backend
// Services): go-jose refuses any other alg, none and HS* included, before
// looking at a key.
var assertionAlgorithms = []jose.SignatureAlgorithm{jose.ES384, jose.RS384}

// tokenResponse is RFC 6749 §5.1's answer.
type tokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int    `json:"expires_in"`
	Scope       string `json:"scope"`
}

// oauthError is RFC 6749 §5.2's error: a code from its list and a
// description for the client's developer.
type oauthError struct {
	status      int
	Code        string `json:"error"`
	Description string `json:"error_description"`
	// retryAfter, in seconds, when throttled.
	retryAfter int
}

func badRequest(format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusBadRequest, Code: "invalid_request", Description: fmt.Sprintf(format, args...)}
}

func badClient(format string, args ...any) *oauthError {
	return &oauthError{status: http.StatusUnauthorized, Code: "invalid_client", Description: fmt.Sprintf(format, args...)}
}

// oauthErrorOf maps the service's refusal of a token request.
func oauthErrorOf(err error) *oauthError {
	var de *rooms.Error
	if !errors.As(err, &de) {
		return nil
	}
	switch {
	case de.Code == rooms.CodeUnauthenticated:
		return badClient("%s", de.Message)
	case de.Code == rooms.CodeInvalid && de.Field == "scope":
		return &oauthError{status: http.StatusBadRequest, Code: "invalid_scope", Description: de.Message}
	case de.Code == rooms.CodeInvalid:
		return badRequest("%s", de.Message)
	}
	return nil
}

func writeOAuth(w http.ResponseWriter, status int, v any) {
	// RFC 6749 §5.1: token responses are never cached.
	w.Header().Set("Pragma", "no-cache")
	httpjson.Write(w, status, v)
}

func (e *oauthError) write(w http.ResponseWriter) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	if e.status == http.StatusUnauthorized {
		// The client authenticated with an assertion, not a scheme of
		// HTTP's; RFC 6749 asks for a challenge with every 401.
		w.Header().Set("WWW-Authenticate", `Bearer realm="Patient Pass", error="invalid_client"`)
	}
	writeOAuth(w, e.status, e)
}

// tokenURL is the token endpoint's public URL: every assertion's audience.
func (a *Auth) tokenURL() string { return a.publicURL + TokenPath }

// token serves POST /oauth/token.
func (a *Auth) token(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	addr := httpjson.ClientAddr(r)
	// Every request is counted against its address before any work, and
	// forgiven when it gets a token: refusals, malformed requests among
	// them, are audited up to the limit, and past it counted but not
	// audited, so that no one can grow the audit trail without bound.
	res, err := a.reserve(ctx, []rooms.Limit{{Key: tokenKey(addr), Max: maxTokenFailuresPerAddr}}, tokenFailureWindow)
	if err != nil {
		a.serverError(w, r, err)
		return
	}
	if !res.Allowed {
		a.m.ThrottledToken.Inc()
		secs := max(int((res.RetryAfter+time.Second-1)/time.Second), 1)
		(&oauthError{status: http.StatusTooManyRequests, Code: "slow_down", retryAfter: secs,
			Description: "too many failed token requests from this address; try again in " + humanWait(secs)}).write(w)
		return
	}
	// forgive takes back the reservation of a request that was no guess.
	forgive := func() { _ = a.store.ForgiveAttempt(context.WithoutCancel(ctx), res.ID) }
	form, oerr := readTokenForm(w, r)
	if oerr != nil {
		a.svc.AuditTokenRefusal(ctx, nil, addr, oerr.Code)
		oerr.write(w)
		return
	}

	in, assertion, oerr, err := a.verifyAssertion(ctx, form, addr)
	if err != nil {
		forgive()
		a.serverError(w, r, err)
		return
	}
	if oerr != nil {
		oerr.write(w)
		return
	}
	issued, err := a.svc.IssueIntegrationToken(ctx, assertion, form.Get("scope"), addr)
	if err != nil {
		if oerr := oauthErrorOf(err); oerr != nil {
			oerr.write(w)
			return
		}
		forgive()
		a.serverError(w, r, err)
		return
	}
	forgive()
	a.log.Info().Str("client", in.ClientID).Int("scopes", len(issued.Scopes)).Msg("integration token issued")
	writeOAuth(w, http.StatusOK, tokenResponse{AccessToken: issued.AccessToken, TokenType: "bearer",
		ExpiresIn: int(issued.ExpiresIn / time.Second), Scope: strings.Join(issued.Scopes, " ")})
}

// serverError answers a failure of ours, logged once here.
func (a *Auth) serverError(w http.ResponseWriter, r *http.Request, err error) {
	a.log.Error().Err(err).Str("route", r.Pattern).Msg("token request failed")
	writeOAuth(w, http.StatusInternalServerError, &oauthError{Code: "server_error",
		Description: "something went wrong on our side; please try again"})
}

// readTokenForm reads a token request's form, within its bounds, and checks
// what needs no key: the grant and assertion types, and that each
// parameter is there once (RFC 6749 §3.2).
func readTokenForm(w http.ResponseWriter, r *http.Request) (url.Values, *oauthError) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, badRequest("send the token request as application/x-www-form-urlencoded")
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxTokenRequest))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, badRequest("the token request is larger than %d KiB", maxTokenRequest>>10)
		}
		return nil, badRequest("the token request could not be read")
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, badRequest("the token request is not a valid form")
	}
	for name, vs := range form {
		if len(vs) > 1 {
			return nil, badRequest("%s is given more than once", httpjson.Printable(name, 40))
		}
	}
	switch grant := form.Get("grant_type"); {
	case grant == "":
		return nil, badRequest("grant_type is required: client_credentials")
	case grant != grantClientCredentials:
		return nil, &oauthError{status: http.StatusBadRequest, Code: "unsupported_grant_type",
			Description: "only the client_credentials grant is supported"}
	}
	if form.Get("client_assertion_type") != assertionTypeJWT {
		return nil, badRequest("client_assertion_type must be %s", assertionTypeJWT)
	}
	switch assertion := form.Get("client_assertion"); {
	case assertion == "":
		return nil, badRequest("client_assertion is required: a JWT signed with one of the client's registered keys")
	case len(assertion) > maxAssertion:
		return nil, badRequest("client_assertion is longer than %d KiB", maxAssertion>>10)
	}
	return form, nil
}

// verifyAssertion checks the client's assertion: a JWT signed with ES384
// or RS384 by the key of the client's set its header's kid names, whose
// issuer and subject are the client and whose audience is this endpoint.
// The service checks its jti and expiry. A refusal is an oauthError, and
// audited; err is a failure of ours.
func (a *Auth) verifyAssertion(ctx context.Context, form url.Values, addr string) (rooms.Integration, rooms.Assertion, *oauthError, error) {
	var in *rooms.Integration
	refuse := func(reason string, oerr *oauthError) (rooms.Integration, rooms.Assertion, *oauthError, error) {
		a.svc.AuditTokenRefusal(ctx, in, addr, reason)
		return rooms.Integration{}, rooms.Assertion{}, oerr, nil
	}
	tok, err := jwt.ParseSigned(form.Get("client_assertion"), assertionAlgorithms)
	if err != nil {
		return refuse("malformed", badClient("client_assertion must be a JWT in compact form signed with ES384 or RS384"))
	}
	if len(tok.Headers) != 1 {
		return refuse("malformed", badClient("client_assertion must carry one signature"))
	}
	header := tok.Headers[0]
	var unverified jwt.Claims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return refuse("malformed", badClient("the assertion's claims are not a JSON object of JWT claims"))
	}
	live, err := a.svc.LiveIntegration(ctx, unverified.Issuer)
	if rooms.CodeOf(err) == rooms.CodeInternal {
		return rooms.Integration{}, rooms.Assertion{}, nil, err
	}
	if live.ClientID != "" {
		in = &live
	}
	if err != nil {
		return refuse("client", oauthErrorOf(err))
	}
	if header.KeyID == "" {
		return refuse("kid", badClient("the assertion's header needs the kid of the registered key that signed it"))
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(live.JWKS, &set); err != nil {
		return rooms.Integration{}, rooms.Assertion{}, nil, fmt.Errorf("parse the key set of integration %s: %w", live.ClientID, err)
	}
	keys := set.Key(header.KeyID)
	if len(keys) != 1 {
		return refuse("kid", badClient("no key with the assertion's kid is registered for this client"))
	}
	key := keys[0]
	switch k := key.Key.(type) {
	case *ecdsa.PublicKey:
		if header.Algorithm != string(jose.ES384) {
			return refuse("alg", badClient("the key named by kid is an EC key: sign with ES384"))
		}
	case *rsa.PublicKey:
		if header.Algorithm != string(jose.RS384) {
			return refuse("alg", badClient("the key named by kid is an RSA key: sign with RS384"))
		}
	default:
		return rooms.Integration{}, rooms.Assertion{}, nil, fmt.Errorf("integration %s has a key of type %T", live.ClientID, k)
	}
	var claims jwt.Claims
	if err := tok.Claims(key.Key, &claims); err != nil {
		return refuse("signature", badClient("the assertion's signature does not verify with the key its kid names"))
	}
	now := a.clock.Now()
	switch {
	case claims.Issuer != live.ClientID || claims.Subject != live.ClientID:
		return refuse("iss_sub", badClient("the assertion's iss and sub must both be the client_id"))
	case !claims.Audience.Contains(a.tokenURL()):
		return refuse("audience", badClient("the assertion's aud must be this token endpoint, %s", a.tokenURL()))
	case claims.Expiry == nil:
		return refuse("exp", badClient("the assertion needs an exp, at most five minutes ahead"))
	case claims.NotBefore != nil && claims.NotBefore.Time().After(now.Add(notBeforeLeeway)):
		return refuse("nbf", badClient("the assertion is not valid yet (nbf)"))
	case form.Get("client_id") != "" && form.Get("client_id") != live.ClientID:
		return refuse("client_id", badClient("client_id is not the assertion's issuer"))
	}
	return live, rooms.Assertion{ClientID: live.ClientID, ID: claims.ID, ExpiresAt: claims.Expiry.Time()}, nil, nil
}
