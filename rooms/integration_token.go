package rooms

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// The lifetimes of SMART Backend Services: an assertion may be at most five
// minutes from expiring when it is presented, and the token it buys lasts
// five minutes. A short token is what makes a stolen one of little use; the
// client asks for a new one with a fresh assertion.
const (
	IntegrationTokenLifetime = 5 * time.Minute
	MaxAssertionLifetime     = 5 * time.Minute
	// MaxAssertionIDLen bounds a jti: it is stored until its assertion
	// expires.
	MaxAssertionIDLen = 255
	// MaxScopeRequest bounds the scope parameter of a token request.
	MaxScopeRequest = 1000
	// maxIntegrationTokenLen is more than a token this service issues is
	// long (rand.Text twice: 52 characters).
	maxIntegrationTokenLen = 128
)

// The audit events of integrators' tokens.
const (
	EventIntegrationToken  = "integration.token"
	EventIntegrationAccess = "integration.access"
)

// HashIntegrationToken is what the store keeps of an access token.
func HashIntegrationToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Assertion is what the token endpoint has verified of a client's signed
// assertion: its signature by one of the client's keys, that it names the
// client as issuer and subject, and that its audience is the endpoint. The
// service checks the rest: the client is live, the jti is new, the expiry
// is near.
type Assertion struct {
	ClientID  string
	ID        string // the jti claim
	ExpiresAt time.Time
}

// IssuedToken is an access token as the client receives it, once.
type IssuedToken struct {
	AccessToken string
	Scopes      []string
	ExpiresIn   time.Duration
}

// errBadAssertion is the refusal of a client's assertion; reason goes to
// the audit entry, the message to the client.
func errBadAssertion(format string, args ...any) *Error {
	return &Error{Code: CodeUnauthenticated, Field: "client_assertion", Message: fmt.Sprintf(format, args...)}
}

// Refused bearer tokens are throttled per client address: a client that
// has lost its token gets a new one; what keeps guessing is refused.
const (
	maxBadTokensPerAddr = 50
	badTokenWindow      = 15 * time.Minute
)

func badTokenKey(addr string) string { return "bearer:" + addr }

// errBadTokensThrottled refuses the bearer tokens of an address that has
// presented too many bad ones.
var errBadTokensThrottled = &Error{Code: CodeRateLimited,
	Message: "too many bad bearer tokens from this address; wait 15 minutes, then get a new token at /oauth/token"}

// errBadToken is the one refusal of a bearer token, whatever is wrong with
// it: an expired, revoked and made-up token are told apart only in the
// audit trail.
var errBadToken = &Error{Code: CodeUnauthenticated,
	Message: "the bearer token is not valid: it has expired, its client was revoked, or it was never issued; get a new one at /oauth/token"}

// LiveIntegration returns the client an assertion names, for the token
// endpoint to verify the assertion's signature with its keys. A client that
// does not exist or was revoked is an unauthenticated error; the endpoint
// audits the refusal.
func (s *Service) LiveIntegration(ctx context.Context, clientID string) (Integration, error) {
	// One answer for an unknown and a revoked client: the issuer is read
	// before the signature is checked, so the answer must not tell anyone
	// which client ids exist (the audit entry says which it was).
	const notLive = "the assertion's issuer is not a registered client, or its registration was revoked"
	if !isID(clientID) {
		return Integration{}, errBadAssertion(notLive)
	}
	in, err := s.store.Integration(ctx, clientID)
	if errors.Is(err, ErrNotFound) {
		return Integration{}, errBadAssertion(notLive)
	}
	if err != nil {
		return Integration{}, fmt.Errorf("read integration %s: %w", clientID, err)
	}
	if in.RevokedAt != nil {
		return in, errBadAssertion(notLive)
	}
	return in, nil
}

// AuditTokenRefusal records a refused token request: of the client when
// one is known (in not nil), anonymously otherwise. reason is a fixed word
// of the endpoint's ("signature", "audience"), never a claim's value.
func (s *Service) AuditTokenRefusal(ctx context.Context, in *Integration, clientAddr, reason string) {
	c := Caller{ClientAddr: clientAddr}
	if in != nil {
		c = IntegrationCaller(*in, nil, clientAddr)
	}
	_ = s.AuditCaller(context.WithoutCancel(ctx), c, ActionCreate, EventIntegrationToken, nil, OutcomeDenied, "reason="+auditSafe(reason))
}

