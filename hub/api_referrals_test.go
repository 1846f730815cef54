package hub_test

import (
	"context"
	"fmt"
	"testing"

	"patientpass/rooms"
)

func referralBody(ref string) map[string]any {
	return map[string]any{
		"ref": ref, "pathway": "mscc", "priority": "urgent", "submit": true,
		"patient": map[string]any{"nhs_number": "943 476 5919", "name": "Test Patient", "date_of_birth": "1950-01-01", "sex": "female"},
		"form": map[string]any{
			"primary_cancer": "Prostate", "spinal_levels": "T6–T8", "neuro_limb_weakness": false,
			"neuro_bladder_bowel": false, "ambulatory_status": "independent", "steroids_given": true,
			"spinal_precautions": true, "sins_score": 9,
		},
		"contact_phone": "01244 365000", "consultant_discussed": true,
	}
}

func TestReferralAPIJourney(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		specialist := e.user("RET", rooms.UserActive, rooms.RoleSpecialist)
		outsider := e.user("RBL", rooms.UserActive, rooms.RoleClinician)
		rc, sc, oc := e.login(referrer.Email), e.login(specialist.Email), e.login(outsider.Email)

		res := rc.do("GET", "/api/pathways", nil)
		if res.status != 200 || len(res.body["pathways"].([]any)) != 1 {
			t.Fatalf("GET /api/pathways = %d %s", res.status, res.raw)
		}
		pw := res.body["pathways"].([]any)[0].(map[string]any)
		if pw["id"] != "mscc" || len(pw["form"].([]any)) != 19 {
			t.Fatalf("pathway %v; want mscc with its 19 form fields", pw["id"])
		}

		res = rc.do("POST", "/api/referrals", referralBody("r1"))
		if res.status != 201 || res.body["status"] != "submitted" || res.body["head_seq"] != 2.0 || res.body["triage_due_at"] != "2026-11-23T13:00:00Z" {
			t.Fatalf("create = %d %s; want 201 submitted, due 4 h after 09:00", res.status, res.raw)
		}
		id := res.body["id"].(string)
		if again := rc.do("POST", "/api/referrals", referralBody("r1")); again.status != 201 || again.body["id"] != id {
			t.Fatalf("repeated create = %d %v; want the same referral", again.status, again.body["id"])
		}

		list := sc.do("GET", "/api/referrals?status=submitted,in_triage&pathway=mscc&priority=urgent", nil)
		if list.status != 200 || len(list.body["referrals"].([]any)) != 1 {
			t.Fatalf("specialist list = %d %s; want the referral", list.status, list.raw)
		}
		if empty := sc.do("GET", "/api/referrals?priority=routine", nil); len(empty.body["referrals"].([]any)) != 0 {
			t.Fatalf("priority filter let through %s", empty.raw)
		}

		mv := sc.do("POST", "/api/referrals/"+id+"/transitions", map[string]any{"ref": "t1", "to": "in_triage"})
		if mv.status != 200 || mv.body["status"] != "in_triage" || mv.body["seq"] != 3.0 {
			t.Fatalf("transition = %d %s; want 200 in_triage at seq 3", mv.status, mv.raw)
		}
		msg := rc.do("POST", "/api/referrals/"+id+"/messages", map[string]any{"ref": "m1", "body": "MRI report attached"})
		if msg.status != 201 || msg.body["seq"] != 4.0 {
			t.Fatalf("message = %d %s; want 201 at seq 4", msg.status, msg.raw)
		}
		plan := sc.do("PUT", "/api/referrals/"+id+"/plan/imaging", map[string]any{"ref": "p1", "base_revision": 0, "text": "Whole spine MRI reviewed"})
		if plan.status != 200 || plan.body["revision"] != 1.0 || plan.body["seq"] != 5.0 {
			t.Fatalf("plan edit = %d %s; want revision 1 at seq 5", plan.status, plan.raw)
		}
		stale := rc.do("PUT", "/api/referrals/"+id+"/plan/imaging", map[string]any{"ref": "p2", "base_revision": 0, "text": "mine"})
		cur, _ := stale.body["current"].(map[string]any)
		if code, field := stale.errorField(); stale.status != 409 || code != "conflict" || field != "base_revision" || cur["revision"] != 1.0 || cur["text"] != "Whole spine MRI reviewed" {
			t.Fatalf("stale edit = %d %s; want 409 with the current text", stale.status, stale.raw)
		}

		evs := rc.do("GET", "/api/referrals/"+id+"/events?after=2", nil)
		events, _ := evs.body["events"].([]any)
		if evs.status != 200 || len(events) != 3 || evs.body["head"] != 5.0 {
			t.Fatalf("events after 2 = %d %s; want 3 events and head 5", evs.status, evs.raw)
		}
		for i, raw := range events {
			if ev := raw.(map[string]any); ev["seq"] != float64(i+3) {
				t.Fatalf("event %d has seq %v; want %d", i, ev["seq"], i+3)
			}
		}
		if read := sc.do("PUT", "/api/referrals/"+id+"/read", map[string]any{"seq": 5}); read.status != 204 {
			t.Fatalf("mark read = %d %s", read.status, read.raw)
		}
		got := sc.do("GET", "/api/referrals/"+id, nil)
		if got.status != 200 || got.body["read_seq"] != 5.0 || got.body["status"] != "in_triage" {
			t.Fatalf("get = %d %s; want in_triage read to 5", got.status, got.raw)
		}

		// Someone of an unrelated trust: not found, and the attempt audited.
		for _, path := range []string{"/api/referrals/" + id, "/api/referrals/" + id + "/events"} {
			if res := oc.do("GET", path, nil); res.status != 404 {
				t.Fatalf("outsider GET %s = %d %s; want 404", path, res.status, res.raw)
			}
		}
		if res := oc.do("POST", "/api/referrals/"+id+"/messages", map[string]any{"ref": "x", "body": "hi"}); res.status != 404 {
			t.Fatalf("outsider message = %d; want 404", res.status)
		}
		denied := e.audit(rooms.AuditFilter{ReferralID: id, ActorID: outsider.ID, Outcome: rooms.OutcomeDenied})
		if len(denied) != 3 {
			t.Fatalf("%d denials audited for the outsider; want 3", len(denied))
		}
		if l := oc.do("GET", "/api/referrals", nil); len(l.body["referrals"].([]any)) != 0 {
			t.Fatalf("outsider lists %s", l.raw)
		}
		if views := e.audit(rooms.AuditFilter{ReferralID: id, ActorID: specialist.ID, Event: "referral.view"}); len(views) != 1 {
			t.Fatalf("%d views audited for the specialist; want 1", len(views))
		}
	})
}

