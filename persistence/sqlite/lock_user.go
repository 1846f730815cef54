package sqlite

import (
	"context"

	"patientpass/rooms"
)

// LockUser reads a user. Write transactions already run one at a time
// (BEGIN IMMEDIATE on the single writer), so the read is the lock.
func (t *Tx) LockUser(ctx context.Context, id string) (rooms.User, error) {
	return t.User(ctx, id)
}
