package hub_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/rs/zerolog"

	"patientpass/hub/auth"
	"patientpass/rooms"
)

// signingKey is a client's private key and the public JWK it registers.
type signingKey struct {
	kid string
	alg jose.SignatureAlgorithm
	key any // *ecdsa.PrivateKey or *rsa.PrivateKey
}

func (k signingKey) publicJWK(t *testing.T) map[string]any {
	t.Helper()
	var pub any
	switch p := k.key.(type) {
	case *ecdsa.PrivateKey:
		pub = &p.PublicKey
	case *rsa.PrivateKey:
		pub = &p.PublicKey
	}
	b, err := jose.JSONWebKey{Key: pub, KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Keys are made once: an RSA key takes a while, and nothing depends on
// which key a test signs with.
var (
	ecKey  = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	ecKey2 = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P384(), rand.Reader)) })
	p256   = sync.OnceValue(func() *ecdsa.PrivateKey { return mustKey(ecdsa.GenerateKey(elliptic.P256(), rand.Reader)) })
	rsaKey = sync.OnceValue(func() *rsa.PrivateKey { return mustKey(rsa.GenerateKey(rand.Reader, 2048)) })
)

func mustKey[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// claims are an assertion's claims for client, valid for four minutes
// from the server's clock.
func (e *env) claims(clientID, jti string) jwt.Claims {
	now := e.clock.Now()
	return jwt.Claims{Issuer: clientID, Subject: clientID, Audience: jwt.Audience{e.base + auth.TokenPath},
		ID: jti, IssuedAt: jwt.NewNumericDate(now), Expiry: jwt.NewNumericDate(now.Add(4 * time.Minute))}
}

// signAssertion signs claims with key as an assertion whose header names kid.
func signAssertion(t *testing.T, alg jose.SignatureAlgorithm, key any, kid string, claims any) string {
	t.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader(jose.HeaderKey("kid"), kid))
	if err != nil {
		t.Fatal(err)
	}
	s, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tokenForm is a token request carrying assertion.
func tokenForm(assertion string) url.Values {
	return url.Values{"grant_type": {"client_credentials"},
		"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
		"client_assertion":      {assertion}}
}

// postToken sends a token request, as a backend client does: no cookie,
// no Origin.
func (e *env) postToken(contentType, body string) response {
	e.t.Helper()
	resp, err := http.Post(e.base+auth.TokenPath, contentType, strings.NewReader(body))
	if err != nil {
		e.t.Fatalf("POST %s: %v", auth.TokenPath, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := response{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &res.body)
	return res
}

func (e *env) requestToken(form url.Values) response {
	e.t.Helper()
	return e.postToken("application/x-www-form-urlencoded", form.Encode())
}

func wantOAuthError(t *testing.T, what string, res response, status int, code string) {
	t.Helper()
	if res.status != status || res.body["error"] != code {
		t.Fatalf("%s = %d %s; want %d %s", what, res.status, res.raw, status, code)
	}
	if d, _ := res.body["error_description"].(string); d == "" {
		t.Fatalf("%s: no error_description: %s", what, res.raw)
	}
}

// registerClient registers a client with keys through the admin API and
// returns its id.
func registerClient(t *testing.T, admin *client, scopes []string, keys ...map[string]any) string {
	t.Helper()
	res := admin.do("POST", "/api/admin/integrations", map[string]any{"name": "Trust EPR", "jwks": map[string]any{"keys": keys}, "scopes": scopes})
	wantStatus(t, "register a client", res, 201)
	id, _ := res.body["client_id"].(string)
	if id == "" {
		t.Fatalf("no client_id: %s", res.raw)
	}
	return id
}

// otherNode is a second node's authentication over the same store: it
// shares no memory with the server's, so what it sees is what the store
// says.
func (e *env) otherNode(t *testing.T) *auth.Auth {
	t.Helper()
	public, _ := url.Parse(e.base)
	svc := rooms.NewService(rooms.Config{Store: e.store, Clock: e.clock, Node: "other"})
	a, err := auth.New(auth.Config{Service: svc, Store: e.store, Clock: e.clock, Logger: zerolog.New(io.Discard),
		Metrics: e.metrics, Public: public, SessionKeys: e.cfg.SessionKeys, Ender: e.rt})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// bearerOn resolves a header as the FHIR API would, on node a.
func bearerOn(a *auth.Auth, header string) (rooms.Caller, error) {
	r := httptest.NewRequest("GET", "/fhir/R4/ServiceRequest", nil)
	if header != "" {
		r.Header.Set("Authorization", header)
	}
	return a.Bearer(r)
}

func TestIntegratorsEndToEnd(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		ctx := context.Background()
		_, admin, _ := e.enrolledAdmin("RET")
		ec := signingKey{"ec-1", jose.ES384, ecKey()}
		rs := signingKey{"rsa-1", jose.RS384, rsaKey()}

		// Registration: bad input names its field and stores nothing.
		good := map[string]any{"name": "Trust EPR", "jwks": map[string]any{"keys": []any{ec.publicJWK(t)}}, "scopes": []string{"system/*.read"}}
		for _, c := range []struct {
			what  string
			body  any
			field string
		}{
			{"no name", withField(good, "name", ""), "name"},
			{"a private key", withField(good, "jwks", map[string]any{"keys": []any{withField(ec.publicJWK(t), "d", "AAAA")}}), "jwks.keys[0].d"},
			{"a P-256 key", withField(good, "jwks", map[string]any{"keys": []any{withField(signingKey{"p", jose.ES256, p256()}.publicJWK(t), "alg", nil)}}), "jwks.keys[0].crv"},
			{"a write scope", withField(good, "scopes", []string{"system/*.write"}), "scopes[0]"},
			{"an unknown field", withField(good, "secret", "x"), "secret"},
		} {
			wantError(t, c.what, admin.do("POST", "/api/admin/integrations", c.body), 400, "invalid", c.field)
		}
		clinician := e.login(e.user("RET", rooms.UserActive, rooms.RoleSpecialist).Email)
		wantError(t, "a specialist registers", clinician.do("POST", "/api/admin/integrations", good), 403, "forbidden", "")
		if res := admin.do("GET", "/api/admin/integrations", nil); res.status != 200 || len(res.body["integrations"].([]any)) != 0 {
			t.Fatalf("after refusals: %d %s", res.status, res.raw)
		}

		ecID := registerClient(t, admin, []string{"system/*.read"}, ec.publicJWK(t))
		rsID := registerClient(t, admin, []string{"system/ServiceRequest.read", "system/Task.read"}, rs.publicJWK(t))
		res := admin.do("GET", "/api/admin/integrations", nil)
		if res.status != 200 || len(res.body["integrations"].([]any)) != 2 {
			t.Fatalf("list: %d %s", res.status, res.raw)
		}

		// Each client signs an assertion and gets a token.
		node := e.otherNode(t)
		tokens := map[string]string{}
		for _, c := range []struct {
			id   string
			key  signingKey
			want string
		}{{ecID, ec, "system/*.read"}, {rsID, rs, "system/ServiceRequest.read system/Task.read"}} {
			res := e.requestToken(tokenForm(signAssertion(t, c.key.alg, c.key.key, c.key.kid, e.claims(c.id, "jti-"+c.key.kid))))
			if res.status != 200 || res.body["token_type"] != "bearer" || res.body["expires_in"] != float64(300) || res.body["scope"] != c.want {
				t.Fatalf("%s token: %d %s", c.key.alg, res.status, res.raw)
			}
			if res.header.Get("Cache-Control") != "no-store" {
				t.Errorf("token response cacheable: %v", res.header)
			}
			tok := res.body["access_token"].(string)
			caller, err := bearerOn(node, "Bearer "+tok)
			if err != nil || caller.Integration == nil || caller.Integration.ClientID != c.id || caller.User.Organisation != "RET" {
				t.Fatalf("%s token's caller on another node: %+v, %v", c.key.alg, caller, err)
			}
			tokens[c.id] = tok
		}
		// A narrower scope, and one not granted.
		res = e.requestToken(withParam(tokenForm(signAssertion(t, rs.alg, rs.key, rs.kid, e.claims(rsID, "jti-narrow"))), "scope", "system/Task.read"))
		if res.status != 200 || res.body["scope"] != "system/Task.read" {
			t.Fatalf("narrowed token: %d %s", res.status, res.raw)
		}
		wantOAuthError(t, "a scope not granted", e.requestToken(withParam(tokenForm(signAssertion(t, rs.alg, rs.key, rs.kid, e.claims(rsID, "jti-wide"))),
			"scope", "system/Patient.read")), 400, "invalid_scope")

		// The token reads what its organisation receives.
		referrer := e.login(e.user("RJR", rooms.UserActive, rooms.RoleClinician).Email)
		res = referrer.do("POST", "/api/referrals", referralBody("r1"))
		wantStatus(t, "create referral", res, 201)
		referralID := res.body["id"].(string)
		caller, _ := bearerOn(node, "Bearer "+tokens[ecID])
		if _, err := e.svc.Referral(ctx, caller, referralID); err != nil {
			t.Fatalf("the receiving organisation's integrator reads its referral: %v", err)
		}
		_, rblAdmin, _ := e.enrolledAdmin("RBL")
		rblKey := signingKey{"rbl-1", jose.ES384, ecKey2()}
		rblID := registerClient(t, rblAdmin, []string{"system/*.read"}, rblKey.publicJWK(t))
		res = e.requestToken(tokenForm(signAssertion(t, rblKey.alg, rblKey.key, rblKey.kid, e.claims(rblID, "jti-rbl"))))
		wantStatus(t, "RBL token", res, 200)
		rbl, _ := bearerOn(node, "Bearer "+res.body["access_token"].(string))
		if _, err := e.svc.Referral(ctx, rbl, referralID); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Fatalf("another organisation's integrator reads the referral: %v", err)
		}
		if _, err := e.svc.PostMessage(ctx, caller, rooms.PostMessage{Ref: "m1", ReferralID: referralID, Body: "hi"}); rooms.CodeOf(err) != rooms.CodeForbidden {
			t.Fatalf("an integrator posts a message: %v", err)
		}

		// Every bad assertion is refused as invalid_client.
		now := e.clock.Now()
		expired := e.claims(ecID, "jti-expired")
		expired.Expiry = jwt.NewNumericDate(now.Add(-time.Second))
		far := e.claims(ecID, "jti-far")
		far.Expiry = jwt.NewNumericDate(now.Add(6 * time.Minute))
		noExp := e.claims(ecID, "jti-noexp")
		noExp.Expiry = nil
		wrongAud := e.claims(ecID, "jti-aud")
		wrongAud.Audience = jwt.Audience{"https://elsewhere.example/oauth/token"}
		wrongSub := e.claims(ecID, "jti-sub")
		wrongSub.Subject = rsID
		noJTI := e.claims(ecID, "")
		future := e.claims(ecID, "jti-nbf")
		future.NotBefore = jwt.NewNumericDate(now.Add(2 * time.Minute))
		unknown := e.claims(rooms.NewID(), "jti-unknown")
		for _, c := range []struct {
			what      string
			assertion string
		}{
			{"a replayed jti", signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(ecID, "jti-ec-1"))},
			{"an expired assertion", signAssertion(t, ec.alg, ec.key, ec.kid, expired)},
			{"exp over five minutes ahead", signAssertion(t, ec.alg, ec.key, ec.kid, far)},
			{"no exp", signAssertion(t, ec.alg, ec.key, ec.kid, noExp)},
			{"the wrong audience", signAssertion(t, ec.alg, ec.key, ec.kid, wrongAud)},
			{"sub not the client", signAssertion(t, ec.alg, ec.key, ec.kid, wrongSub)},
			{"no jti", signAssertion(t, ec.alg, ec.key, ec.kid, noJTI)},
			{"nbf in the future", signAssertion(t, ec.alg, ec.key, ec.kid, future)},
			{"an unknown client", signAssertion(t, ec.alg, ec.key, ec.kid, unknown)},
			{"an unknown kid", signAssertion(t, ec.alg, ec.key, "ec-9", e.claims(ecID, "jti-kid"))},
			{"no kid", signAssertion(t, ec.alg, ec.key, "", e.claims(ecID, "jti-nokid"))},
			{"another key under the client's kid", signAssertion(t, ec.alg, ecKey2(), ec.kid, e.claims(ecID, "jti-forged"))},
			{"RS384 under an EC key's kid", signAssertion(t, jose.RS384, rsaKey(), ec.kid, e.claims(ecID, "jti-rs-ec"))},
			{"ES256", signAssertion(t, jose.ES256, p256(), ec.kid, e.claims(ecID, "jti-es256"))},
			{"RS256", signAssertion(t, jose.RS256, rsaKey(), rs.kid, e.claims(rsID, "jti-rs256"))},
			{"HS384 keyed with the public key", signAssertion(t, jose.HS384, []byte(ec.publicJWK(t)["x"].(string)), ec.kid, e.claims(ecID, "jti-hs"))},
			{"alg none", unsigned(t, ec.kid, e.claims(ecID, "jti-none"))},
			{"not a JWT", "not.a.jwt"},
		} {
			wantOAuthError(t, c.what, e.requestToken(tokenForm(c.assertion)), 401, "invalid_client")
		}
		// A client_id that is not the assertion's issuer.
		wantOAuthError(t, "another client_id", e.requestToken(withParam(tokenForm(signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(ecID, "jti-cid"))),
			"client_id", rsID)), 401, "invalid_client")

		// Malformed requests are invalid_request (or unsupported_grant_type),
		// never a failure of ours.
		valid := tokenForm(signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(ecID, "jti-form")))
		for _, c := range []struct {
			what, contentType, body string
			code                    string
		}{
			{"JSON", "application/json", `{"grant_type":"client_credentials"}`, "invalid_request"},
			{"no content type", "", valid.Encode(), "invalid_request"},
			{"no grant_type", "application/x-www-form-urlencoded", withParam(valid, "grant_type", "").Encode(), "invalid_request"},
			{"the password grant", "application/x-www-form-urlencoded", withParam(valid, "grant_type", "password").Encode(), "unsupported_grant_type"},
			{"no assertion type", "application/x-www-form-urlencoded", withParam(valid, "client_assertion_type", "").Encode(), "invalid_request"},
			{"no assertion", "application/x-www-form-urlencoded", withParam(valid, "client_assertion", "").Encode(), "invalid_request"},
			{"a parameter twice", "application/x-www-form-urlencoded", valid.Encode() + "&grant_type=client_credentials", "invalid_request"},
			{"a bad form", "application/x-www-form-urlencoded", "grant_type=%zz", "invalid_request"},
			{"an assertion over 8 KiB", "application/x-www-form-urlencoded", withParam(valid, "client_assertion", strings.Repeat("a", 8<<10+1)).Encode(), "invalid_request"},
			{"a body over 16 KiB", "application/x-www-form-urlencoded", valid.Encode() + "&pad=" + strings.Repeat("a", 16<<10), "invalid_request"},
		} {
			wantOAuthError(t, c.what, e.postToken(c.contentType, c.body), 400, c.code)
		}
		// None of that used the assertion's jti.
		wantStatus(t, "the assertion after malformed requests", e.requestToken(valid), 200)

		// Revocation ends the client's token on its very next use, on
		// every node, and its next token request.
		res = admin.do("DELETE", "/api/admin/integrations/"+ecID, nil)
		wantStatus(t, "revoke", res, 200)
		if _, err := bearerOn(node, "Bearer "+tokens[ecID]); rooms.CodeOf(err) != rooms.CodeUnauthenticated {
			t.Fatalf("a revoked client's token on another node: %v", err)
		}
		wantOAuthError(t, "a revoked client's token request", e.requestToken(tokenForm(signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(ecID, "jti-after")))), 401, "invalid_client")
		wantError(t, "revoke again", admin.do("DELETE", "/api/admin/integrations/"+ecID, nil), 404, "not_found", "")
		wantError(t, "another organisation revokes", rblAdmin.do("DELETE", "/api/admin/integrations/"+rsID, nil), 404, "not_found", "")
		if _, err := bearerOn(node, "Bearer "+tokens[rsID]); err != nil {
			t.Fatalf("the other client's token stopped working: %v", err)
		}
		// A token ends five minutes after it was issued.
		e.clock.Advance(5 * time.Minute)
		if _, err := bearerOn(node, "Bearer "+tokens[rsID]); rooms.CodeOf(err) != rooms.CodeUnauthenticated {
			t.Fatalf("an expired token: %v", err)
		}
		for _, h := range []string{"", "Basic " + base64.StdEncoding.EncodeToString([]byte("a:b")), "Bearer", "Bearer nonsense"} {
			if _, err := bearerOn(node, h); rooms.CodeOf(err) != rooms.CodeUnauthenticated {
				t.Fatalf("Authorization %q: %v", h, err)
			}
		}

		// Everything was audited, and no audit entry holds a token or an
		// assertion.
		issued := e.audit(rooms.AuditFilter{Event: rooms.EventIntegrationToken, Outcome: rooms.OutcomeSuccess})
		refused := e.audit(rooms.AuditFilter{Event: rooms.EventIntegrationToken, Outcome: rooms.OutcomeDenied})
		if len(issued) != 5 || len(refused) != 31 {
			t.Fatalf("audited %d issued and %d refused tokens; want 5 and 31", len(issued), len(refused))
		}
		for _, entry := range e.audit(rooms.AuditFilter{Limit: 1000}) {
			for _, secret := range []string{tokens[ecID], tokens[rsID], valid.Get("client_assertion")[:40], "jti-"} {
				if strings.Contains(entry.Detail, secret) {
					t.Fatalf("audit entry %s holds a secret: %q", entry.Event, entry.Detail)
				}
			}
		}
		if got := e.audit(rooms.AuditFilter{Event: rooms.EventIntegrationAccess, Outcome: rooms.OutcomeDenied}); len(got) != 6 {
			t.Fatalf("%d bearer refusals audited; want 6", len(got))
		}
	})
}

