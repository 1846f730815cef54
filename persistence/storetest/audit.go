package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"patientpass/rooms"
)

// appendAudit appends e to chain in a transaction of its own and returns
// the entry as it must have been stored: linked, by rooms.AuditEntry.Link,
// to the head the chain had before. It fails the test unless the store
// holds exactly that as the chain's last entry.
func appendAudit(t *testing.T, s rooms.Store, chain int, e rooms.AuditEntry) rooms.AuditEntry {
	t.Helper()
	e.Chain = chain
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.AppendAudit(ctx, e) })
	want := e
	want.Link(chainHead(t, s, chain, -1))
	got, err := s.AuditEntries(t.Context(), chain, want.Seq-1, 0)
	if err != nil {
		t.Fatalf("read chain %d: %v", chain, err)
	}
	checkAuditEntries(t, fmt.Sprintf("entry appended to chain %d", chain), got, []rooms.AuditEntry{want})
	if len(got) == 1 {
		want.ID = got[0].ID
	}
	return want
}

// chainHead returns the head of chain moved back by delta entries (0 for
// the head itself), read from the stored entries.
func chainHead(t *testing.T, s rooms.Store, chain int, delta int64) rooms.AuditHead {
	t.Helper()
	heads, err := s.AuditHeads(t.Context())
	if err != nil {
		t.Fatalf("read heads: %v", err)
	}
	for _, h := range heads {
		if h.Chain != chain {
			continue
		}
		seq := h.Seq + delta
		if seq <= 0 {
			return rooms.AuditHead{Chain: chain}
		}
		entries, err := s.AuditEntries(t.Context(), chain, seq-1, 1)
		if err != nil || len(entries) != 1 {
			t.Fatalf("read entry %d of chain %d: %v, %v", seq, chain, entries, err)
		}
		return rooms.AuditHead{Chain: chain, Seq: seq, Hash: entries[0].Hash}
	}
	t.Fatalf("chain %d has no head", chain)
	return rooms.AuditHead{}
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
	{"store_decides_the_position", func(t *testing.T, s rooms.Store) {
		first := appendAudit(t, s, 2, auditEntry("u-a", "login", "", rooms.OutcomeSuccess, at(0)))
		// An entry claiming the first position is linked after the head
		// all the same: the caller has no say in where it goes.
		forged := auditEntry("u-b", "login", "", rooms.OutcomeSuccess, at(time.Second))
		forged.Seq, forged.PrevHash, forged.Hash = 1, "", "forged"
		second := appendAudit(t, s, 2, forged)
		if second.Seq != 2 || second.PrevHash != first.Hash {
			t.Errorf("second entry stored at position %d after %q; want 2 after %q", second.Seq, second.PrevHash, first.Hash)
		}
		if _, brk, err := rooms.VerifyAudit(t.Context(), s); err != nil || brk != nil {
			t.Errorf("verify: %v, %v", brk, err)
		}
	}},
	{"entry_with_every_field_and_odd_text_hashes_as_in_go", func(t *testing.T, s rooms.Store) {
		// What the store hashes must be byte for byte what ComputeHash
		// encodes: quotes, escapes, HTML characters, non-ASCII text.
		e := auditEntry("u-\"a\"", "referral.view", "r-<1>&", rooms.OutcomeSuccess, at(0).Add(1234567*time.Nanosecond))
		e.Detail = "status=submitted \\ \u2028 naïve 🚑 \n\t"
		e.ClientAddr = "[2001:db8::1]:443"
		appendAudit(t, s, 9, e)
		e.ReferralID, e.PatientNHSNumber, e.Detail, e.Node, e.ClientAddr = "", "", "", "", ""
		appendAudit(t, s, 9, e)
		if _, brk, err := rooms.VerifyAudit(t.Context(), s); err != nil || brk != nil {
			t.Errorf("verify: %v, %v", brk, err)
		}
	}},
	{"rolled_back_append_leaves_the_head", func(t *testing.T, s rooms.Store) {
		first := appendAudit(t, s, 1, auditEntry("u-a", "login", "", rooms.OutcomeSuccess, at(0)))
		err := s.InTx(t.Context(), func(tx rooms.Tx) error {
			e := auditEntry("u-a", "logout", "", rooms.OutcomeSuccess, at(time.Second))
			e.Chain = 1
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
	{"trail_filters_by_action_organisation_time_and_page", auditTrail},
}

// auditTrail checks the filters of an organisation's audit trail: action,
// organisation (by actor, user or display, and by referral), time range and
// the cursor of the next page.
func auditTrail(t *testing.T, s rooms.Store) {
	f := newFixture(t, s)
	f.createReferral(t, f.referral("r-1", at(0))) // RJR refers to RET
	toREN := f.referral("r-2", at(0))
	toREN.PathwayID, toREN.ReceivingOrganisation = f.breast.ID, f.breast.ReceivingOrganisation
	f.createReferral(t, toREN)
	createDisplays(t, s, display("d-1", "RET", at(0)), display("d-2", "REN", at(0)))

	var all []rooms.AuditEntry
	for i, spec := range []struct {
		actor, event, referral string
		action                 rooms.AuditAction
	}{
		{f.specialist.ID, "login", "", rooms.ActionExecute},           // 0: RET by its user
		{f.referrer.ID, "referral.create", "r-1", rooms.ActionCreate}, // 1: RJR by its user; RET receives r-1
		{"display:d-1", "wallboard.view", "", rooms.ActionRead},       // 2: RET by its display
		{f.outsider.ID, "referral.view", "r-1", rooms.ActionRead},     // 3: RBL by its user; r-1 is RJR's and RET's
		{f.outsider.ID, "login", "", rooms.ActionExecute},             // 4: RBL by its user
		{"display:d-2", "wallboard.view", "", rooms.ActionRead},       // 5: REN by its display
		{"u-unknown", "login.failed", "", rooms.ActionExecute},        // 6: nobody's
		{f.referrer.ID, "referral.create", "r-2", rooms.ActionCreate}, // 7: RJR by its user; REN receives r-2
		{f.specialist.ID, "referral.view", "r-2", rooms.ActionRead},   // 8: RET by its user; RJR's and REN's r-2
		{"d-1", "login.failed", "", rooms.ActionExecute},              // 9: not d-1's: a display acts as display:<id>
	} {
		key := spec.referral
		if key == "" {
			key = spec.actor
		}
		e := auditEntry(spec.actor, spec.event, spec.referral, rooms.OutcomeSuccess, at(time.Duration(i)*time.Second))
		e.Action = spec.action
		all = append(all, appendAudit(t, s, rooms.AuditChainFor(key), e))
	}
	pick := func(idx ...int) []rooms.AuditEntry {
		var out []rooms.AuditEntry
		for _, i := range idx {
			out = append(out, all[i])
		}
		return out
	}
	before := func(i int) int64 { return all[i].ID }
	for _, c := range []struct {
		name   string
		filter rooms.AuditFilter
		want   []rooms.AuditEntry
	}{
		{"action_read", rooms.AuditFilter{Action: rooms.ActionRead}, pick(8, 5, 3, 2)},
		{"action_create", rooms.AuditFilter{Action: rooms.ActionCreate}, pick(7, 1)},
		{"action_execute", rooms.AuditFilter{Action: rooms.ActionExecute}, pick(9, 6, 4, 0)},
		{"action_nothing_matches", rooms.AuditFilter{Action: rooms.ActionDelete}, nil},
		{"organisation_receiving", rooms.AuditFilter{Organisation: "RET"}, pick(8, 3, 2, 1, 0)},
		{"organisation_referring", rooms.AuditFilter{Organisation: "RJR"}, pick(8, 7, 3, 1)},
		{"organisation_of_users_only", rooms.AuditFilter{Organisation: "RBL"}, pick(4, 3)},
		{"organisation_of_a_display_and_a_referral", rooms.AuditFilter{Organisation: "REN"}, pick(8, 7, 5)},
		{"organisation_with_nothing", rooms.AuditFilter{Organisation: "REP"}, nil},
		{"from_and_to", rooms.AuditFilter{From: at(3 * time.Second), To: at(7 * time.Second)}, pick(6, 5, 4, 3)},
		{"from", rooms.AuditFilter{From: at(8 * time.Second)}, pick(9, 8)},
		{"to", rooms.AuditFilter{To: at(time.Second)}, pick(0)},
		{"to_a_microsecond_later", rooms.AuditFilter{To: at(time.Second + time.Microsecond)}, pick(1, 0)},
		{"from_equals_to", rooms.AuditFilter{From: at(time.Second), To: at(time.Second)}, nil},
		{"organisation_and_action", rooms.AuditFilter{Organisation: "RJR", Action: rooms.ActionCreate}, pick(7, 1)},
		{"organisation_and_from", rooms.AuditFilter{Organisation: "RET", From: at(2 * time.Second)}, pick(8, 3, 2)},
		{"organisation_and_actor", rooms.AuditFilter{Organisation: "RET", ActorID: f.outsider.ID}, pick(3)},
		{"page_1", rooms.AuditFilter{Limit: 3}, pick(9, 8, 7)},
		{"page_2", rooms.AuditFilter{Limit: 3, Before: before(7)}, pick(6, 5, 4)},
		{"page_3", rooms.AuditFilter{Limit: 3, Before: before(4)}, pick(3, 2, 1)},
		{"page_4", rooms.AuditFilter{Limit: 3, Before: before(1)}, pick(0)},
		{"page_after_the_last", rooms.AuditFilter{Limit: 3, Before: before(0)}, nil},
		{"organisation_page_1", rooms.AuditFilter{Organisation: "RET", Limit: 2}, pick(8, 3)},
		{"organisation_page_2", rooms.AuditFilter{Organisation: "RET", Limit: 2, Before: before(3)}, pick(2, 1)},
		{"organisation_page_3", rooms.AuditFilter{Organisation: "RET", Limit: 2, Before: before(1)}, pick(0)},
		{"one_by_id", rooms.AuditFilter{ID: before(5)}, pick(5)},
		{"one_by_id_in_its_organisation", rooms.AuditFilter{ID: before(8), Organisation: "REN"}, pick(8)},
		{"one_by_id_outside_the_organisation", rooms.AuditFilter{ID: before(4), Organisation: "RET"}, nil},
	} {
		got, err := s.AuditLog(t.Context(), c.filter)
		if err != nil {
			t.Fatalf("%s: read audit log: %v", c.name, err)
		}
		checkAuditEntries(t, c.name, got, c.want)
	}
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
