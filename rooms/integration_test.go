package rooms_test

import (
	"context"
	"crypto/elliptic"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"patientpass/rooms"
)

// register registers a client of the admin's organisation with one EC key.
func (w *world) register(t *testing.T, admin rooms.Caller, scopes ...string) rooms.Integration {
	t.Helper()
	in, err := w.svc.RegisterIntegration(context.Background(), admin, rooms.NewIntegration{
		Name: "Trust EPR", JWKS: keySet(ecJWK(t, "k1", elliptic.P384())), Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	return in
}

// adminOf returns an active admin of org.
func (w *world) adminOf(t *testing.T, org string) rooms.Caller {
	t.Helper()
	return w.user(t, "admin-"+strings.ToLower(org)+"@example.nhs.uk", org, rooms.RoleAdmin)
}

// assertion is a verified assertion of in, expiring in four minutes.
func (w *world) assertion(in rooms.Integration, jti string) rooms.Assertion {
	return rooms.Assertion{ClientID: in.ClientID, ID: jti, ExpiresAt: w.clock.Now().Add(4 * time.Minute)}
}

// token issues a token to in for scope and returns its caller.
func (w *world) token(t *testing.T, in rooms.Integration, jti, scope string) (rooms.IssuedToken, rooms.Caller) {
	t.Helper()
	ctx := context.Background()
	tok, err := w.svc.IssueIntegrationToken(ctx, w.assertion(in, jti), scope, "192.0.2.7")
	if err != nil {
		t.Fatalf("issue token: %v", err)
	}
	c, err := w.svc.IntegrationCallerByToken(ctx, tok.AccessToken, "192.0.2.7")
	if err != nil {
		t.Fatalf("use token: %v", err)
	}
	return tok, c
}

// everyScope is every scope a client may hold.
func everyScope() []string {
	scopes := []string{rooms.ScopeAll}
	for _, typ := range rooms.IntegrationResources {
		scopes = append(scopes, "system/"+typ+".read")
	}
	return scopes
}

func TestIntegrationsAreRegisteredListedAndRevokedByAdmins(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		admin := w.admin(t)
		good := rooms.NewIntegration{Name: " Trust EPR ", JWKS: keySet(ecJWK(t, "k1", elliptic.P384())), Scopes: []string{"system/*.read"}}
		for _, c := range []struct {
			name   string
			caller rooms.Caller
			change func(*rooms.NewIntegration)
			code   rooms.Code
			field  string
		}{
			{"a coordinator", w.coord, func(*rooms.NewIntegration) {}, rooms.CodeForbidden, ""},
			{"no name", admin, func(n *rooms.NewIntegration) { n.Name = "  " }, rooms.CodeInvalid, "name"},
			{"a name that is not text", admin, func(n *rooms.NewIntegration) { n.Name = "EPR\x00" }, rooms.CodeInvalid, "name"},
			{"a long name", admin, func(n *rooms.NewIntegration) { n.Name = strings.Repeat("n", 101) }, rooms.CodeInvalid, "name"},
			{"no keys", admin, func(n *rooms.NewIntegration) { n.JWKS = nil }, rooms.CodeInvalid, "jwks"},
			{"a private key", admin, func(n *rooms.NewIntegration) {
				n.JWKS = keySet(with(ecJWK(t, "k", elliptic.P384()), "d", "AAAA"))
			}, rooms.CodeInvalid, "jwks.keys[0].d"},
			{"no scopes", admin, func(n *rooms.NewIntegration) { n.Scopes = nil }, rooms.CodeInvalid, "scopes"},
			{"a write scope", admin, func(n *rooms.NewIntegration) { n.Scopes = []string{"system/*.write"} }, rooms.CodeInvalid, "scopes[0]"},
			{"a user scope", admin, func(n *rooms.NewIntegration) { n.Scopes = []string{"user/*.read"} }, rooms.CodeInvalid, "scopes[0]"},
			{"an unknown type", admin, func(n *rooms.NewIntegration) {
				n.Scopes = []string{"system/Task.read", "system/Observation.read"}
			}, rooms.CodeInvalid, "scopes[1]"},
			{"a SMART v2 scope", admin, func(n *rooms.NewIntegration) { n.Scopes = []string{"system/*.rs"} }, rooms.CodeInvalid, "scopes[0]"},
			{"a scope twice", admin, func(n *rooms.NewIntegration) {
				n.Scopes = []string{"system/Task.read", "system/Task.read"}
			}, rooms.CodeInvalid, "scopes[1]"},
			{"too many scopes", admin, func(n *rooms.NewIntegration) {
				n.Scopes = append(everyScope(), "system/Task.read")
			}, rooms.CodeInvalid, "scopes"},
		} {
			n := good
			c.change(&n)
			_, err := w.svc.RegisterIntegration(ctx, c.caller, n)
			wantErr(t, err, c.code, c.field)
		}
		if ins, err := w.svc.Integrations(ctx, admin); err != nil || len(ins) != 0 {
			t.Fatalf("a refused registration stored a client: %+v, %v", ins, err)
		}
		refused := w.auditFor(t, rooms.AuditFilter{Event: "integration.register"})
		if len(refused) != 13 {
			t.Fatalf("%d refusals audited; want 13", len(refused))
		}
		for _, e := range refused {
			if e.Outcome == rooms.OutcomeSuccess {
				t.Fatalf("a refusal audited as a success: %+v", e)
			}
		}

		all := good
		all.Scopes = everyScope()
		if _, err := w.svc.RegisterIntegration(ctx, admin, all); err != nil {
			t.Fatalf("every scope at once: %v", err)
		}
		w.clock.Advance(time.Second) // newest first is by registration time
		in, err := w.svc.RegisterIntegration(ctx, admin, good)
		if err != nil {
			t.Fatal(err)
		}
		if in.Name != "Trust EPR" || in.Organisation != "RET" || in.CreatedBy != admin.User.ID || in.RevokedAt != nil {
			t.Fatalf("registered %+v", in)
		}
		ins, err := w.svc.Integrations(ctx, admin)
		if err != nil || len(ins) != 2 || ins[0].ClientID != in.ClientID {
			t.Fatalf("integrations: %+v, %v; want two, the newest first", ins, err)
		}
		other := w.adminOf(t, "RBL")
		if ins, err := w.svc.Integrations(ctx, other); err != nil || len(ins) != 0 {
			t.Fatalf("another organisation's admin sees %+v, %v", ins, err)
		}
		_, err = w.svc.Integrations(ctx, w.coord)
		wantErr(t, err, rooms.CodeForbidden, "")
		_, err = w.svc.RevokeIntegration(ctx, other, in.ClientID)
		wantErr(t, err, rooms.CodeNotFound, "")
		_, err = w.svc.RevokeIntegration(ctx, admin, "not-an-id")
		wantErr(t, err, rooms.CodeInvalid, "id")
		revoked, err := w.svc.RevokeIntegration(ctx, admin, in.ClientID)
		if err != nil || revoked.RevokedAt == nil {
			t.Fatalf("revoke: %+v, %v", revoked, err)
		}
		_, err = w.svc.RevokeIntegration(ctx, admin, in.ClientID)
		wantErr(t, err, rooms.CodeNotFound, "")
		for event, want := range map[string]int{"integration.register": 2, "integration.list": 3, "integration.revoke": 1} {
			if got := w.auditFor(t, rooms.AuditFilter{Event: event, Outcome: rooms.OutcomeSuccess}); len(got) != want {
				t.Errorf("%d successful %s audited; want %d", len(got), event, want)
			}
		}
		if got := w.auditFor(t, rooms.AuditFilter{Event: "integration.revoke", Outcome: rooms.OutcomeDenied}); len(got) != 2 {
			t.Errorf("%d denied revocations audited; want 2 (another organisation's, a revoked client)", len(got))
		}
	})
}