// unsigned is an assertion with alg none.
func unsigned(t *testing.T, kid string, claims jwt.Claims) string {
	t.Helper()
	header, _ := json.Marshal(map[string]string{"alg": "none", "kid": kid, "typ": "JWT"})
	payload, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding.EncodeToString
	return enc(header) + "." + enc(payload) + "."
}

func withField(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for name, x := range m {
		out[name] = x
	}
	out[k] = v
	return out
}

// withParam is form with one parameter set (deleted when v is empty).
func withParam(form url.Values, k, v string) url.Values {
	out := url.Values{}
	for name, vs := range form {
		out[name] = vs
	}
	if v == "" {
		out.Del(k)
	} else {
		out.Set(k, v)
	}
	return out
}

// concurrently sends n token requests at once and counts the answers by
// status.
func (e *env) concurrently(n int, form func(i int) url.Values) map[int]int {
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		statuses = map[int]int{}
		start    = make(chan struct{})
	)
	bodies := make([]string, n)
	for i := range n {
		bodies[i] = form(i).Encode()
	}
	for i := range n {
		wg.Go(func() {
			<-start
			resp, err := http.Post(e.base+auth.TokenPath, "application/x-www-form-urlencoded", strings.NewReader(bodies[i]))
			if err != nil {
				e.t.Errorf("token request: %v", err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			mu.Lock()
			statuses[resp.StatusCode]++
			mu.Unlock()
		})
	}
	close(start)
	wg.Wait()
	return statuses
}

func TestTokenAssertionIsUsedOnceUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		_, admin, _ := e.enrolledAdmin("RET")
		ec := signingKey{"ec-1", jose.ES384, ecKey()}
		id := registerClient(t, admin, []string{"system/*.read"}, ec.publicJWK(t))
		assertion := signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(id, "jti-once"))
		got := e.concurrently(40, func(int) url.Values { return tokenForm(assertion) })
		if got[200] != 1 || got[401] != 39 {
			t.Fatalf("one assertion presented 40 times at once: statuses %v; want one 200 and 39 401", got)
		}
		// Forty fresh assertions at once all succeed, once the window of the
		// 39 failures has passed: a request is counted while it is checked.
		e.clock.Advance(15 * time.Minute)
		got = e.concurrently(40, func(i int) url.Values {
			return tokenForm(signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(id, "jti-"+string(rune('A'+i)))))
		})
		if got[200] != 40 {
			t.Fatalf("40 fresh assertions at once: statuses %v; want 40 200", got)
		}
	})
}

