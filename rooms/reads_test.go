package rooms_test

import (
	"context"
	"sync/atomic"
	"testing"

	"patientpass/rooms"
)

// pathwayCounting is a store that counts its pathway reads.
type pathwayCounting struct {
	rooms.Store
	reads atomic.Int64
}

func (s *pathwayCounting) Pathway(ctx context.Context, id string) (rooms.Pathway, error) {
	s.reads.Add(1)
	return s.Store.Pathway(ctx, id)
}

// TestAuthorisingARoomReadsTheReferralAlone shows that a subscription and
// a typing indicator are authorised, and the subscription audited, from
// the referral alone, without reading its pathway, while a view still
// shows the plan completed from the pathway; and that the authorisation
// still follows the participants stored.
func TestAuthorisingARoomReadsTheReferralAlone(t *testing.T) {
	run := func(t *testing.T, s rooms.Store) {
		ctx := context.Background()
		counted := &pathwayCounting{Store: s}
		w := newWorld(t, counted)
		r := w.create(t, "a1", rooms.PriorityRoutine)

		before := counted.reads.Load()
		got, err := w.svc.Subscribe(ctx, w.specialist, r.ID, 1)
		if err != nil {
			t.Fatal(err)
		}
		if got.HeadSeq != r.HeadSeq {
			t.Fatalf("subscribe head %d; want %d", got.HeadSeq, r.HeadSeq)
		}
		if _, err := w.svc.Authorize(ctx, w.referrer, r.ID, "referral.typing"); err != nil {
			t.Fatal(err)
		}
		if n := counted.reads.Load() - before; n != 0 {
			t.Errorf("subscribing and typing read the pathway %d times; want none", n)
		}
		if a := w.auditFor(t, rooms.AuditFilter{ReferralID: r.ID, Event: "referral.subscribe"}); len(a) != 1 || a[0].Outcome != rooms.OutcomeSuccess || a[0].PatientNHSNumber != r.Patient.NHSNumber {
			t.Fatalf("subscribe audit %+v; want one success naming the patient", a)
		}
		if _, err := w.svc.Subscribe(ctx, w.outsider, r.ID, 0); rooms.CodeOf(err) != rooms.CodeNotFound {
			t.Fatalf("an outsider's subscription = %v; want not_found", err)
		}

		view, err := w.svc.Referral(ctx, w.specialist, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(view.Plan.Sections) != 8 || view.Plan.Sections[0].Name != "imaging" {
			t.Fatalf("viewed plan %+v; want the 8 MSCC sections, imaging first", view.Plan.Sections)
		}
	}
	eachEmptyStore(t, run)
}
