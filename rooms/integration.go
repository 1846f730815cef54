package rooms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Integrators are hospital systems (an EPR, a data warehouse) that read
// referrals through the FHIR API as SMART Backend Services clients (SPEC
// §10): an admin registers a client with its public keys and scopes; the
// client signs a short-lived assertion with one of its keys and exchanges
// it for a bearer token; the token reads what its organisation's receiving
// team may read, and nothing more. Revoking the client ends its tokens at
// once, on every node.

// IntegrationPrefix starts the user id an integrator acts under
// ("integration:<client id>"), in audit entries.
const IntegrationPrefix = "integration:"

// RoleIntegrator is the role an integrator's caller holds: a receiving role
// (ReceivesFor), so it reads what its organisation receives. It is not in
// Roles, so no person can register or be created with it.
const RoleIntegrator Role = "integrator"

// Integration is a registered integrator client.
type Integration struct {
	ClientID     string `json:"client_id"`
	Name         string `json:"name"`
	Organisation string `json:"organisation"`
	// JWKS is the client's public key set as CheckKeySet stored it.
	JWKS      json.RawMessage `json:"jwks"`
	Scopes    []string        `json:"scopes"`
	CreatedBy string          `json:"created_by"`
	CreatedAt time.Time       `json:"created_at"`
	RevokedAt *time.Time      `json:"revoked_at,omitempty"`
}

// IntegrationToken is an access token issued to a client. The store keeps
// the token's hash, never the token.
type IntegrationToken struct {
	TokenHash string
	ClientID  string
	// Scopes are those granted with this token: all or some of the client's.
	Scopes    []string
	IssuedAt  time.Time
	ExpiresAt time.Time
}

// IntegrationGrant is what an integrator's caller may read: set on a
// Caller only when the caller is an integrator.
type IntegrationGrant struct {
	ClientID string
	Scopes   []string
}

// IntegrationStore keeps integrator clients and the tokens issued to them.
// Lookups return an error wrapping ErrNotFound when the row is absent.
type IntegrationStore interface {
	// Integration returns a client, revoked or not.
	Integration(ctx context.Context, clientID string) (Integration, error)
	// Integrations lists an organisation's clients, newest first, revoked
	// ones included.
	Integrations(ctx context.Context, organisation string) ([]Integration, error)
	// IntegrationToken returns the token with this hash, expired or not.
	IntegrationToken(ctx context.Context, tokenHash string) (IntegrationToken, error)
}

// IntegrationTx writes integrator clients, the assertions they used and
// their tokens, inside a transaction.
type IntegrationTx interface {
	IntegrationStore
	// CreateIntegration stores a new client; ErrDuplicate when its id is
	// taken.
	CreateIntegration(ctx context.Context, in Integration) error
	// RevokeIntegration marks a client revoked at at; ErrNotFound when there
	// is none or it is revoked already.
	RevokeIntegration(ctx context.Context, clientID string, at time.Time) error
	// ClaimAssertion records that the client has used the assertion jti,
	// which expires at expiresAt; ErrDuplicate when it has used it before.
	// The claim is held by a unique key, so of concurrent transactions
	// claiming the same jti, on any node, one commits and the others get
	// ErrDuplicate (waiting for the first to end).
	ClaimAssertion(ctx context.Context, clientID, jti string, expiresAt time.Time) error
	// CreateIntegrationToken stores an issued token; ErrDuplicate when its
	// hash is taken.
	CreateIntegrationToken(ctx context.Context, t IntegrationToken) error
	// PruneIntegration deletes the client's assertions and tokens that
	// expired before before.
	PruneIntegration(ctx context.Context, clientID string, before time.Time) error
}

// IntegrationResources are the FHIR resource types an integrator's scopes
// may name (SPEC §10).
var IntegrationResources = []string{"ServiceRequest", "Task", "Patient", "Practitioner", "Organization",
	"Communication", "CarePlan", "AuditEvent"}

// ScopeAll is the scope that reads every resource type.
const ScopeAll = "system/*.read"

// MaxIntegrationScopes bounds a client's scopes: each resource type once,
// and the wildcard.
var MaxIntegrationScopes = len(IntegrationResources) + 1

var ruleIntegrationName = textRule{what: "the integration's name", required: true, maxChars: 100}

// checkScope refuses anything but system/*.read and
// system/<resource type>.read: an integrator only reads.
func checkScope(field, scope string) error {
	if scope == ScopeAll {
		return nil
	}
	typ, ok := strings.CutPrefix(scope, "system/")
	if ok {
		typ, ok = strings.CutSuffix(typ, ".read")
	}
	if !ok || !slices.Contains(IntegrationResources, typ) {
		if len(scope) > 100 || !isCleanText(scope) {
			return Invalid(field, "a scope is system/*.read or system/<resource type>.read")
		}
		return Invalid(field, "%q is not a scope an integrator may hold: use system/*.read or system/<type>.read for a type of %s",
			scope, strings.Join(IntegrationResources, ", "))
	}
	return nil
}

// checkScopes checks a client's scopes: one to MaxIntegrationScopes, each
// valid, none twice.
func checkScopes(field string, scopes []string) error {
	if len(scopes) == 0 {
		return Invalid(field, "at least one scope is required, such as system/*.read")
	}
	if len(scopes) > MaxIntegrationScopes {
		return Invalid(field, "at most %d scopes", MaxIntegrationScopes)
	}
	for i, sc := range scopes {
		at := fmt.Sprintf("%s[%d]", field, i)
		if err := checkScope(at, sc); err != nil {
			return err
		}
		if slices.Contains(scopes[:i], sc) {
			return Invalid(at, "%s is listed twice", sc)
		}
	}
	return nil
}