func TestIntegrationTokens(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		admin := w.admin(t)
		in := w.register(t, admin, "system/ServiceRequest.read", "system/Task.read")

		tok, c := w.token(t, in, "jti-1", "")
		if tok.ExpiresIn != 5*time.Minute || !slices.Equal(tok.Scopes, in.Scopes) {
			t.Fatalf("token %+v; want five minutes of every registered scope", tok)
		}
		if c.Integration == nil || c.Integration.ClientID != in.ClientID || c.User.ID != rooms.IntegrationPrefix+in.ClientID ||
			c.User.Organisation != "RET" || !c.User.HasRole(rooms.RoleIntegrator) {
			t.Fatalf("token's caller %+v", c)
		}
		if !c.Allows("ServiceRequest") || !c.Allows("Task") || c.Allows("Patient") || c.Allows("AuditEvent") {
			t.Fatalf("caller with %v allows the wrong types", c.Integration.Scopes)
		}
		if !w.specialist.Allows("AuditEvent") {
			t.Fatal("a person's caller does not allow FHIR reads")
		}
		_, narrow := w.token(t, in, "jti-2", "system/Task.read system/Task.read")
		if !slices.Equal(narrow.Integration.Scopes, []string{"system/Task.read"}) || narrow.Allows("ServiceRequest") {
			t.Fatalf("a narrowed token's caller allows %v", narrow.Integration.Scopes)
		}

		now := w.clock.Now()
		for _, c := range []struct {
			name  string
			a     rooms.Assertion
			scope string
			code  rooms.Code
			field string
		}{
			{"a replayed jti", w.assertion(in, "jti-1"), "", rooms.CodeUnauthenticated, "client_assertion"},
			{"no jti", w.assertion(in, ""), "", rooms.CodeUnauthenticated, "client_assertion"},
			{"a long jti", w.assertion(in, strings.Repeat("j", rooms.MaxAssertionIDLen+1)), "", rooms.CodeUnauthenticated, "client_assertion"},
			{"no exp", rooms.Assertion{ClientID: in.ClientID, ID: "j-noexp"}, "", rooms.CodeUnauthenticated, "client_assertion"},
			{"an expired assertion", rooms.Assertion{ClientID: in.ClientID, ID: "j-old", ExpiresAt: now}, "", rooms.CodeUnauthenticated, "client_assertion"},
			{"exp over five minutes ahead", rooms.Assertion{ClientID: in.ClientID, ID: "j-far", ExpiresAt: now.Add(5*time.Minute + time.Second)}, "", rooms.CodeUnauthenticated, "client_assertion"},
			{"an unknown client", rooms.Assertion{ClientID: rooms.NewID(), ID: "j-x", ExpiresAt: now.Add(time.Minute)}, "", rooms.CodeUnauthenticated, "client_assertion"},
			{"a scope not granted", w.assertion(in, "j-scope"), "system/Patient.read", rooms.CodeInvalid, "scope"},
			{"a scope that is not one", w.assertion(in, "j-scope2"), "openid", rooms.CodeInvalid, "scope"},
			{"a long scope", w.assertion(in, "j-scope3"), strings.Repeat("s", rooms.MaxScopeRequest+1), rooms.CodeInvalid, "scope"},
		} {
			_, err := w.svc.IssueIntegrationToken(ctx, c.a, c.scope, "192.0.2.7")
			if err == nil {
				t.Fatalf("%s: issued", c.name)
			}
			wantErr(t, err, c.code, c.field)
		}
		// Exactly five minutes ahead is in bounds; a refusal for scope
		// used no jti.
		if _, err := w.svc.IssueIntegrationToken(ctx, rooms.Assertion{ClientID: in.ClientID, ID: "j-scope", ExpiresAt: now.Add(5 * time.Minute)}, "", ""); err != nil {
			t.Fatalf("an assertion of exactly five minutes: %v", err)
		}
		refusals := w.auditFor(t, rooms.AuditFilter{Event: rooms.EventIntegrationToken, Outcome: rooms.OutcomeDenied})
		if len(refusals) != 10 {
			t.Fatalf("%d refusals audited; want 10", len(refusals))
		}
		issued := w.auditFor(t, rooms.AuditFilter{Event: rooms.EventIntegrationToken, Outcome: rooms.OutcomeSuccess})
		if len(issued) != 3 || issued[0].ActorID != rooms.IntegrationPrefix+in.ClientID {
			t.Fatalf("issuance audited %+v; want three entries of the client", issued)
		}
		for _, e := range append(refusals, issued...) {
			if strings.Contains(e.Detail, tok.AccessToken) || strings.Contains(e.Detail, "jti-") || strings.Contains(e.Detail, "j-") {
				t.Fatalf("audit detail %q holds a token or jti", e.Detail)
			}
		}

		// Tokens end when they expire and when their client is revoked.
		for _, bad := range []string{"", "nonsense", strings.Repeat("A", 200), tok.AccessToken + "A"} {
			_, err := w.svc.IntegrationCallerByToken(ctx, bad, "192.0.2.7")
			wantErr(t, err, rooms.CodeUnauthenticated, "")
		}
		w.clock.Advance(5*time.Minute - time.Second)
		if _, err := w.svc.IntegrationCallerByToken(ctx, tok.AccessToken, ""); err != nil {
			t.Fatalf("a token a second before it expires: %v", err)
		}
		w.clock.Advance(time.Second)
		_, err := w.svc.IntegrationCallerByToken(ctx, tok.AccessToken, "")
		wantErr(t, err, rooms.CodeUnauthenticated, "")

		live, _ := w.token(t, in, "jti-3", "")
		if _, err := w.svc.RevokeIntegration(ctx, admin, in.ClientID); err != nil {
			t.Fatal(err)
		}
		_, err = w.svc.IntegrationCallerByToken(ctx, live.AccessToken, "")
		wantErr(t, err, rooms.CodeUnauthenticated, "")
		_, err = w.svc.IssueIntegrationToken(ctx, w.assertion(in, "jti-4"), "", "")
		wantErr(t, err, rooms.CodeUnauthenticated, "client_assertion")
		reasons := map[string]int{}
		for _, e := range w.auditFor(t, rooms.AuditFilter{Event: rooms.EventIntegrationAccess}) {
			if e.Outcome != rooms.OutcomeDenied {
				t.Fatalf("bearer refusal audited as %s", e.Outcome)
			}
			reasons[e.Detail]++
		}
		want := map[string]int{"reason=malformed_token": 3, "reason=unknown_token": 1, "reason=expired_token": 1, "reason=revoked": 1}
		if fmt.Sprint(reasons) != fmt.Sprint(want) {
			t.Fatalf("bearer refusals audited %v; want %v", reasons, want)
		}
	})
}

