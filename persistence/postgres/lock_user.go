package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"patientpass/rooms"
)

// LockUser reads a user with FOR UPDATE, holding the row until the
// transaction ends.
func (t *tx) LockUser(ctx context.Context, id string) (rooms.User, error) {
	u, err := scanUser(t.q.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE id = $1 FOR UPDATE`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, fmt.Errorf("lock user %s: %w", id, rooms.ErrNotFound)
	}
	if err != nil {
		return u, fmt.Errorf("lock user %s: %w", id, err)
	}
	return u, nil
}
