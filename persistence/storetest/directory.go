package storetest

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"patientpass/rooms"
)

var organisationTests = []subtest{
	{"put_then_get_returns_it", func(t *testing.T, s rooms.Store) {
		want := rooms.Organisation{ODS: "RET", Name: "The Walton Centre"}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.PutOrganisation(ctx, want) })
		got, err := s.Organisation(t.Context(), "RET")
		if err != nil {
			t.Fatalf("get organisation: %v", err)
		}
		if got != want {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}},
	{"put_again_replaces_the_name", func(t *testing.T, s rooms.Store) {
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			return tx.PutOrganisation(ctx, rooms.Organisation{ODS: "RET", Name: "Old name"})
		})
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			return tx.PutOrganisation(ctx, rooms.Organisation{ODS: "RET", Name: "New name"})
		})
		got, err := s.Organisation(t.Context(), "RET")
		if err != nil {
			t.Fatalf("get organisation: %v", err)
		}
		if got.Name != "New name" {
			t.Errorf("name %q after upsert, want %q", got.Name, "New name")
		}
		all, err := s.Organisations(t.Context())
		if err != nil {
			t.Fatalf("list organisations: %v", err)
		}
		if len(all) != 1 {
			t.Errorf("upsert left %d organisations, want 1: %+v", len(all), all)
		}
	}},
	{"list_returns_every_organisation", func(t *testing.T, s rooms.Store) {
		want := []rooms.Organisation{{ODS: "RBL", Name: "Wirral"}, {ODS: "RET", Name: "Walton"}, {ODS: "RJR", Name: "Chester"}}
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			for _, i := range []int{1, 2, 0} {
				if err := tx.PutOrganisation(ctx, want[i]); err != nil {
					return err
				}
			}
			return nil
		})
		got, err := s.Organisations(t.Context())
		if err != nil {
			t.Fatalf("list organisations: %v", err)
		}
		slices.SortFunc(got, func(a, b rooms.Organisation) int { return strings.Compare(a.ODS, b.ODS) })
		if !slices.Equal(got, want) {
			t.Errorf("got %+v, want %+v", got, want)
		}
	}},
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.Organisation(t.Context(), "XXX")
		wantNotFound(t, "get missing organisation", err)
		all, err := s.Organisations(t.Context())
		if err != nil || len(all) != 0 {
			t.Errorf("empty store lists %+v, %v; want none", all, err)
		}
	}},
}

