package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"patientpass/rooms"
)

// Integrator clients, the assertions they have used and their tokens
// (rooms.IntegrationStore, rooms.IntegrationTx). The reads are on reader,
// so a Store and a tx both have them.

var (
	_ rooms.IntegrationStore = (*Store)(nil)
	_ rooms.IntegrationTx    = (*tx)(nil)
)

const integrationColumns = `client_id, organisation, name, jwks, scopes, created_by, created_at, revoked_at`

func scanIntegration(row pgx.Row) (rooms.Integration, error) {
	var (
		in   rooms.Integration
		jwks string
	)
	err := row.Scan(&in.ClientID, &in.Organisation, &in.Name, &jwks, &in.Scopes, &in.CreatedBy, &in.CreatedAt, &in.RevokedAt)
	in.JWKS = []byte(jwks)
	in.CreatedAt, in.RevokedAt = utc(in.CreatedAt), utcPtr(in.RevokedAt)
	return in, err
}

// Integration returns a client, revoked or not.
func (r reader) Integration(ctx context.Context, clientID string) (rooms.Integration, error) {
	in, err := scanIntegration(r.q.QueryRow(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE client_id = $1`, clientID))
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.Integration{}, fmt.Errorf("get integration %s: %w", clientID, rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.Integration{}, fmt.Errorf("get integration %s: %w", clientID, err)
	}
	return in, nil
}

// Integrations lists an organisation's clients, newest first, revoked ones
// included.
func (r reader) Integrations(ctx context.Context, organisation string) ([]rooms.Integration, error) {
	rows, err := r.q.Query(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE organisation = $1
		ORDER BY created_at DESC, client_id DESC`, organisation)
	if err != nil {
		return nil, fmt.Errorf("list integrations of %s: %w", organisation, err)
	}
	ins, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (rooms.Integration, error) { return scanIntegration(row) })
	if err != nil {
		return nil, fmt.Errorf("list integrations of %s: %w", organisation, err)
	}
	return ins, nil
}

// IntegrationToken returns the token with this hash, expired or not.
func (r reader) IntegrationToken(ctx context.Context, tokenHash string) (rooms.IntegrationToken, error) {
	t := rooms.IntegrationToken{TokenHash: tokenHash}
	err := r.q.QueryRow(ctx, `SELECT client_id, scopes, issued_at, expires_at FROM integration_tokens WHERE token_hash = $1`,
		tokenHash).Scan(&t.ClientID, &t.Scopes, &t.IssuedAt, &t.ExpiresAt)
	// The hash is not in the errors: it is as good as the token to someone
	// reading logs while the token lives.
	if errors.Is(err, pgx.ErrNoRows) {
		return rooms.IntegrationToken{}, fmt.Errorf("get integration token: %w", rooms.ErrNotFound)
	}
	if err != nil {
		return rooms.IntegrationToken{}, fmt.Errorf("get integration token: %w", err)
	}
	t.IssuedAt, t.ExpiresAt = utc(t.IssuedAt), utc(t.ExpiresAt)
	return t, nil
}

// CreateIntegration stores a new client; rooms.ErrDuplicate when its id is
// taken.
func (t *tx) CreateIntegration(ctx context.Context, in rooms.Integration) error {
	_, err := t.q.Exec(ctx, `INSERT INTO integrations (`+integrationColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		in.ClientID, in.Organisation, in.Name, string(in.JWKS), scopeArray(in.Scopes), in.CreatedBy, micro(in.CreatedAt), microPtr(in.RevokedAt))
	if err != nil {
		return mapErr(err, "create integration "+in.ClientID)
	}
	return nil
}

// RevokeIntegration marks a client revoked at at; rooms.ErrNotFound when
// there is none or it is revoked already.
func (t *tx) RevokeIntegration(ctx context.Context, clientID string, at time.Time) error {
	tag, err := t.q.Exec(ctx, `UPDATE integrations SET revoked_at = $2 WHERE client_id = $1 AND revoked_at IS NULL`, clientID, micro(at))
	if err != nil {
		return mapErr(err, "revoke integration "+clientID)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("revoke integration %s: %w", clientID, rooms.ErrNotFound)
	}
	return nil
}

// ClaimAssertion records the client's use of jti; rooms.ErrDuplicate when
// it was used before. A concurrent transaction inserting the same key
// makes this one wait for it to end, then fail on the primary key if it
// committed.
func (t *tx) ClaimAssertion(ctx context.Context, clientID, jti string, expiresAt time.Time) error {
	_, err := t.q.Exec(ctx, `INSERT INTO integration_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3)`,
		clientID, jti, micro(expiresAt))
	if err != nil {
		// The jti is not in the error: it is the client's.
		return mapErr(err, "claim assertion of integration "+clientID)
	}
	return nil
}

// CreateIntegrationToken stores an issued token; rooms.ErrDuplicate when
// its hash is taken.
func (t *tx) CreateIntegrationToken(ctx context.Context, it rooms.IntegrationToken) error {
	_, err := t.q.Exec(ctx, `INSERT INTO integration_tokens (token_hash, client_id, scopes, issued_at, expires_at)
		VALUES ($1, $2, $3, $4, $5)`, it.TokenHash, it.ClientID, scopeArray(it.Scopes), micro(it.IssuedAt), micro(it.ExpiresAt))
	if err != nil {
		return mapErr(err, "store token of integration "+it.ClientID)
	}
	return nil
}

// PruneIntegration deletes the client's assertions and tokens that expired
// before before, in one round trip.
func (t *tx) PruneIntegration(ctx context.Context, clientID string, before time.Time) error {
	_, err := t.q.Exec(ctx, `WITH a AS (DELETE FROM integration_assertions WHERE client_id = $1 AND expires_at < $2)
		DELETE FROM integration_tokens WHERE client_id = $1 AND expires_at < $2`, clientID, micro(before))
	if err != nil {
		return mapErr(err, "prune integration "+clientID)
	}
	return nil
}

// scopeArray is s, or an empty slice for nil: the columns are NOT NULL arrays.
func scopeArray(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
