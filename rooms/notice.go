package rooms

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// The levels of a system notice.
const (
	NoticeInfo     = "info"
	NoticeDegraded = "degraded"
	NoticeOutage   = "outage"
)

var ruleNotice = textRule{what: "the notice", required: true, maxChars: 500, maxBytes: 2000}
var ruleOPELNote = textRule{what: "the note", maxChars: 500, maxBytes: 2000}

// PostNotice puts a system notice in force for every user and display, in
// place of any before it. A notice reaches every organisation, so it is the
// platform's: admins of an organisation that runs a pathway post them, and
// only that organisation's admins replace or clear the one in force.
func (s *Service) PostNotice(ctx context.Context, admin Caller, level, message string) (SystemNotice, error) {
	const event = "system_notice.post"
	message = strings.TrimSpace(message)
	err := requireAdmin(admin)
	if err == nil {
		switch level {
		case NoticeInfo, NoticeDegraded, NoticeOutage:
		default:
			err = Invalid("level", "level must be info, degraded or outage")
		}
	}
	if err == nil {
		err = ruleNotice.check("message", message)
	}
	if err == nil {
		err = s.checkNoticeAdmin(ctx, admin)
	}
	n := SystemNotice{ID: NewID(), Level: level, Message: message, PostedBy: AuthorOf(admin.User), PostedAt: s.clock.Now().Truncate(time.Microsecond)}
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if err := ownsNotice(ctx, tx, admin); err != nil {
				return err
			}
			if err := tx.PutSystemNotice(ctx, n); err != nil {
				return fmt.Errorf("put system notice: %w", err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionCreate, event, nil, OutcomeSuccess, "level="+level+" notice="+n.ID))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionCreate, event, err)
		return SystemNotice{}, err
	}
	s.watching().NoticeChanged(&n)
	return n, nil
}

// ClearNotice ends the notice in force.
func (s *Service) ClearNotice(ctx context.Context, admin Caller) error {
	const event = "system_notice.clear"
	err := requireAdmin(admin)
	if err == nil {
		err = s.checkNoticeAdmin(ctx, admin)
	}
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if err := ownsNotice(ctx, tx, admin); err != nil {
				return err
			}
			err := tx.ClearSystemNotice(ctx, admin.User.ID, s.clock.Now().Truncate(time.Microsecond))
			if errors.Is(err, ErrNotFound) {
				return NotFound("system notice")
			}
			if err != nil {
				return fmt.Errorf("clear system notice: %w", err)
			}
			return s.appendAudit(ctx, tx, s.entry(admin, ActionDelete, event, nil, OutcomeSuccess, ""))
		})
	}
	if err != nil {
		s.auditDenied(ctx, admin, ActionDelete, event, err)
		return err
	}
	s.watching().NoticeChanged(nil)
	return nil
}

// checkNoticeAdmin refuses an admin whose organisation runs no pathway.
func (s *Service) checkNoticeAdmin(ctx context.Context, admin Caller) error {
	ps, err := s.store.Pathways(ctx)
	if err != nil {
		return fmt.Errorf("list pathways: %w", err)
	}
	for _, p := range ps {
		if p.ReceivingOrganisation == admin.User.Organisation {
			return nil
		}
	}
	return Forbidden("system notices are posted by the admins of an organisation that runs a pathway")
}

// ownsNotice refuses to let an admin replace or clear a notice another
// organisation posted.
func ownsNotice(ctx context.Context, tx Tx, admin Caller) error {
	cur, err := tx.SystemNotice(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read system notice: %w", err)
	}
	if cur.PostedBy.Organisation != admin.User.Organisation {
		return Forbidden("the notice in force was posted by %s; only its admins can change it", cur.PostedBy.Organisation)
	}
	return nil
}

// Notice returns the notice in force, nil when none is: for every signed-in
// user and display.
func (s *Service) Notice(ctx context.Context, c Caller) (*SystemNotice, error) {
	if err := checkViewer(c); err != nil {
		return nil, err
	}
	n, err := s.store.SystemNotice(ctx)
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read system notice: %w", err)
	}
	return &n, nil
}

// SetOPEL records an organisation's OPEL level (1 to 4), as its bed
// managers and admins judge it, and updates its wallboard.
func (s *Service) SetOPEL(ctx context.Context, c Caller, level int, note string) (OPEL, error) {
	const event = "opel.set"
	note = strings.TrimSpace(note)
	err := checkCaller(c)
	if err == nil && !(c.User.HasRole(RoleBedManager) || c.User.HasRole(RoleAdmin)) {
		err = Forbidden("only bed managers and admins set the OPEL level")
	}
	if err == nil && (level < 1 || level > 4) {
		err = Invalid("level", "the OPEL level is 1, 2, 3 or 4")
	}
	if err == nil {
		err = ruleOPELNote.check("note", note)
	}
	o := OPEL{Organisation: c.User.Organisation, Level: level, Note: note, SetAt: s.clock.Now().Truncate(time.Microsecond), SetBy: AuthorOf(c.User)}
	if err == nil {
		err = s.store.InTx(ctx, func(tx Tx) error {
			if err := tx.PutOPEL(ctx, o); err != nil {
				return fmt.Errorf("put OPEL level of %s: %w", o.Organisation, err)
			}
			return s.appendAudit(ctx, tx, s.entry(c, ActionUpdate, event, nil, OutcomeSuccess, fmt.Sprintf("level=%d", level)))
		})
	}
	if err != nil {
		s.auditDenied(ctx, c, ActionUpdate, event, err)
		return OPEL{}, err
	}
	if wb, err := s.wallboard(ctx, o.Organisation); err == nil {
		s.watching().WallboardChanged(o.Organisation, wb)
	}
	return o, nil
}

// auditDenied records a refused interaction that concerns no referral.
func (s *Service) auditDenied(ctx context.Context, c Caller, action AuditAction, event string, cause error) {
	outcome := OutcomeFailed
	switch CodeOf(cause) {
	case CodeInvalid, CodeConflict:
		outcome = OutcomeInvalid
	case CodeForbidden, CodeNotFound, CodeUnauthenticated:
		outcome = OutcomeDenied
	}
	detail := string(CodeOf(cause))
	var de *Error
	if errors.As(cause, &de) && de.Field != "" {
		detail += " " + auditSafe(de.Field)
	}
	_ = s.AuditCaller(context.WithoutCancel(ctx), c, action, event, nil, outcome, detail)
}