func TestAssertionIsUsedOnceUnderConcurrency(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		in := w.register(t, w.admin(t), rooms.ScopeAll)
		const n = 40
		var (
			wg     sync.WaitGroup
			mu     sync.Mutex
			tokens []string
			codes  = map[rooms.Code]int{}
			start  = make(chan struct{})
		)
		a := w.assertion(in, "jti-race")
		for range n {
			wg.Go(func() {
				<-start
				tok, err := w.svc.IssueIntegrationToken(ctx, a, "", "192.0.2.7")
				mu.Lock()
				defer mu.Unlock()
				if err == nil {
					tokens = append(tokens, tok.AccessToken)
				}
				codes[rooms.CodeOf(err)]++
			})
		}
		close(start)
		wg.Wait()
		if len(tokens) != 1 || codes[rooms.CodeUnauthenticated] != n-1 {
			t.Fatalf("%d tokens for one assertion presented %d times at once (codes %v); want 1, the rest unauthenticated", len(tokens), n, codes)
		}
		if got := w.auditFor(t, rooms.AuditFilter{Event: rooms.EventIntegrationToken, Outcome: rooms.OutcomeDenied}); len(got) != n-1 {
			t.Fatalf("%d replays audited; want %d", len(got), n-1)
		}
	})
}

// integratorCommands is every command of the service, each run as c.
func integratorCommands(w *world, r rooms.Referral, target rooms.User, in rooms.Integration) map[string]func(ctx context.Context, c rooms.Caller) error {
	one := func(_ any, err error) error { return err }
	two := func(_, _ any, err error) error { return err }
	return map[string]func(ctx context.Context, c rooms.Caller) error{
		"CreateReferral": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.CreateReferral(ctx, c, newReferral("i-create", rooms.PriorityUrgent, true)))
		},
		"PostMessage": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.PostMessage(ctx, c, rooms.PostMessage{Ref: "i-msg", ReferralID: r.ID, Body: "hello"}))
		},
		"EditPlan": func(ctx context.Context, c rooms.Caller) error {
			return two(w.svc.EditPlan(ctx, c, rooms.EditPlan{Ref: "i-plan", ReferralID: r.ID, Section: "imaging", Text: "MRI"}))
		},
		"Transition": func(ctx context.Context, c rooms.Caller) error {
			return two(w.svc.Transition(ctx, c, rooms.Transition{Ref: "i-move", ReferralID: r.ID, To: rooms.StatusInTriage}))
		},
		"AddParticipant": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.AddParticipant(ctx, c, rooms.AddParticipant{Ref: "i-add", ReferralID: r.ID, UserID: target.ID}))
		},
		"Assign": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.Assign(ctx, c, rooms.Assign{Ref: "i-assign", ReferralID: r.ID, AssigneeID: target.ID}))
		},
		"MarkRead": func(ctx context.Context, c rooms.Caller) error { return w.svc.MarkRead(ctx, c, r.ID, 1) },
		"MarkNotificationsRead": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.MarkNotificationsRead(ctx, c, "", []string{"0000000000000001"}))
		},
		"SetOPEL": func(ctx context.Context, c rooms.Caller) error { return one(w.svc.SetOPEL(ctx, c, 2, "")) },
		"PostNotice": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.PostNotice(ctx, c, rooms.NoticeInfo, "hi"))
		},
		"ClearNotice": func(ctx context.Context, c rooms.Caller) error { return w.svc.ClearNotice(ctx, c) },
		"CreateDisplay": func(ctx context.Context, c rooms.Caller) error {
			return two(w.svc.CreateDisplay(ctx, c, "Bed office"))
		},
		"Displays": func(ctx context.Context, c rooms.Caller) error { return one(w.svc.Displays(ctx, c)) },
		"RevokeDisplay": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.RevokeDisplay(ctx, c, rooms.NewID()))
		},
		"Users":         func(ctx context.Context, c rooms.Caller) error { return one(w.svc.Users(ctx, c, "")) },
		"ApproveUser":   func(ctx context.Context, c rooms.Caller) error { return one(w.svc.ApproveUser(ctx, c, target.ID)) },
		"SuspendUser":   func(ctx context.Context, c rooms.Caller) error { return one(w.svc.SuspendUser(ctx, c, target.ID)) },
		"ReinstateUser": func(ctx context.Context, c rooms.Caller) error { return one(w.svc.ReinstateUser(ctx, c, target.ID)) },
		"AuditTrail": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.AuditTrail(ctx, c, rooms.AuditQuery{}))
		},
		"Integrations": func(ctx context.Context, c rooms.Caller) error { return one(w.svc.Integrations(ctx, c)) },
		"RevokeIntegration": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.RevokeIntegration(ctx, c, in.ClientID))
		},
		"RegisterIntegration": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.RegisterIntegration(ctx, c, rooms.NewIntegration{Name: "x", JWKS: in.JWKS, Scopes: in.Scopes}))
		},
		"CreateUser": func(ctx context.Context, c rooms.Caller) error {
			return one(w.svc.CreateUser(ctx, c, rooms.NewUser{Name: "New", Email: "new@example.nhs.uk", ProfessionalBody: rooms.BodyGMC,
				RegistrationNumber: "7123456", Organisation: "RET", Roles: []rooms.Role{rooms.RoleAdmin}, Status: rooms.UserActive, PasswordHash: "x"}))
		},
		"UpdateCredentials": func(ctx context.Context, c rooms.Caller) error {
			return w.svc.UpdateCredentials(ctx, c, target.ID, "user.password_change", func(cr *rooms.Credentials) { cr.PasswordHash = "y" })
		},
		"PutOrganisation": func(ctx context.Context, c rooms.Caller) error {
			return w.svc.PutOrganisation(ctx, c, rooms.Organisation{ODS: "RET", Name: "Renamed"})
		},
		"PutPathway": func(ctx context.Context, c rooms.Caller) error { return w.svc.PutPathway(ctx, c, rooms.MSCC("RET")) },
		"AuthorizeBoard": func(ctx context.Context, c rooms.Caller) error {
			return w.svc.AuthorizeBoard(ctx, c, "mscc", "board.view")
		},
		"AuthorizeWallboard": func(ctx context.Context, c rooms.Caller) error {
			return w.svc.AuthorizeWallboard(ctx, c, "wallboard.view")
		},
	}
}