// IntegrationCaller is the caller an integrator's token acts as: read-only,
// a receiving role in its organisation, under its own id, allowed the
// scopes granted with the token.
func IntegrationCaller(in Integration, scopes []string, clientAddr string) Caller {
	return Caller{ClientAddr: clientAddr,
		Integration: &IntegrationGrant{ClientID: in.ClientID, Scopes: slices.Clone(scopes)},
		User: User{ID: IntegrationPrefix + in.ClientID, Name: in.Name, Organisation: in.Organisation,
			Roles: []Role{RoleIntegrator}, Status: UserActive}}
}

// Allows reports whether the caller may read resources of a FHIR type: a
// person or display always (the access rules decide what they see), an
// integrator when it was granted system/*.read or system/<type>.read.
// AuditEvent needs its own scope: the audit trail holds the organisation's
// logins and addresses, more than its receiving team sees, so a wildcard
// granted for the referrals does not reach it.
func (c Caller) Allows(resourceType string) bool {
	if c.Integration == nil {
		return true
	}
	for _, sc := range c.Integration.Scopes {
		if sc == ScopeAll && resourceType != "AuditEvent" || sc == "system/"+resourceType+".read" {
			return true
		}
	}
	return false
}

// errIntegratorReadOnly refuses an integrator every command.
var errIntegratorReadOnly = Forbidden("an integrator client is read-only: it reads referrals through the FHIR API and changes nothing")

// checkReader lets in what checkCaller does, and integrators: for the reads
// of referrals an integrator may make.
func checkReader(c Caller) error {
	if c.Integration != nil && c.DisplayID == "" && c.User.ID != "" && c.User.Status == UserActive {
		return nil
	}
	return checkCaller(c)
}

// refuseIntegrator refuses and audits an integrator caller of a command
// that does not otherwise check its caller (the platform's own, such as
// PutOrganisation).
func (s *Service) refuseIntegrator(ctx context.Context, c Caller, action AuditAction, event string) error {
	if c.Integration == nil {
		return nil
	}
	s.auditDenied(ctx, c, action, event, errIntegratorReadOnly)
	return errIntegratorReadOnly
}

// NewIntegration is an admin's registration of a client.
type NewIntegration struct {
	Name   string
	JWKS   json.RawMessage
	Scopes []string
}

// RegisterIntegration registers a client of the admin's organisation. The
// client's id is the registration's answer; the key set is stored as
// CheckKeySet returns it.
func (s *Service) RegisterIntegration(ctx context.Context, admin Caller, n NewIntegration) (Integration, error) {
	const event = "integration.register"
	name := strings.TrimSpace(n.Name)
	err := requireAdmin(admin)
	if err == nil {
		err = ruleIntegrationName.check("name", name)
	}
	var jwks json.RawMessage
	if err == nil {
		jwks, err = CheckKeySet("jwks", n.JWKS)
	}
	if err == nil {
		err = checkScopes("scopes", n.Scopes)
	}
	in := Integration{ClientID: NewID(), Name: name, Organisation: admin.User.Organisation, JWKS: jwks,
		Scopes: slices.Clone(n.Scopes), CreatedBy: admin.User.ID, CreatedAt: s.clock.Now().Truncate(time.Microsecond)}
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if err := tx.CreateIntegration(ctx, in); err != nil {
				return fmt.Errorf("create integration: %w", err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionCreate, event, nil, OutcomeSuccess,
				fmt.Sprintf("client=%s scopes=%d", in.ClientID, len(in.Scopes))))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionCreate, event, err)
		return Integration{}, err
	}
	return in, nil
}

// Integrations lists the admin's organisation's clients, revoked ones too.
func (s *Service) Integrations(ctx context.Context, admin Caller) ([]Integration, error) {
	const event = "integration.list"
	if err := requireAdmin(admin); err != nil {
		s.auditDenied(ctx, admin, ActionRead, event, err)
		return nil, err
	}
	ins, err := s.store.Integrations(ctx, admin.User.Organisation)
	if err != nil {
		return nil, fmt.Errorf("list integrations: %w", err)
	}
	if ins == nil {
		ins = []Integration{}
	}
	return ins, s.AuditCaller(ctx, admin, ActionRead, event, nil, OutcomeSuccess, fmt.Sprintf("count=%d", len(ins)))
}

// RevokeIntegration revokes a client of the admin's organisation: its
// tokens stop working on their next use, on every node, because each use
// reads the client (IntegrationCallerByToken).
func (s *Service) RevokeIntegration(ctx context.Context, admin Caller, clientID string) (Integration, error) {
	const event = "integration.revoke"
	err := requireAdmin(admin)
	if err == nil {
		err = CheckID("id", clientID)
	}
	var in Integration
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			var err error
			in, err = tx.Integration(ctx, clientID)
			if errors.Is(err, ErrNotFound) || err == nil && (in.Organisation != admin.User.Organisation || in.RevokedAt != nil) {
				return NotFound("integration")
			}
			if err != nil {
				return fmt.Errorf("read integration %s: %w", clientID, err)
			}
			now := s.clock.Now().Truncate(time.Microsecond)
			if err := tx.RevokeIntegration(ctx, clientID, now); errors.Is(err, ErrNotFound) {
				return NotFound("integration") // revoked meanwhile
			} else if err != nil {
				return fmt.Errorf("revoke integration %s: %w", clientID, err)
			}
			in.RevokedAt = &now
			return s.appendAudit(ctx, tx, s.entry(admin, ActionDelete, event, nil, OutcomeSuccess, "client="+clientID))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionDelete, event, err)
		return Integration{}, err
	}
	return in, nil
}
