package rooms

import (
	"context"
	"errors"
	"fmt"
)

// referral reads a referral with its plan completed from its pathway.
func (s *Service) referral(ctx context.Context, id string) (Referral, error) {
	r, err := s.store.Referral(ctx, id)
	if err != nil {
		return Referral{}, fmt.Errorf("read referral %s: %w", id, err)
	}
	return s.withPlan(ctx, r)
}

// withPlan completes r's plan, which holds the sections stored, from its
// pathway.
func (s *Service) withPlan(ctx context.Context, r Referral) (Referral, error) {
	pw, err := s.store.Pathway(ctx, r.PathwayID)
	if err != nil {
		return Referral{}, fmt.Errorf("read pathway %s: %w", r.PathwayID, err)
	}
	r.Plan = completePlan(pw, r.Plan.Sections)
	return r, nil
}

// Authorize returns the referral if the caller may see it. When they may
// not, or it does not exist, it returns not_found and audits the denial;
// event names the attempted interaction ("referral.subscribe", …).
//
// The referral is read alone, with its participants and its stored plan
// sections, in one store round trip: the plan is not completed from the
// pathway, since deciding access needs neither, and a subscription or a
// typing indicator should not wait for a second read. Referral completes
// the plan of what it shows.
func (s *Service) Authorize(ctx context.Context, c Caller, referralID, event string) (Referral, error) {
	if err := checkReader(c); err != nil {
		return Referral{}, err
	}
	if err := CheckID("referral", referralID); err != nil {
		_ = s.AuditCaller(ctx, c, ActionRead, event, nil, OutcomeInvalid, "invalid referral")
		return Referral{}, err
	}
	r, err := s.store.Referral(ctx, referralID)
	if err != nil && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("read referral %s: %w", referralID, err)
	}
	switch {
	case errors.Is(err, ErrNotFound):
		e := s.entry(c, ActionRead, event, nil, OutcomeDenied, string(CodeNotFound))
		e.ReferralID = referralID
		if aerr := s.Audit(ctx, e); aerr != nil {
			return Referral{}, aerr
		}
		return Referral{}, NotFound("referral")
	case err != nil:
		return Referral{}, err
	case !CanView(c.User, r):
		// Audited exactly as a referral that does not exist, without its
		// patient: the entry shows in the caller's organisation's trail.
		e := s.entry(c, ActionRead, event, nil, OutcomeDenied, string(CodeNotFound))
		e.ReferralID = referralID
		if aerr := s.Audit(ctx, e); aerr != nil {
			return Referral{}, aerr
		}
		return Referral{}, NotFound("referral")
	}
	return r, nil
}

// Referral returns a referral the caller may see, with its plan and
// participants, and audits the view.
func (s *Service) Referral(ctx context.Context, c Caller, id string) (Referral, error) {
	r, err := s.Authorize(ctx, c, id, "referral.view")
	if err != nil {
		return Referral{}, err
	}
	if r, err = s.withPlan(ctx, r); err != nil {
		return Referral{}, err
	}
	if err := s.AuditCaller(ctx, c, ActionRead, "referral.view", &r, OutcomeSuccess, ""); err != nil {
		return Referral{}, err
	}
	return r, nil
}

// Referrals lists the referrals the caller may see that match f, and audits
// the listing.
func (s *Service) Referrals(ctx context.Context, c Caller, f ReferralFilter) ([]Referral, error) {
	if err := checkReader(c); err != nil {
		return nil, err
	}
	rs, err := s.store.Referrals(ctx, VisibleFilter(c.User, f))
	if err != nil {
		return nil, fmt.Errorf("list referrals: %w", err)
	}
	pathways := map[string]Pathway{}
	for i := range rs {
		pw, ok := pathways[rs[i].PathwayID]
		if !ok {
			if pw, err = s.store.Pathway(ctx, rs[i].PathwayID); err != nil {
				return nil, fmt.Errorf("read pathway %s: %w", rs[i].PathwayID, err)
			}
			pathways[pw.ID] = pw
		}
		rs[i].Plan = completePlan(pw, rs[i].Plan.Sections)
	}
	detail := fmt.Sprintf("count=%d", len(rs))
	if err := s.AuditCaller(ctx, c, ActionRead, "referral.list", nil, OutcomeSuccess, detail); err != nil {
		return nil, err
	}
	return rs, nil
}