func TestIntegratorsAreRefusedEveryCommand(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		admin := w.admin(t)
		in := w.register(t, admin, rooms.ScopeAll)
		_, c := w.token(t, in, "jti-1", "")
		r := w.create(t, "r1", rooms.PriorityUrgent)
		target := w.user(t, "pending@example.nhs.uk", "RET", rooms.RoleSpecialist)
		commands := integratorCommands(w, r, target.User, in)
		names := make([]string, 0, len(commands))
		for name := range commands {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			before := len(w.auditFor(t, rooms.AuditFilter{ActorID: c.User.ID, Outcome: rooms.OutcomeDenied}))
			err := commands[name](ctx, c)
			wantErrIn(t, name, err, rooms.CodeForbidden)
			after := len(w.auditFor(t, rooms.AuditFilter{ActorID: c.User.ID, Outcome: rooms.OutcomeDenied}))
			if after != before+1 {
				t.Errorf("%s: %d refusals audited; want 1", name, after-before)
			}
		}
		// Nothing changed.
		if got, err := w.store.Referral(ctx, r.ID); err != nil || got.HeadSeq != r.HeadSeq || got.Status != r.Status {
			t.Fatalf("the referral changed: %+v, %v", got, err)
		}
		if ins, err := w.svc.Integrations(ctx, admin); err != nil || len(ins) != 1 || ins[0].RevokedAt != nil {
			t.Fatalf("integrations changed: %+v, %v", ins, err)
		}
		if u, err := w.store.User(ctx, target.User.ID); err != nil || u.Status != rooms.UserActive || u.PasswordHash != "x" {
			t.Fatalf("the user changed: %+v, %v", u, err)
		}
		if o, err := w.store.Organisation(ctx, "RET"); err != nil || o.Name != "The Walton Centre" {
			t.Fatalf("the organisation changed: %+v, %v", o, err)
		}
		// The refusals show in the organisation's audit trail.
		page, err := w.svc.AuditTrail(ctx, admin, rooms.AuditQuery{UserID: c.User.ID, Outcome: rooms.OutcomeDenied, Limit: 100})
		if err != nil || len(page.Entries) != len(commands) {
			t.Fatalf("the admin's trail shows %d of the integrator's %d refusals: %v", len(page.Entries), len(commands), err)
		}
	})
}