var userTests = []subtest{
	{"create_then_get_round_trips_every_field", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := testUser("u-new", "new@demo.test", "RET", at(time.Minute), rooms.RoleSpecialist, rooms.RoleAdmin, rooms.RoleBedManager)
		want.ProfessionalBody = rooms.BodyNMC
		want.RegistrationNumber = "12A3456E"
		want.Status = rooms.UserPending
		want.TOTPSecret = "JBSWY3DPEHPK3PXP"
		want.TOTPPendingSecret = "GEZDGNBVGY3TQOJQ"
		want.UpdatedAt = at(2 * time.Minute)
		inTx(t, f.s, func(ctx context.Context, tx rooms.Tx) error { return tx.CreateUser(ctx, want) })
		got, err := s.User(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("get user: %v", err)
		}
		checkUser(t, "user by id", got, want)
		got, err = s.UserByEmail(t.Context(), want.Email)
		if err != nil {
			t.Fatalf("get user by email: %v", err)
		}
		checkUser(t, "user by email", got, want)
	}},
	{"roles_keep_their_order", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		for i, roles := range [][]rooms.Role{
			{rooms.RoleAdmin, rooms.RoleClinician},
			{rooms.RoleClinician, rooms.RoleAdmin},
			nil,
		} {
			u := testUser("u-roles-"+string(rune('a'+i)), "roles"+string(rune('a'+i))+"@demo.test", "RET", at(0), roles...)
			inTx(t, f.s, func(ctx context.Context, tx rooms.Tx) error { return tx.CreateUser(ctx, u) })
			got, err := s.User(t.Context(), u.ID)
			if err != nil {
				t.Fatalf("get user: %v", err)
			}
			if !slices.Equal(got.Roles, roles) && len(got.Roles)+len(roles) > 0 {
				t.Errorf("roles %v came back as %v", roles, got.Roles)
			}
			if got.PrimaryRole() != u.PrimaryRole() {
				t.Errorf("primary role %q, want %q", got.PrimaryRole(), u.PrimaryRole())
			}
		}
	}},
	{"email_is_unique_after_normalising", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		dup := testUser("u-dup", "  Referrer@Demo.TEST ", "RJR", at(0), rooms.RoleClinician)
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateUser(t.Context(), dup) })
		wantDuplicate(t, "create user with a taken email in other case", err)
		if _, err := s.User(t.Context(), dup.ID); err == nil {
			t.Errorf("refused user %s was stored", dup.ID)
		}
		same := testUser("u-same", f.referrer.Email, "RJR", at(0), rooms.RoleClinician)
		err = s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.CreateUser(t.Context(), same) })
		wantDuplicate(t, "create user with a taken email", err)
	}},
	{"email_lookup_is_by_normalised_email", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		u := testUser("u-mixed", "Mixed.Case@Demo.Test", "RET", at(0), rooms.RoleCoordinator)
		inTx(t, f.s, func(ctx context.Context, tx rooms.Tx) error { return tx.CreateUser(ctx, u) })
		for _, email := range []string{"mixed.case@demo.test", "MIXED.CASE@DEMO.TEST", " Mixed.Case@Demo.Test "} {
			got, err := s.UserByEmail(t.Context(), email)
			if err != nil {
				t.Errorf("look up %q: %v", email, err)
				continue
			}
			if got.ID != u.ID {
				t.Errorf("look up %q found %s, want %s", email, got.ID, u.ID)
			}
			if rooms.NormaliseEmail(got.Email) != rooms.NormaliseEmail(u.Email) {
				t.Errorf("stored email %q is not %q", got.Email, u.Email)
			}
		}
		_, err := s.UserByEmail(t.Context(), "nobody@demo.test")
		wantNotFound(t, "look up unknown email", err)
	}},
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.User(t.Context(), "u-missing")
		wantNotFound(t, "get missing user", err)
	}},
	{"update_replaces_every_field", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := f.colleague
		want.Email = "colleague.new@demo.test"
		want.Name = "Dr Renamed"
		want.ProfessionalBody = rooms.BodyHCPC
		want.RegistrationNumber = "PA12345"
		want.Organisation = "RET"
		want.Roles = []rooms.Role{rooms.RoleBedManager, rooms.RoleCoordinator}
		want.Status = rooms.UserSuspended
		want.PasswordHash = "$argon2id$v=19$m=65536,t=1,p=4$bmV3$bmV3aGFzaA"
		want.TOTPSecret = "KRSXG5CTMVRXEZLU"
		want.TOTPPendingSecret = "MFRGGZDFMZTWQ2LK"
		want.UpdatedAt = at(time.Hour)
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.UpdateUser(ctx, want) })
		got, err := s.User(t.Context(), want.ID)
		if err != nil {
			t.Fatalf("get user: %v", err)
		}
		checkUser(t, "updated user", got, want)
		if _, err := s.UserByEmail(t.Context(), f.colleague.Email); err == nil {
			t.Errorf("old email %s still finds the user", f.colleague.Email)
		}
		if got, err := s.UserByEmail(t.Context(), want.Email); err != nil || got.ID != want.ID {
			t.Errorf("new email finds %+v, %v; want user %s", got.ID, err, want.ID)
		}
		other, err := s.User(t.Context(), f.referrer.ID)
		if err != nil {
			t.Fatalf("get other user: %v", err)
		}
		checkUser(t, "user not updated", other, f.referrer)
	}},
	{"update_to_a_taken_email_is_duplicate", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		u := f.colleague
		u.Email = f.referrer.Email
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.UpdateUser(t.Context(), u) })
		wantDuplicate(t, "update user to a taken email", err)
	}},
	{"update_of_missing_user_is_not_found", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		u := testUser("u-ghost", "ghost@demo.test", "RET", at(0))
		err := s.InTx(t.Context(), func(tx rooms.Tx) error { return tx.UpdateUser(t.Context(), u) })
		wantNotFound(t, "update missing user", err)
	}},
	{"list_filters_by_organisation_and_status_oldest_first", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		pending := testUser("u-pending", "pending@demo.test", "RET", at(-150*time.Minute), rooms.RoleClinician)
		pending.Status = rooms.UserPending
		suspended := testUser("u-suspended", "suspended@demo.test", "RJR", at(-5*time.Hour), rooms.RoleClinician)
		suspended.Status = rooms.UserSuspended
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error {
			if err := tx.CreateUser(ctx, pending); err != nil {
				return err
			}
			return tx.CreateUser(ctx, suspended)
		})
		for _, c := range []struct {
			name   string
			filter rooms.UserFilter
			want   []rooms.User
		}{
			{"all", rooms.UserFilter{}, []rooms.User{suspended, f.referrer, f.colleague, pending, f.specialist, f.outsider}},
			{"organisation", rooms.UserFilter{Organisation: "RET"}, []rooms.User{pending, f.specialist}},
			{"status", rooms.UserFilter{Status: rooms.UserActive}, []rooms.User{f.referrer, f.colleague, f.specialist, f.outsider}},
			{"organisation_and_status", rooms.UserFilter{Organisation: "RJR", Status: rooms.UserSuspended}, []rooms.User{suspended}},
			{"nothing_matches", rooms.UserFilter{Organisation: "REN"}, nil},
		} {
			got, err := s.Users(t.Context(), c.filter)
			if err != nil {
				t.Fatalf("%s: list users: %v", c.name, err)
			}
			var gotIDs, wantIDs []string
			for _, u := range got {
				gotIDs = append(gotIDs, u.ID)
			}
			for _, u := range c.want {
				wantIDs = append(wantIDs, u.ID)
			}
			checkIDs(t, c.name, gotIDs, wantIDs)
			for i := range min(len(got), len(c.want)) {
				checkUser(t, c.name+" "+got[i].ID, got[i], c.want[i])
			}
		}
	}},
}