func TestReferralAPIRefusesBadInputNamingTheField(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		referrer := e.user("RJR", rooms.UserActive, rooms.RoleClinician)
		specialist := e.user("RET", rooms.UserActive, rooms.RoleSpecialist)
		rc, sc := e.login(referrer.Email), e.login(specialist.Email)
		cases := []struct {
			name  string
			edit  func(b map[string]any)
			field string
		}{
			{"invalid NHS number", func(b map[string]any) { b["patient"].(map[string]any)["nhs_number"] = "9434765918" }, "patient.nhs_number"},
			{"missing required form field", func(b map[string]any) { delete(b["form"].(map[string]any), "primary_cancer") }, "form.primary_cancer"},
			{"choice out of range", func(b map[string]any) { b["form"].(map[string]any)["ambulatory_status"] = "flying" }, "form.ambulatory_status"},
			{"SINS out of bounds", func(b map[string]any) { b["form"].(map[string]any)["sins_score"] = 19 }, "form.sins_score"},
			{"priority of the wrong type", func(b map[string]any) { b["priority"] = 5 }, "priority"},
			{"NHS number of the wrong type", func(b map[string]any) { b["patient"].(map[string]any)["nhs_number"] = 9434765919 }, "patient.nhs_number"},
			{"unknown field", func(b map[string]any) { b["urgent"] = true }, "urgent"},
			{"consultant not discussed", func(b map[string]any) { b["consultant_discussed"] = false }, "consultant_discussed"},
			{"no contact phone", func(b map[string]any) { delete(b, "contact_phone") }, "contact_phone"},
		}
		for i, tc := range cases {
			b := referralBody(fmt.Sprintf("bad-%d", i))
			tc.edit(b)
			res := rc.do("POST", "/api/referrals", b)
			if code, field := res.errorField(); res.status != 400 || code != "invalid" || field != tc.field {
				t.Errorf("%s: %d %s; want 400 invalid naming %s", tc.name, res.status, res.raw, tc.field)
			}
		}
		for _, body := range []string{`{"ref":`, `{"ref":"a"} {"ref":"b"}`, ``, `[1,2]`} {
			if res := rc.do("POST", "/api/referrals", body); res.status != 400 {
				t.Errorf("body %q = %d; want 400", body, res.status)
			}
		}
		list, err := e.store.Referrals(context.Background(), rooms.ReferralFilter{VisibleToOrganisation: "RET"})
		if err != nil || len(list) != 0 {
			t.Fatalf("%d referrals stored by bad requests (%v)", len(list), err)
		}

		id := rc.do("POST", "/api/referrals", referralBody("good")).body["id"].(string)
		for _, tc := range []struct {
			body  map[string]any
			field string
		}{
			{map[string]any{"ref": "t1", "to": "teleported"}, "to"},
			{map[string]any{"ref": "t2", "to": "transferred"}, "to"},
			{map[string]any{"ref": "t3", "to": "declined"}, "reason"},
			{map[string]any{"ref": "", "to": "in_triage"}, "ref"},
		} {
			res := sc.do("POST", "/api/referrals/"+id+"/transitions", tc.body)
			if code, field := res.errorField(); res.status != 400 || code != "invalid" || field != tc.field {
				t.Errorf("transition %v = %d %s; want 400 naming %s", tc.body, res.status, res.raw, tc.field)
			}
		}
		if res := rc.do("POST", "/api/referrals/"+id+"/transitions", map[string]any{"ref": "t4", "to": "in_triage"}); res.status != 403 {
			t.Errorf("referrer claiming triage = %d; want 403", res.status)
		}
		if res := sc.do("PUT", "/api/referrals/"+id+"/plan/imaging", map[string]any{"ref": "p", "text": "x"}); res.status != 400 {
			t.Errorf("plan edit without base_revision = %d; want 400", res.status)
		}
		if res := sc.do("GET", "/api/referrals/"+id+"/events?after=x", nil); res.status != 400 {
			t.Errorf("events?after=x = %d; want 400", res.status)
		}
		if res := sc.do("GET", "/api/referrals?status=lost", nil); res.status != 400 {
			t.Errorf("list with an unknown status = %d; want 400", res.status)
		}
		got := sc.do("GET", "/api/referrals/"+id, nil)
		if got.body["head_seq"] != 2.0 || got.body["status"] != "submitted" {
			t.Fatalf("refused commands changed the referral: %s", got.raw)
		}
	})
}

func TestReferralAPINeedsASession(t *testing.T) {
	e := newEnv(t, openEmbedded(t))
	for _, path := range []string{"/api/referrals", "/api/pathways", "/api/referrals/x/events"} {
		res := e.client().do("GET", path, nil)
		if code, _ := res.errorField(); res.status != 401 || code != "unauthenticated" {
			t.Errorf("GET %s without a session = %d %s; want 401", path, res.status, res.raw)
		}
	}
}