func wantErrIn(t *testing.T, what string, err error, code rooms.Code) {
	t.Helper()
	if got := rooms.CodeOf(err); got != code {
		t.Errorf("%s: error %v (%s); want %s", what, err, got, code)
	}
}

func TestIntegratorsReadWhatTheirOrganisationReceives(t *testing.T) {
	eachStore(t, func(t *testing.T, w *world) {
		ctx := context.Background()
		r := w.create(t, "r1", rooms.PriorityUrgent) // RJR refers, RET receives
		_, ret := w.token(t, w.register(t, w.admin(t), rooms.ScopeAll), "jti-ret", "")
		_, rbl := w.token(t, w.register(t, w.adminOf(t, "RBL"), rooms.ScopeAll), "jti-rbl", "")
		_, rjr := w.token(t, w.register(t, w.adminOf(t, "RJR"), rooms.ScopeAll), "jti-rjr", "")

		if _, err := w.svc.Authorize(ctx, ret, r.ID, "fhir.read"); err != nil {
			t.Fatalf("the receiving organisation's integrator is refused: %v", err)
		}
		got, err := w.svc.Referral(ctx, ret, r.ID)
		if err != nil || got.ID != r.ID {
			t.Fatalf("referral: %+v, %v", got, err)
		}
		if es, head, err := w.svc.Events(ctx, ret, r.ID, 0, 0); err != nil || len(es) != 2 || head != 2 {
			t.Fatalf("events: %d, head %d, %v", len(es), head, err)
		}
		if rs, err := w.svc.Referrals(ctx, ret, rooms.ReferralFilter{}); err != nil || len(rs) != 1 || rs[0].ID != r.ID {
			t.Fatalf("referrals: %+v, %v", rs, err)
		}
		if ps, err := w.svc.Pathways(ctx, ret); err != nil || len(ps) != 1 {
			t.Fatalf("pathways: %+v, %v", ps, err)
		}
		// Another organisation's integrator learns nothing, not even that
		// the referral exists; nor does the referring organisation's, whose
		// people see it only as participants.
		for name, c := range map[string]rooms.Caller{"RBL": rbl, "RJR": rjr} {
			_, err := w.svc.Authorize(ctx, c, r.ID, "fhir.read")
			wantErrIn(t, name+" authorize", err, rooms.CodeNotFound)
			_, err = w.svc.Referral(ctx, c, r.ID)
			wantErrIn(t, name+" referral", err, rooms.CodeNotFound)
			_, _, err = w.svc.Events(ctx, c, r.ID, 0, 0)
			wantErrIn(t, name+" events", err, rooms.CodeNotFound)
			if rs, err := w.svc.Referrals(ctx, c, rooms.ReferralFilter{}); err != nil || len(rs) != 0 {
				t.Errorf("%s lists %d referrals, %v; want none", name, len(rs), err)
			}
			denied := w.auditFor(t, rooms.AuditFilter{ActorID: c.User.ID, ReferralID: r.ID, Outcome: rooms.OutcomeDenied})
			if len(denied) != 3 {
				t.Errorf("%s: %d denials audited; want 3", name, len(denied))
			}
			for _, e := range denied {
				if e.PatientNHSNumber != "" {
					t.Errorf("%s: a denial names the patient", name)
				}
			}
		}
		views := w.auditFor(t, rooms.AuditFilter{ActorID: ret.User.ID, ReferralID: r.ID, Outcome: rooms.OutcomeSuccess})
		if len(views) != 2 || views[0].ActorRole != rooms.RoleIntegrator {
			t.Fatalf("the integrator's reads audited as %+v; want two, as an integrator", views)
		}
	})
}