func TestTokenRequestsAreThrottledPerAddress(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		_, admin, _ := e.enrolledAdmin("RET")
		ec := signingKey{"ec-1", jose.ES384, ecKey()}
		id := registerClient(t, admin, []string{"system/*.read"}, ec.publicJWK(t))
		// Oversized requests are refused, and count against the address
		// as every refusal does.
		got := e.concurrently(20, func(i int) url.Values {
			if i%2 == 0 {
				return tokenForm(strings.Repeat("a", 8<<10+1))
			}
			return withParam(tokenForm("x"), "pad", strings.Repeat("a", 16<<10))
		})
		if got[400] != 20 {
			t.Fatalf("20 oversized requests at once: statuses %v; want twenty 400", got)
		}
		// Forty forged assertions at once: the address has room for fifty
		// refusals in its window, thirty left, and no more get through to
		// be verified.
		got = e.concurrently(40, func(i int) url.Values {
			return tokenForm(signAssertion(t, ec.alg, ecKey2(), ec.kid, e.claims(id, "jti-forged-"+string(rune('A'+i)))))
		})
		if got[401] != 30 || got[429] != 10 {
			t.Fatalf("40 forged assertions at once: statuses %v; want thirty 401 and ten 429", got)
		}
		res := e.requestToken(tokenForm(signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(id, "jti-good"))))
		wantOAuthError(t, "a good assertion from the throttled address", res, 429, "slow_down")
		if res.header.Get("Retry-After") == "" {
			t.Fatal("no Retry-After")
		}
		// The refusals within the limit are audited; the throttled ones are
		// counted, so the audit trail grows by at most the limit.
		if got := e.audit(rooms.AuditFilter{Event: rooms.EventIntegrationToken, Outcome: rooms.OutcomeDenied}); len(got) != 50 {
			t.Fatalf("%d refusals audited; want 50", len(got))
		}
		if n := e.metric(`patientpass_auth_throttled_total{what="token"}`); n != 11 {
			t.Fatalf("%v throttled token requests counted; want 11", n)
		}
		// The window passes, and the client gets its token.
		e.clock.Advance(15 * time.Minute)
		wantStatus(t, "after the window", e.requestToken(tokenForm(signAssertion(t, ec.alg, ec.key, ec.kid, e.claims(id, "jti-later")))), 200)
	})
}
