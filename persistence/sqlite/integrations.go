package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"patientpass/rooms"
)

// Integrator clients, the assertions they have used and their tokens
// (rooms.IntegrationStore, rooms.IntegrationTx). The reads are on reader,
// so a Store and a Tx both have them. Scopes are stored as JSON arrays.

var (
	_ rooms.IntegrationStore = (*Store)(nil)
	_ rooms.IntegrationTx    = (*Tx)(nil)
)

const integrationColumns = `client_id, organisation, name, jwks, scopes, created_by, created_at, revoked_at`

func scanIntegration(row interface{ Scan(...any) error }) (rooms.Integration, error) {
	var (
		in           rooms.Integration
		jwks, scopes string
		created      int64
		revoked      sql.NullInt64
	)
	if err := row.Scan(&in.ClientID, &in.Organisation, &in.Name, &jwks, &scopes, &in.CreatedBy, &created, &revoked); err != nil {
		return rooms.Integration{}, err
	}
	if err := json.Unmarshal([]byte(scopes), &in.Scopes); err != nil {
		return rooms.Integration{}, fmt.Errorf("decode scopes of integration %s: %w", in.ClientID, err)
	}
	in.JWKS = []byte(jwks)
	in.CreatedAt, in.RevokedAt = fromMicros(created), fromNullMicros(revoked)
	return in, nil
}

// Integration returns a client, revoked or not.
func (r reader) Integration(ctx context.Context, clientID string) (rooms.Integration, error) {
	in, err := scanIntegration(r.q.QueryRowContext(ctx, `SELECT `+integrationColumns+` FROM integrations WHERE client_id = ?`, clientID))
	if err != nil {
		return rooms.Integration{}, notFound(err, "get integration %s", clientID)
	}
	return in, nil
}

// Integrations lists an organisation's clients, newest first, revoked ones
// included.
func (r reader) Integrations(ctx context.Context, organisation string) ([]rooms.Integration, error) {
	return queryAll(ctx, r.q, "list integrations of "+organisation,
		func(rows *sql.Rows) (rooms.Integration, error) { return scanIntegration(rows) },
		`SELECT `+integrationColumns+` FROM integrations WHERE organisation = ? ORDER BY created_at DESC, client_id DESC`, organisation)
}

// IntegrationToken returns the token with this hash, expired or not.
func (r reader) IntegrationToken(ctx context.Context, tokenHash string) (rooms.IntegrationToken, error) {
	var (
		t               = rooms.IntegrationToken{TokenHash: tokenHash}
		scopes          string
		issued, expires int64
	)
	err := r.q.QueryRowContext(ctx, `SELECT client_id, scopes, issued_at, expires_at FROM integration_tokens WHERE token_hash = ?`,
		tokenHash).Scan(&t.ClientID, &scopes, &issued, &expires)
	if err != nil {
		// The hash is not in the error: it is as good as the token to
		// someone reading logs while the token lives.
		return rooms.IntegrationToken{}, notFound(err, "get integration token")
	}
	if err := json.Unmarshal([]byte(scopes), &t.Scopes); err != nil {
		return rooms.IntegrationToken{}, fmt.Errorf("decode scopes of a token of integration %s: %w", t.ClientID, err)
	}
	t.IssuedAt, t.ExpiresAt = fromMicros(issued), fromMicros(expires)
	return t, nil
}

// scopesJSON encodes scopes as stored: a JSON array, [] for none.
func scopesJSON(scopes []string) (string, error) {
	if scopes == nil {
		scopes = []string{}
	}
	b, err := json.Marshal(scopes)
	return string(b), err
}

// CreateIntegration stores a new client; rooms.ErrDuplicate when its id is
// taken, rooms.ErrNotFound when its organisation does not exist.
func (t *Tx) CreateIntegration(ctx context.Context, in rooms.Integration) error {
	scopes, err := scopesJSON(in.Scopes)
	if err != nil {
		return fmt.Errorf("encode scopes of integration %s: %w", in.ClientID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO integrations (`+integrationColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
		in.ClientID, in.Organisation, in.Name, string(in.JWKS), scopes, in.CreatedBy, micros(in.CreatedAt), nullMicros(in.RevokedAt))
	if isForeignKey(err) {
		return fmt.Errorf("create integration %s: %w", in.ClientID, rooms.ErrNotFound)
	}
	return mapWrite(err, "create integration %s", in.ClientID)
}

// RevokeIntegration marks a client revoked at at; rooms.ErrNotFound when
// there is none or it is revoked already.
func (t *Tx) RevokeIntegration(ctx context.Context, clientID string, at time.Time) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE integrations SET revoked_at = ? WHERE client_id = ? AND revoked_at IS NULL`, micros(at), clientID)
	return oneRow(res, mapWrite(err, "revoke integration %s", clientID), "revoke integration %s", clientID)
}

// ClaimAssertion records the client's use of jti; rooms.ErrDuplicate when
// it was used before. Transactions run one at a time, so a second claim
// sees the first's row once it has committed.
func (t *Tx) ClaimAssertion(ctx context.Context, clientID, jti string, expiresAt time.Time) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO integration_assertions (client_id, jti, expires_at) VALUES (?, ?, ?)`,
		clientID, jti, micros(expiresAt))
	// The jti is not in the error: it is the client's.
	return mapWrite(err, "claim assertion of integration %s", clientID)
}

// CreateIntegrationToken stores an issued token; rooms.ErrDuplicate when
// its hash is taken.
func (t *Tx) CreateIntegrationToken(ctx context.Context, it rooms.IntegrationToken) error {
	scopes, err := scopesJSON(it.Scopes)
	if err != nil {
		return fmt.Errorf("encode scopes of a token of integration %s: %w", it.ClientID, err)
	}
	_, err = t.tx.ExecContext(ctx, `INSERT INTO integration_tokens (token_hash, client_id, scopes, issued_at, expires_at)
		VALUES (?, ?, ?, ?, ?)`, it.TokenHash, it.ClientID, scopes, micros(it.IssuedAt), micros(it.ExpiresAt))
	return mapWrite(err, "store token of integration %s", it.ClientID)
}

// PruneIntegration deletes the client's assertions and tokens that expired
// before before.
func (t *Tx) PruneIntegration(ctx context.Context, clientID string, before time.Time) error {
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM integration_assertions WHERE client_id = ? AND expires_at < ?`,
		clientID, micros(before)); err != nil {
		return fmt.Errorf("prune assertions of integration %s: %w", clientID, err)
	}
	if _, err := t.tx.ExecContext(ctx, `DELETE FROM integration_tokens WHERE client_id = ? AND expires_at < ?`,
		clientID, micros(before)); err != nil {
		return fmt.Errorf("prune tokens of integration %s: %w", clientID, err)
	}
	return nil
}