// grantedScopes returns the scopes a token request asks for: those of
// requested (space-separated), each one the client holds, or all the
// client's when requested is empty.
func grantedScopes(in Integration, requested string) ([]string, error) {
	if len(requested) > MaxScopeRequest {
		return nil, Invalid("scope", "the scope parameter is longer than %d characters", MaxScopeRequest)
	}
	asked := strings.Fields(requested)
	if len(asked) == 0 {
		return slices.Clone(in.Scopes), nil
	}
	var out []string
	for _, sc := range asked {
		if !slices.Contains(in.Scopes, sc) {
			if !isCleanText(sc) || len(sc) > 100 {
				return nil, Invalid("scope", "a scope asked for was not granted to this client")
			}
			return nil, Invalid("scope", "%q was not granted to this client; it holds %s", sc, strings.Join(in.Scopes, " "))
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out, nil
}

// IssueIntegrationToken exchanges a verified assertion for an access token
// of the scopes asked for (all the client's when scope is empty). The jti is
// claimed in the transaction that stores the token, so an assertion buys
// one token however many times, and on however many nodes, it is
// presented. Issuance and every refusal are audited, without the token or
// the assertion.
func (s *Service) IssueIntegrationToken(ctx context.Context, a Assertion, scope, clientAddr string) (IssuedToken, error) {
	in, err := s.LiveIntegration(ctx, a.ClientID)
	if err != nil {
		if CodeOf(err) != CodeInternal {
			known := &in
			if in.ClientID == "" {
				known = nil
			}
			s.AuditTokenRefusal(ctx, known, clientAddr, "client")
		}
		return IssuedToken{}, err
	}
	caller := IntegrationCaller(in, nil, clientAddr)
	refuse := func(reason string, err error) (IssuedToken, error) {
		s.AuditTokenRefusal(ctx, &in, clientAddr, reason)
		return IssuedToken{}, err
	}
	now := s.clock.Now().Truncate(time.Microsecond)
	switch {
	case a.ID == "":
		return refuse("jti", errBadAssertion("the assertion needs a jti: a new random id for each assertion"))
	case len(a.ID) > MaxAssertionIDLen || !isCleanText(a.ID):
		return refuse("jti", errBadAssertion("the assertion's jti must be at most %d characters of text", MaxAssertionIDLen))
	case a.ExpiresAt.IsZero():
		return refuse("exp", errBadAssertion("the assertion needs an exp"))
	case !a.ExpiresAt.After(now):
		return refuse("expired", errBadAssertion("the assertion has expired; sign a new one"))
	case a.ExpiresAt.After(now.Add(MaxAssertionLifetime)):
		return refuse("exp", errBadAssertion("the assertion's exp is more than %d minutes ahead", int(MaxAssertionLifetime/time.Minute)))
	}
	scopes, err := grantedScopes(in, scope)
	if err != nil {
		return refuse("scope", err)
	}
	token := rand.Text() + rand.Text()
	t := IntegrationToken{TokenHash: HashIntegrationToken(token), ClientID: in.ClientID, Scopes: scopes,
		IssuedAt: now, ExpiresAt: now.Add(IntegrationTokenLifetime)}
	err = s.store.InTx(ctx, func(tx Tx) error {
		// What expired before the longest-lived assertion now acceptable
		// could have been issued is of no more use: a replay of a pruned
		// jti is refused as expired. The margin covers nodes whose clocks
		// disagree by less than it.
		if err := tx.PruneIntegration(ctx, in.ClientID, now.Add(-MaxAssertionLifetime)); err != nil {
			return fmt.Errorf("prune integration %s: %w", in.ClientID, err)
		}
		if err := tx.ClaimAssertion(ctx, in.ClientID, a.ID, a.ExpiresAt); errors.Is(err, ErrDuplicate) {
			return errBadAssertion("this assertion has been used already: sign a new one, with a new jti, for each token request")
		} else if err != nil {
			return fmt.Errorf("claim assertion of integration %s: %w", in.ClientID, err)
		}
		if err := tx.CreateIntegrationToken(ctx, t); err != nil {
			return fmt.Errorf("store token of integration %s: %w", in.ClientID, err)
		}
		return s.appendAudit(ctx, tx, s.entry(caller, ActionCreate, EventIntegrationToken, nil, OutcomeSuccess,
			fmt.Sprintf("scopes=%d expires_in=%d", len(scopes), int(IntegrationTokenLifetime/time.Second))))
	})
	if err != nil {
		if CodeOf(err) == CodeInternal {
			return IssuedToken{}, err
		}
		return refuse("replayed_jti", err)
	}
	return IssuedToken{AccessToken: token, Scopes: scopes, ExpiresIn: IntegrationTokenLifetime}, nil
}

// IntegrationCallerByToken resolves an access token to its integrator's
// caller. The token and its client are read from the store on every use,
// so a revocation on any node is in force for the next request. Every
// refusal is audited and is the same unauthenticated error.
func (s *Service) IntegrationCallerByToken(ctx context.Context, token, clientAddr string) (Caller, error) {
	refuse := func(in *Integration, reason string) (Caller, error) {
		// Refused tokens are counted per address, and audited up to the
		// limit: past it they are refused unaudited, so that no one
		// without a token can grow the audit trail without bound.
		res, err := ReserveAttempt(context.WithoutCancel(ctx), s.store, badTokenKey(clientAddr), maxBadTokensPerAddr, badTokenWindow, s.clock.Now())
		if err != nil {
			return Caller{}, fmt.Errorf("count a refused bearer token: %w", err)
		}
		if !res.Allowed {
			return Caller{}, errBadTokensThrottled
		}
		c := Caller{ClientAddr: clientAddr}
		if in != nil {
			c = IntegrationCaller(*in, nil, clientAddr)
		}
		_ = s.AuditCaller(context.WithoutCancel(ctx), c, ActionExecute, EventIntegrationAccess, nil, OutcomeDenied, "reason="+reason)
		return Caller{}, errBadToken
	}
	if token == "" || len(token) > maxIntegrationTokenLen || !isTokenText(token) {
		return refuse(nil, "malformed_token")
	}
	t, err := s.store.IntegrationToken(ctx, HashIntegrationToken(token))
	if errors.Is(err, ErrNotFound) {
		return refuse(nil, "unknown_token")
	}
	if err != nil {
		return Caller{}, fmt.Errorf("read integration token: %w", err)
	}
	in, err := s.store.Integration(ctx, t.ClientID)
	if errors.Is(err, ErrNotFound) {
		return refuse(nil, "unknown_client")
	}
	if err != nil {
		return Caller{}, fmt.Errorf("read integration %s: %w", t.ClientID, err)
	}
	switch {
	case in.RevokedAt != nil:
		return refuse(&in, "revoked")
	case !s.clock.Now().Before(t.ExpiresAt):
		return refuse(&in, "expired_token")
	}
	return IntegrationCaller(in, t.Scopes, clientAddr), nil
}

// isTokenText reports whether s could be a token this service issued:
// rand.Text's alphabet (base32).
func isTokenText(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
