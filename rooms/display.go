package rooms

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"
)

// DisplayPrefix starts the user id a display acts under ("display:<id>"),
// in audit entries and on its connections.
const DisplayPrefix = "display:"

var ruleDisplayName = textRule{what: "the display's name", required: true, maxChars: 100}

// HashDisplayToken is what the store keeps of a display's token.
func HashDisplayToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// DisplayCaller is the caller a display's requests act as: read-only, in
// its organisation, under its own id.
func DisplayCaller(d Display, clientAddr string) Caller {
	return Caller{DisplayID: d.ID, ClientAddr: clientAddr,
		User: User{ID: DisplayPrefix + d.ID, Name: d.Name, Organisation: d.Organisation, Status: UserActive}}
}

// CheckViewer refuses a caller who is neither an active user nor a
// display.
func CheckViewer(c Caller) error { return checkViewer(c) }

// CheckUser refuses a caller who is not an active user (a display is not).
func CheckUser(c Caller) error { return checkCaller(c) }

// checkViewer lets in active users and displays: for what a display may
// read (the wallboard and the system notice).
func checkViewer(c Caller) error {
	if c.DisplayID != "" {
		return nil
	}
	return checkCaller(c)
}

// CreateDisplay provisions a wall screen for the admin's organisation and
// returns it with its token, which is shown once: the store keeps its hash.
func (s *Service) CreateDisplay(ctx context.Context, admin Caller, name string) (Display, string, error) {
	const event = "display.create"
	name = strings.TrimSpace(name)
	err := requireAdmin(admin)
	if err == nil {
		err = ruleDisplayName.check("name", name)
	}
	token := rand.Text() + rand.Text()
	d := Display{ID: NewID(), Organisation: admin.User.Organisation, Name: name, TokenHash: HashDisplayToken(token),
		CreatedBy: admin.User.ID, CreatedAt: s.clock.Now().Truncate(time.Microsecond)}
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if err := tx.CreateDisplay(ctx, d); err != nil {
				return fmt.Errorf("create display: %w", err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionCreate, event, nil, OutcomeSuccess, "display="+d.ID))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionCreate, event, err)
		return Display{}, "", err
	}
	return d, token, nil
}

// Displays lists the admin's organisation's displays, revoked ones too.
func (s *Service) Displays(ctx context.Context, admin Caller) ([]Display, error) {
	if err := requireAdmin(admin); err != nil {
		s.auditDenied(ctx, admin, ActionRead, "display.list", err)
		return nil, err
	}
	ds, err := s.store.Displays(ctx, admin.User.Organisation)
	if err != nil {
		return nil, fmt.Errorf("list displays: %w", err)
	}
	if ds == nil {
		ds = []Display{}
	}
	return ds, s.AuditCaller(ctx, admin, ActionRead, "display.list", nil, OutcomeSuccess, fmt.Sprintf("count=%d", len(ds)))
}

// RevokeDisplay ends a display of the admin's organisation. The caller
// closes its connections.
func (s *Service) RevokeDisplay(ctx context.Context, admin Caller, id string) (Display, error) {
	const event = "display.revoke"
	err := requireAdmin(admin)
	if err == nil {
		err = CheckID("id", id)
	}
	var d Display
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			var err error
			d, err = tx.Display(ctx, id)
			if errors.Is(err, ErrNotFound) || err == nil && (d.Organisation != admin.User.Organisation || d.RevokedAt != nil) {
				return NotFound("display")
			}
			if err != nil {
				return fmt.Errorf("read display %s: %w", id, err)
			}
			now := s.clock.Now().Truncate(time.Microsecond)
			if err := tx.RevokeDisplay(ctx, id, now); err != nil {
				return fmt.Errorf("revoke display %s: %w", id, err)
			}
			d.RevokedAt = &now
			return s.appendAudit(ctx, tx, s.entry(admin, ActionDelete, event, nil, OutcomeSuccess, "display="+id))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionDelete, event, err)
		return Display{}, err
	}
	return d, nil
}

// DisplayByToken returns the live display holding token; ErrNotFound when
// there is none or it was revoked.
func (s *Service) DisplayByToken(ctx context.Context, token string) (Display, error) {
	d, err := s.store.DisplayByTokenHash(ctx, HashDisplayToken(token))
	if err != nil {
		return Display{}, err
	}
	if d.RevokedAt != nil {
		return Display{}, fmt.Errorf("display %s revoked: %w", d.ID, ErrNotFound)
	}
	return d, nil
}