// Events returns up to limit events of a referral after seq, and the
// referral's head seq, when the caller may see it. The read is audited.
func (s *Service) Events(ctx context.Context, c Caller, referralID string, after int64, limit int) ([]Event, int64, error) {
	if after < 0 {
		return nil, 0, Invalid("after", "after cannot be negative")
	}
	r, err := s.Authorize(ctx, c, referralID, "referral.events")
	if err != nil {
		return nil, 0, err
	}
	events, err := s.store.Events(ctx, referralID, after, limit)
	if err != nil {
		return nil, 0, fmt.Errorf("read events of referral %s: %w", referralID, err)
	}
	head := r.HeadSeq
	if n := len(events); n > 0 && events[n-1].Seq > head {
		head = events[n-1].Seq // committed after the referral was read
	}
	detail := fmt.Sprintf("after=%d count=%d", after, len(events))
	if err := s.AuditCaller(ctx, c, ActionRead, "referral.events", &r, OutcomeSuccess, detail); err != nil {
		return nil, 0, err
	}
	return events, head, nil
}

// Subscribe authorises a live subscription to a referral's room from event
// after on, and audits it. It returns the referral as Authorize does, whose
// HeadSeq is the latest event; after may not be beyond it.
func (s *Service) Subscribe(ctx context.Context, c Caller, referralID string, after int64) (Referral, error) {
	if after < 0 {
		return Referral{}, Invalid("after", "after cannot be negative")
	}
	r, err := s.Authorize(ctx, c, referralID, "referral.subscribe")
	if err != nil {
		return Referral{}, err
	}
	if after > r.HeadSeq {
		err := Invalid("after", "after %d is beyond the latest event %d of this referral", after, r.HeadSeq)
		_ = s.AuditCaller(ctx, c, ActionRead, "referral.subscribe", &r, OutcomeInvalid, "after")
		return Referral{}, err
	}
	if err := s.AuditCaller(ctx, c, ActionRead, "referral.subscribe", &r, OutcomeSuccess, fmt.Sprintf("after=%d", after)); err != nil {
		return Referral{}, err
	}
	return r, nil
}

// MarkRead records that the caller has read a referral's room up to seq.
func (s *Service) MarkRead(ctx context.Context, c Caller, referralID string, seq int64) error {
	if err := s.refuseIntegrator(ctx, c, ActionUpdate, "referral.read_marker"); err != nil {
		return err
	}
	if err := checkCaller(c); err != nil {
		return err
	}
	if seq < 0 {
		return Invalid("seq", "seq cannot be negative")
	}
	if err := CheckID("referral", referralID); err != nil {
		_ = s.AuditCaller(ctx, c, ActionUpdate, "referral.read_marker", nil, OutcomeInvalid, "invalid referral")
		return err
	}
	err := s.inTx(ctx, "", func(ctx context.Context, tx Tx) error {
		r, err := tx.Referral(ctx, referralID)
		if errors.Is(err, ErrNotFound) {
			return NotFound("referral")
		}
		if err != nil {
			return fmt.Errorf("read referral %s: %w", referralID, err)
		}
		if !CanView(c.User, r) {
			return NotFound("referral")
		}
		if seq > r.HeadSeq {
			return Invalid("seq", "seq %d is beyond the latest event %d", seq, r.HeadSeq)
		}
		if err := tx.SetReadMarker(ctx, referralID, c.User.ID, seq); err != nil {
			return fmt.Errorf("set read marker on referral %s: %w", referralID, err)
		}
		return s.appendAudit(ctx, tx, s.entry(c, ActionUpdate, "referral.read_marker", &r, OutcomeSuccess, fmt.Sprintf("seq=%d", seq)))
	})
	if err != nil && CodeOf(err) == CodeNotFound {
		e := s.entry(c, ActionUpdate, "referral.read_marker", nil, OutcomeDenied, string(CodeNotFound))
		e.ReferralID = referralID
		_ = s.Audit(context.WithoutCancel(ctx), e)
	}
	return err
}

// RoomEvents returns up to limit stored events of a referral with seq >
// after, for the transport replaying or repairing a room whose subscription
// Subscribe has authorised and audited. It audits nothing itself: a
// repair is the platform's read, not a user's.
func (s *Service) RoomEvents(ctx context.Context, referralID string, after int64, limit int) ([]Event, error) {
	events, err := s.store.Events(ctx, referralID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("read events of referral %s: %w", referralID, err)
	}
	return events, nil
}

// Pathways lists the pathways, their forms and policies, for any signed-in
// user: they are what a referral form is rendered from.
func (s *Service) Pathways(ctx context.Context, c Caller) ([]Pathway, error) {
	if err := checkReader(c); err != nil {
		return nil, err
	}
	ps, err := s.store.Pathways(ctx)
	if err != nil {
		return nil, fmt.Errorf("list pathways: %w", err)
	}
	return ps, nil
}

// ReadMarker returns the last seq the caller has read in a referral they
// were just shown (0 when none is stored).
func (s *Service) ReadMarker(ctx context.Context, c Caller, referralID string) (int64, error) {
	seq, err := s.store.ReadMarker(ctx, referralID, c.User.ID)
	if err != nil {
		return 0, fmt.Errorf("read marker of referral %s: %w", referralID, err)
	}
	return seq, nil
}