var pathwayTests = []subtest{
	{"put_then_get_round_trips_the_definition", func(t *testing.T, s rooms.Store) {
		newFixture(t, s)
		got, err := s.Pathway(t.Context(), "mscc")
		if err != nil {
			t.Fatalf("get pathway: %v", err)
		}
		if want := rooms.MSCC("RET"); !reflect.DeepEqual(got, want) {
			checkJSON(t, "pathway", got, want)
			t.Errorf("pathway differs from what was stored:\ngot  %+v\nwant %+v", got, want)
		}
	}},
	{"put_again_replaces_it", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		want := f.mscc
		want.Name = "MSCC (revised)"
		want.PlanSections = want.PlanSections[:3]
		want.BedTypes = []string{"spinal"}
		want.Triage.Urgent = 2 * time.Hour
		want.Form = append(slices.Clone(want.Form[:2]), rooms.FormField{Key: "extra", Label: "Extra", Type: rooms.FieldChoice, Options: []string{"a", "b"}})
		inTx(t, s, func(ctx context.Context, tx rooms.Tx) error { return tx.PutPathway(ctx, want) })
		got, err := s.Pathway(t.Context(), "mscc")
		if err != nil {
			t.Fatalf("get pathway: %v", err)
		}
		if !reflect.DeepEqual(got, want) {
			checkJSON(t, "replaced pathway", got, want)
			t.Errorf("replaced pathway differs:\ngot  %+v\nwant %+v", got, want)
		}
		all, err := s.Pathways(t.Context())
		if err != nil {
			t.Fatalf("list pathways: %v", err)
		}
		if len(all) != 2 {
			t.Errorf("%d pathways after replacing one of 2", len(all))
		}
	}},
	{"list_returns_every_pathway", func(t *testing.T, s rooms.Store) {
		f := newFixture(t, s)
		got, err := s.Pathways(t.Context())
		if err != nil {
			t.Fatalf("list pathways: %v", err)
		}
		slices.SortFunc(got, func(a, b rooms.Pathway) int { return strings.Compare(a.ID, b.ID) })
		want := []rooms.Pathway{f.breast, f.mscc}
		if !reflect.DeepEqual(got, want) {
			checkJSON(t, "pathways", got, want)
			t.Errorf("pathways differ")
		}
	}},
	{"missing_is_not_found", func(t *testing.T, s rooms.Store) {
		_, err := s.Pathway(t.Context(), "nope")
		wantNotFound(t, "get missing pathway", err)
	}},
}
