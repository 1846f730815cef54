package hub_test

import (
	"testing"

	"patientpass/rooms"
)

// TestFullJourney is the acceptance journey: a clinician registers,
// cannot log in while pending, is approved by their admin, refers an MSCC
// patient, and the Walton Centre's specialist sees it and takes it into
// triage; a clinician of an unrelated trust cannot see it, and that attempt
// is in the audit log.
func TestFullJourney(t *testing.T) {
	eachStore(t, func(t *testing.T, e *env) {
		anon := e.client()
		reg := registration("new.registrar@coch.nhs.uk")
		res := anon.do("POST", "/api/register", reg)
		wantStatus(t, "register", res, 201)
		id, _ := res.body["id"].(string)
		wantError(t, "login while pending", anon.loginWith("new.registrar@coch.nhs.uk", reg["password"].(string), ""), 403, "forbidden", "")

		_, admin, _ := e.enrolledAdmin("RJR")
		wantStatus(t, "approve", admin.do("POST", "/api/admin/users/"+id+"/approve", nil), 200)
		wantStatus(t, "login once approved", anon.loginWith("new.registrar@coch.nhs.uk", reg["password"].(string), ""), 200)

		created := anon.do("POST", "/api/referrals", referralBody("journey-1"))
		wantStatus(t, "create referral", created, 201)
		referral := created.body["id"].(string)

		specialist := e.login(e.user("RET", rooms.UserActive, rooms.RoleSpecialist).Email)
		list := specialist.do("GET", "/api/referrals", nil)
		wantStatus(t, "specialist's list", list, 200)
		found := false
		for _, r := range list.body["referrals"].([]any) {
			found = found || r.(map[string]any)["id"] == referral
		}
		if !found {
			t.Fatalf("the specialist's list lacks the new referral: %s", list.raw)
		}
		mv := specialist.do("POST", "/api/referrals/"+referral+"/transitions", map[string]any{"ref": "claim", "to": "in_triage"})
		wantStatus(t, "move to in_triage", mv, 200)

		mine := anon.do("GET", "/api/referrals/"+referral, nil)
		if mine.body["status"] != "in_triage" {
			t.Fatalf("the referrer sees status %v; want in_triage", mine.body["status"])
		}

		outsider := e.user("RBL", rooms.UserActive, rooms.RoleClinician)
		wantError(t, "unrelated trust's GET", e.login(outsider.Email).do("GET", "/api/referrals/"+referral, nil), 404, "not_found", "")
		denials := e.audit(rooms.AuditFilter{ReferralID: referral, ActorID: outsider.ID, Outcome: rooms.OutcomeDenied})
		if len(denials) != 1 || denials[0].Event != "referral.view" || denials[0].ActorRegistration != outsider.RegistrationNumber {
			t.Fatalf("audit of the unrelated trust's attempt: %+v; want one denied referral.view naming them", denials)
		}
	})
}
