package storetest

import (
	"context"
	"testing"
	"time"

	"patientpass/rooms"
)

// appendAudit links e to the head of its chain the way the service does and
// appends it, in a transaction of its own. It returns the entry as stored.
func appendAudit(t *testing.T, s rooms.Store, chain int, e rooms.AuditEntry) rooms.AuditEntry {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		var err error
		e, err = linkAudit(ctx, tx, chain, e)
		if err != nil {
			return err
		}
		return tx.AppendAudit(ctx, e)
	})
	return e
}

// linkAudit locks chain and sets e's chain position, previous hash and hash.
func linkAudit(ctx context.Context, tx rooms.Tx, chain int, e rooms.AuditEntry) (rooms.AuditEntry, error) {
	head, err := tx.LockAuditChain(ctx, chain)
	if err != nil {
		return e, err
	}
	e.Chain = chain
	e.Seq = head.Seq + 1
	e.PrevHash = head.Hash
	e.At = e.At.UTC().Truncate(time.Microsecond)
	e.Hash = e.ComputeHash()
	return e, nil
}

func auditEntry(actor, event, referral, outcome string, when time.Time) rooms.AuditEntry {
	e := rooms.AuditEntry{
		At:                when,
		ActorID:           actor,
		ActorRegistration: "7654321",
		ActorRole:         rooms.RoleSpecialist,
		Action:            rooms.ActionRead,
		Event:             event,
		ReferralID:        referral,
		Outcome:           outcome,
		Detail:            "status=submitted",
		Node:              "node-1",
		ClientAddr:        "192.0.2.10",
	}
	if referral != "" {
		e.PatientNHSNumber = "9434765919"
	}
	return e
}

// checkAuditEntries compares entries field by field, ignoring the store's
// ID, which must merely be set.
func checkAuditEntries(t *testing.T, what string, got, want []rooms.AuditEntry) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d entries, want %d: %+v", what, len(got), len(want), got)
		return
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.ID == 0 {
			t.Errorf("%s: entry %d has no ID", what, i)
		}
		g.ID, w.ID = 0, 0
		g.At, w.At = normTime(g.At), normTime(w.At)
		if g != w {
			t.Errorf("%s: entry %d:\ngot  %+v\nwant %+v", what, i, g, w)
		}
	}
}

