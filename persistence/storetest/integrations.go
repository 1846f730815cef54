package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"patientpass/rooms"
)

// integration returns a client of org registered at created.
func integration(id, org string, created time.Time) rooms.Integration {
	return rooms.Integration{ClientID: id, Name: "EPR " + id, Organisation: org,
		JWKS:   []byte(`{"keys":[{"kty":"EC","kid":"k-` + id + `","crv":"P-384","x":"AAAA","y":"BBBB"}]}`),
		Scopes: []string{"system/ServiceRequest.read", "system/Task.read"}, CreatedBy: "u-admin", CreatedAt: created}
}

func createIntegrations(t *testing.T, s rooms.Store, ins ...rooms.Integration) {
	t.Helper()
	inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
		for _, in := range ins {
			if err := tx.CreateIntegration(ctx, in); err != nil {
				return err
			}
		}
		return nil
	})
}

func checkIntegrations(t *testing.T, what string, got, want []rooms.Integration) {
	t.Helper()
	same := len(got) == len(want)
	for i := 0; same && i < len(got); i++ {
		g, w := got[i], want[i]
		same = g.ClientID == w.ClientID && g.Name == w.Name && g.Organisation == w.Organisation &&
			bytes.Equal(g.JWKS, w.JWKS) && slices.Equal(g.Scopes, w.Scopes) && g.CreatedBy == w.CreatedBy &&
			sameTime(g.CreatedAt, w.CreatedAt) && sameTimePtr(g.RevokedAt, w.RevokedAt)
	}
	if !same {
		t.Errorf("%s:\ngot  %+v\nwant %+v", what, got, want)
	}
}

// claim claims jti for client in a transaction of its own: true when it
// was new, false when used already.
func claim(ctx context.Context, s rooms.Store, clientID, jti string, exp time.Time) (bool, error) {
	err := s.InTx(ctx, func(tx rooms.Tx) error { return tx.ClaimAssertion(ctx, clientID, jti, exp) })
	if errors.Is(err, rooms.ErrDuplicate) {
		return false, nil
	}
	return err == nil, err
}