var auditTests = []subtest{
	{"empty_chain_has_seq_zero_and_no_hash", func(t *testing.T, s rooms.Store) {
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			for _, chain := range []int{0, 3, rooms.AuditChains - 1} {
				head, err := tx.LockAuditChain(ctx, chain)
				if err != nil {
					return err
				}
				if head != (rooms.AuditHead{Chain: chain}) {
					t.Errorf("head of empty chain %d: %+v", chain, head)
				}
			}
			return nil
		})
		heads, err := s.AuditHeads(t.Context())
		if err != nil {
			t.Fatalf("read heads: %v", err)
		}
		checkHeads(t, heads, map[int]rooms.AuditHead{})
	}},
	{"append_moves_the_head_and_entries_read_back", func(t *testing.T, s rooms.Store) {
		var chain3 []rooms.AuditEntry
		for i := range 3 {
			e := auditEntry("u-specialist", "referral.view", "r-1", rooms.OutcomeSuccess, at(time.Duration(i)*time.Second))
			chain3 = append(chain3, appendAudit(t, s, 3, e))
		}
		other := appendAudit(t, s, 5, auditEntry("u-outsider", "login.failed", "", rooms.OutcomeDenied, at(time.Minute)))

		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			head, err := tx.LockAuditChain(ctx, 3)
			if err != nil {
				return err
			}
			if want := (rooms.AuditHead{Chain: 3, Seq: 3, Hash: chain3[2].Hash}); head != want {
				t.Errorf("head of chain 3: %+v, want %+v", head, want)
			}
			return nil
		})
		heads, err := s.AuditHeads(t.Context())
		if err != nil {
			t.Fatalf("read heads: %v", err)
		}
		checkHeads(t, heads, map[int]rooms.AuditHead{
			3: {Chain: 3, Seq: 3, Hash: chain3[2].Hash},
			5: {Chain: 5, Seq: 1, Hash: other.Hash},
		})

		for _, c := range []struct {
			name  string
			chain int
			after int64
			limit int
			want  []rooms.AuditEntry
		}{
			{"whole_chain", 3, 0, 0, chain3},
			{"after_seq", 3, 1, 0, chain3[1:]},
			{"limit", 3, 0, 2, chain3[:2]},
			{"after_and_limit", 3, 1, 1, chain3[1:2]},
			{"other_chain", 5, 0, 10, []rooms.AuditEntry{other}},
			{"empty_chain", 4, 0, 10, nil},
		} {
			got, err := s.AuditEntries(t.Context(), c.chain, c.after, c.limit)
			if err != nil {
				t.Fatalf("%s: read entries: %v", c.name, err)
			}
			checkAuditEntries(t, c.name, got, c.want)
			for _, e := range got {
				if e.ComputeHash() != e.Hash {
					t.Errorf("%s: entry %d no longer matches its hash", c.name, e.Seq)
				}
			}
		}
		all, err := s.AuditEntries(t.Context(), 3, 0, 0)
		if err != nil {
			t.Fatalf("read entries: %v", err)
		}
		for i := 1; i < len(all); i++ {
			if all[i].ID <= all[i-1].ID {
				t.Errorf("entry ids %d then %d: not increasing", all[i-1].ID, all[i].ID)
			}
		}

		checked, brk, err := rooms.VerifyAudit(t.Context(), s)
		if err != nil || brk != nil || checked != 4 {
			t.Errorf("verify: checked %d, break %v, err %v; want 4 entries intact", checked, brk, err)
		}
	}},
	{"taken_position_is_refused", func(t *testing.T, s rooms.Store) {
		first := appendAudit(t, s, 2, auditEntry("u-a", "login", "", rooms.OutcomeSuccess, at(0)))
		forged := auditEntry("u-b", "login", "", rooms.OutcomeSuccess, at(time.Second))
		forged.Chain, forged.Seq, forged.PrevHash = 2, 1, ""
		forged.Hash = forged.ComputeHash()
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.AppendAudit(t.Context(), forged) })
		if err == nil {
			t.Errorf("a second entry at chain 2 position 1 was accepted")
		}
		got, err := s.AuditEntries(t.Context(), 2, 0, 0)
		if err != nil {
			t.Fatalf("read entries: %v", err)
		}
		checkAuditEntries(t, "chain after refusal", got, []rooms.AuditEntry{first})
	}},
	{"rolled_back_append_leaves_the_head", func(t *testing.T, s rooms.Store) {
		first := appendAudit(t, s, 1, auditEntry("u-a", "login", "", rooms.OutcomeSuccess, at(0)))
		err := s.InTx(t.Context(), func(tx rooms.Tx) error {
			e, err := linkAudit(t.Context(), tx, 1, auditEntry("u-a", "logout", "", rooms.OutcomeSuccess, at(time.Second)))
			if err != nil {
				return err
			}
			if err := tx.AppendAudit(t.Context(), e); err != nil {
				return err
			}
			return errBoom
		})
		if err != errBoom {
			t.Fatalf("transaction returned %v, want the function's error", err)
		}
		heads, err := s.AuditHeads(t.Context())
		if err != nil {
			t.Fatalf("read heads: %v", err)
		}
		checkHeads(t, heads, map[int]rooms.AuditHead{1: {Chain: 1, Seq: 1, Hash: first.Hash}})
		if _, brk, err := rooms.VerifyAudit(t.Context(), s); err != nil || brk != nil {
			t.Errorf("verify after rollback: %v, %v", brk, err)
		}
	}},
	{"log_filters_newest_first", func(t *testing.T, s rooms.Store) {
		var all []rooms.AuditEntry
		for i, spec := range []struct{ actor, event, referral, outcome string }{
			{"u-1", "referral.view", "r-1", rooms.OutcomeSuccess},
			{"u-2", "referral.view", "r-1", rooms.OutcomeDenied},
			{"u-1", "login", "", rooms.OutcomeSuccess},
			{"u-1", "referral.message", "r-2", rooms.OutcomeSuccess},
			{"u-2", "login.failed", "", rooms.OutcomeDenied},
			{"u-1", "referral.view", "r-2", rooms.OutcomeSuccess},
		} {
			key := spec.referral
			if key == "" {
				key = spec.actor
			}
			e := auditEntry(spec.actor, spec.event, spec.referral, spec.outcome, at(time.Duration(i)*time.Second))
			all = append(all, appendAudit(t, s, rooms.AuditChainFor(key), e))
		}
		pick := func(idx ...int) []rooms.AuditEntry {
			var out []rooms.AuditEntry
			for _, i := range idx {
				out = append(out, all[i])
			}
			return out
		}
		for _, c := range []struct {
			name   string
			filter rooms.AuditFilter
			want   []rooms.AuditEntry
		}{
			{"no_filter", rooms.AuditFilter{}, pick(5, 4, 3, 2, 1, 0)},
			{"referral", rooms.AuditFilter{ReferralID: "r-1"}, pick(1, 0)},
			{"actor", rooms.AuditFilter{ActorID: "u-2"}, pick(4, 1)},
			{"event", rooms.AuditFilter{Event: "referral.view"}, pick(5, 1, 0)},
			{"outcome", rooms.AuditFilter{Outcome: rooms.OutcomeDenied}, pick(4, 1)},
			{"limit", rooms.AuditFilter{Limit: 2}, pick(5, 4)},
			{"combined", rooms.AuditFilter{ActorID: "u-1", Event: "referral.view", Limit: 1}, pick(5)},
			{"nothing_matches", rooms.AuditFilter{ReferralID: "r-none"}, nil},
		} {
			got, err := s.AuditLog(t.Context(), c.filter)
			if err != nil {
				t.Fatalf("%s: read audit log: %v", c.name, err)
			}
			checkAuditEntries(t, c.name, got, c.want)
		}
	}},
}

// checkHeads checks that heads holds exactly one head per chain, matching
// want and empty for chains want does not name.
func checkHeads(t *testing.T, heads []rooms.AuditHead, want map[int]rooms.AuditHead) {
	t.Helper()
	if len(heads) != rooms.AuditChains {
		t.Errorf("%d chain heads, want %d", len(heads), rooms.AuditChains)
	}
	seen := map[int]bool{}
	for _, h := range heads {
		if seen[h.Chain] {
			t.Errorf("chain %d has two heads", h.Chain)
		}
		seen[h.Chain] = true
		w, ok := want[h.Chain]
		if !ok {
			w = rooms.AuditHead{Chain: h.Chain}
		}
		if h != w {
			t.Errorf("head of chain %d: %+v, want %+v", h.Chain, h, w)
		}
	}
	for c := range rooms.AuditChains {
		if !seen[c] {
			t.Errorf("no head for chain %d", c)
		}
	}
}