var integrationTests = []subtest{
	{"create_look_up_list_revoke", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		i1, i2, i3 := integration("c-1", "RET", at(0)), integration("c-2", "RET", at(time.Minute)), integration("c-3", "REN", at(2*time.Minute))
		i3.Scopes = []string{"system/*.read"}
		createIntegrations(t, s, i2, i3, i1)

		got, err := s.Integration(t.Context(), "c-1")
		if err != nil {
			t.Fatalf("get integration: %v", err)
		}
		checkIntegrations(t, "integration by id", []rooms.Integration{got}, []rooms.Integration{i1})
		list, err := s.Integrations(t.Context(), "RET")
		if err != nil {
			t.Fatalf("list integrations: %v", err)
		}
		checkIntegrations(t, "integrations of RET, newest first", list, []rooms.Integration{i2, i1})
		if list, err := s.Integrations(t.Context(), "RBL"); err != nil || len(list) != 0 {
			t.Errorf("integrations of an organisation with none: %+v, %v", list, err)
		}
		_, err = s.Integration(t.Context(), "c-none")
		wantNotFound(t, "unknown integration", err)

		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateIntegration(t.Context(), integration("c-1", "RET", at(0))) })
		if !errors.Is(err, rooms.ErrDuplicate) {
			t.Errorf("create an integration with a taken id: %v; want ErrDuplicate", err)
		}

		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			return tx.RevokeIntegration(ctx, "c-1", at(5*time.Minute))
		})
		i1.RevokedAt = ptr(at(5 * time.Minute))
		got, err = s.Integration(t.Context(), "c-1")
		if err != nil {
			t.Fatalf("get revoked integration: %v", err)
		}
		checkIntegrations(t, "revoked integration", []rooms.Integration{got}, []rooms.Integration{i1})
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.RevokeIntegration(t.Context(), "c-1", at(6*time.Minute)) })
		wantNotFound(t, "revoke a revoked integration", err)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.RevokeIntegration(t.Context(), "c-none", at(6*time.Minute)) })
		wantNotFound(t, "revoke an unknown integration", err)
		// Reads through a transaction see its own writes.
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.RevokeIntegration(ctx, "c-2", at(7*time.Minute)); err != nil {
				return err
			}
			in, err := tx.Integration(ctx, "c-2")
			if err != nil {
				return err
			}
			if in.RevokedAt == nil {
				t.Errorf("the transaction does not see its own revocation")
			}
			return nil
		})
	}},
	{"tokens", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		createIntegrations(t, s, integration("c-1", "RET", at(0)))
		tok := rooms.IntegrationToken{TokenHash: "th-1", ClientID: "c-1", Scopes: []string{"system/Task.read"},
			IssuedAt: at(time.Minute), ExpiresAt: at(6 * time.Minute)}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.CreateIntegrationToken(ctx, tok) })
		got, err := s.IntegrationToken(t.Context(), "th-1")
		if err != nil {
			t.Fatalf("get token: %v", err)
		}
		if got.TokenHash != tok.TokenHash || got.ClientID != tok.ClientID || !slices.Equal(got.Scopes, tok.Scopes) ||
			!sameTime(got.IssuedAt, tok.IssuedAt) || !sameTime(got.ExpiresAt, tok.ExpiresAt) {
			t.Errorf("token:\ngot  %+v\nwant %+v", got, tok)
		}
		_, err = s.IntegrationToken(t.Context(), "th-none")
		wantNotFound(t, "unknown token", err)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateIntegrationToken(t.Context(), tok) })
		if !errors.Is(err, rooms.ErrDuplicate) {
			t.Errorf("store a token with a taken hash: %v; want ErrDuplicate", err)
		}
	}},
	{"assertion_used_once", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		createIntegrations(t, s, integration("c-1", "RET", at(0)), integration("c-2", "RET", at(0)))
		ctx := t.Context()
		for _, c := range []struct {
			what, client, jti string
			want              bool
		}{
			{"first use", "c-1", "j-1", true},
			{"replay", "c-1", "j-1", false},
			{"the same jti of another client", "c-2", "j-1", true},
			{"another jti", "c-1", "j-2", true},
		} {
			if ok, err := claim(ctx, s, c.client, c.jti, at(5*time.Minute)); err != nil || ok != c.want {
				t.Errorf("%s: claimed %v, %v; want %v", c.what, ok, err, c.want)
			}
		}
		// A claim rolled back with its transaction is not used.
		err := s.InTx(ctx, func(tx rooms.Tx) error {
			if err := tx.ClaimAssertion(ctx, "c-1", "j-3", at(5*time.Minute)); err != nil {
				return err
			}
			return errBoom
		})
		if !errors.Is(err, errBoom) {
			t.Fatalf("rolled back claim: %v", err)
		}
		if ok, err := claim(ctx, s, "c-1", "j-3", at(5*time.Minute)); err != nil || !ok {
			t.Errorf("a jti whose claim was rolled back: claimed %v, %v; want true", ok, err)
		}
	}},
	{"concurrent_claims_of_one_jti", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		createIntegrations(t, s, integration("c-1", "RET", at(0)))
		for round := range 5 {
			jti := fmt.Sprintf("j-race-%d", round)
			if wins := race(t, 40, func() (bool, error) { return claim(t.Context(), s, "c-1", jti, at(5*time.Minute)) }); wins != 1 {
				t.Errorf("round %d: %d of 40 concurrent claims of one jti succeeded; want exactly 1", round, wins)
			}
		}
	}},
	{"prune", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		createIntegrations(t, s, integration("c-1", "RET", at(0)), integration("c-2", "RET", at(0)))
		ctx := t.Context()
		for _, c := range []struct {
			client, jti string
			exp         time.Duration
		}{{"c-1", "old", time.Minute}, {"c-1", "live", 10 * time.Minute}, {"c-2", "old", time.Minute}} {
			if ok, err := claim(ctx, s, c.client, c.jti, at(c.exp)); err != nil || !ok {
				t.Fatalf("claim %s of %s: %v, %v", c.jti, c.client, ok, err)
			}
		}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			for _, tok := range []rooms.IntegrationToken{
				{TokenHash: "th-old", ClientID: "c-1", Scopes: []string{}, IssuedAt: at(0), ExpiresAt: at(time.Minute)},
				{TokenHash: "th-live", ClientID: "c-1", Scopes: []string{}, IssuedAt: at(0), ExpiresAt: at(10 * time.Minute)},
				{TokenHash: "th-other", ClientID: "c-2", Scopes: []string{}, IssuedAt: at(0), ExpiresAt: at(time.Minute)},
			} {
				if err := tx.CreateIntegrationToken(ctx, tok); err != nil {
					return err
				}
			}
			return tx.PruneIntegration(ctx, "c-1", at(5*time.Minute))
		})
		if ok, err := claim(ctx, s, "c-1", "old", at(time.Minute)); err != nil || !ok {
			t.Errorf("a pruned jti: claimed %v, %v; want it gone", ok, err)
		}
		if ok, err := claim(ctx, s, "c-1", "live", at(10*time.Minute)); err != nil || ok {
			t.Errorf("a jti not yet expired: claimed %v, %v; want it kept", ok, err)
		}
		if ok, err := claim(ctx, s, "c-2", "old", at(time.Minute)); err != nil || ok {
			t.Errorf("another client's jti: claimed %v, %v; want it kept", ok, err)
		}
		_, err := s.IntegrationToken(ctx, "th-old")
		wantNotFound(t, "pruned token", err)
		for _, h := range []string{"th-live", "th-other"} {
			if _, err := s.IntegrationToken(ctx, h); err != nil {
				t.Errorf("token %s should be kept: %v", h, err)
			}
		}
	}},
}
