package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"patientpass/hub/password"
	"patientpass/rooms"
)

// demoOrganisations are the organisations of SPEC §4.
var demoOrganisations = []rooms.Organisation{
	{ODS: "RET", Name: "The Walton Centre"},
	{ODS: "REN", Name: "The Clatterbridge Cancer Centre"},
	{ODS: "REP", Name: "Liverpool Women's Hospital"},
	{ODS: "REM", Name: "Liverpool University Hospitals"},
	{ODS: "RJR", Name: "Countess of Chester Hospital"},
	{ODS: "RBL", Name: "Wirral University Teaching Hospital"},
}

// demoUsers are the demo logins of SPEC §4, one of every role.
var demoUsers = []rooms.NewUser{
	{Email: "referrer@demo.test", Name: "Dr Rhiannon Price", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7000001", Organisation: "RJR", Roles: []rooms.Role{rooms.RoleClinician}},
	{Email: "specialist@demo.test", Name: "Mr Sanjay Patel", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7000002", Organisation: "RET", Roles: []rooms.Role{rooms.RoleSpecialist}},
	{Email: "coordinator@demo.test", Name: "Claire Dunn", ProfessionalBody: rooms.BodyNMC, RegistrationNumber: "12A3456B", Organisation: "RET", Roles: []rooms.Role{rooms.RoleCoordinator}},
	{Email: "bedmanager@demo.test", Name: "Gareth Owen", ProfessionalBody: rooms.BodyNMC, RegistrationNumber: "09B8765C", Organisation: "RET", Roles: []rooms.Role{rooms.RoleBedManager}},
	{Email: "admin@demo.test", Name: "Aisha Rahman", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7000005", Organisation: "RET", Roles: []rooms.Role{rooms.RoleAdmin}},
	{Email: "outsider@demo.test", Name: "Dr Tom Hughes", ProfessionalBody: rooms.BodyGMC, RegistrationNumber: "7000006", Organisation: "RBL", Roles: []rooms.Role{rooms.RoleClinician}},
}

// seedDemo makes the demo organisations, the MSCC pathway at The Walton
// Centre, the demo users and a few referrals, and prints the logins. Every
// step is keyed (users by email, commands by ref), so seeding again changes
// nothing; a changed demo password or TOTP secret is applied to the existing
// users.
func (a *app) seedDemo(ctx context.Context, svc *rooms.Service, store rooms.Store, cfg config) error {
	// Generated secrets are kept in the store so that every restart and
	// every node shares them; they protect demo accounts only.
	pw, err := secretSetting(ctx, store, "demo.password", cfg.DemoPassword, func() string { return rand.Text()[:20] })
	if err != nil {
		return err
	}
	totp, err := secretSetting(ctx, store, "demo.totp_secret", cfg.DemoTOTPSecret, func() string {
		b := make([]byte, 20)
		rand.Read(b)
		return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b)
	})
	if err != nil {
		return err
	}
	if n := len([]rune(pw)); n < 12 {
		return fmt.Errorf("PATIENTPASS_DEMO_PASSWORD must be at least 12 characters")
	}

	for _, o := range demoOrganisations {
		if err := svc.PutOrganisation(ctx, rooms.System, o); err != nil {
			return err
		}
	}
	if err := svc.PutPathway(ctx, rooms.System, rooms.MSCC("RET")); err != nil {
		return err
	}
	users := map[string]rooms.User{}
	for _, n := range demoUsers {
		u, err := ensureDemoUser(ctx, svc, store, n, pw, totp)
		if err != nil {
			return fmt.Errorf("demo user %s: %w", n.Email, err)
		}
		users[strings.TrimSuffix(n.Email, "@demo.test")] = u
	}
	if err := seedDemoReferrals(ctx, svc, users); err != nil {
		return err
	}

	fmt.Fprintf(a.stdout, "\nPatient Pass demo — every demo user's password: %s\n", pw)
	for _, n := range demoUsers {
		fmt.Fprintf(a.stdout, "  %-24s %-12s %s\n", n.Email, n.Roles[0], n.Organisation)
	}
	issuer := url.PathEscape("Patient Pass")
	fmt.Fprintf(a.stdout, "admin@demo.test TOTP: otpauth://totp/%s:admin@demo.test?secret=%s&issuer=%s&algorithm=SHA1&digits=6&period=30\n\n",
		issuer, totp, issuer)
	return nil
}

// secretSetting returns explicit when set, else the value kept under key,
// generating and keeping one on first use.
func secretSetting(ctx context.Context, store rooms.Store, key, explicit string, generate func() string) (string, error) {
	if explicit != "" {
		return explicit, nil
	}
	v, err := store.SetSettingIfAbsent(ctx, key, generate())
	if err != nil {
		return "", fmt.Errorf("keep setting %s: %w", key, err)
	}
	return v, nil
}

func ensureDemoUser(ctx context.Context, svc *rooms.Service, store rooms.Store, n rooms.NewUser, pw, totp string) (rooms.User, error) {
	if n.HasAdminRole() {
		n.TOTPSecret = totp
	}
	u, err := store.UserByEmail(ctx, n.Email)
	if errors.Is(err, rooms.ErrNotFound) {
		if n.PasswordHash, err = password.Hash(pw); err != nil {
			return rooms.User{}, err
		}
		n.Status = rooms.UserActive
		return svc.CreateUser(ctx, rooms.System, n)
	}
	if err != nil {
		return rooms.User{}, err
	}
	ok, _, _ := password.Verify(pw, u.PasswordHash)
	if ok && u.TOTPSecret == n.TOTPSecret {
		return u, nil
	}
	hash := u.PasswordHash
	if !ok {
		if hash, err = password.Hash(pw); err != nil {
			return rooms.User{}, err
		}
	}
	err = svc.UpdateCredentials(ctx, rooms.System, u.ID, "user.demo_credentials_reset", func(c *rooms.Credentials) {
		c.PasswordHash, c.TOTPSecret = hash, n.TOTPSecret
	})
	return u, err
}

// demoForm is a complete MSCC form; changes adjust it per referral.
func demoForm(changes map[string]any) map[string]any {
	f := map[string]any{
		"primary_cancer": "Prostate adenocarcinoma", "histology": "Adenocarcinoma, Gleason 4+5",
		"spinal_levels": "T6–T8", "pain_pattern": "Band-like thoracic pain, worse lying flat",
		"neuro_limb_weakness": false, "neuro_bladder_bowel": false, "ambulatory_status": "independent",
		"mri_whole_spine_at": "2026-11-20", "mri_report": "Epidural disease T7 with cord compression, no cord signal change.",
		"steroids_given": true, "steroids_dose_mg": 16.0, "spinal_precautions": true,
		"sins_score": 9.0, "who_performance_status": 1.0, "prognosis": "3_to_12_months",
		"prior_radiotherapy_to_level": false,
	}
	for k, v := range changes {
		f[k] = v
	}
	return f
}

// seedDemoReferrals creates referrals in several statuses, with messages and
// plan edits, each step under a fixed ref so that seeding is idempotent.
func seedDemoReferrals(ctx context.Context, svc *rooms.Service, users map[string]rooms.User) error {
	as := func(name string) rooms.Caller { return rooms.Caller{User: users[name], ClientAddr: "demo-seed"} }
	referrer, specialist, coordinator, bedManager := as("referrer"), as("specialist"), as("coordinator"), as("bedmanager")

	create := func(ref string, p rooms.Priority, submit bool, patient rooms.Patient, form map[string]any) (rooms.Referral, error) {
		return svc.CreateReferral(ctx, referrer, rooms.NewReferral{
			Ref: ref, PathwayID: "mscc", Priority: p, Submit: submit, Patient: patient, Form: form,
			ContactPhone: "01244 365000 bleep 4471", ConsultantDiscussed: true,
		})
	}
	type step func(id string) error
	message := func(c rooms.Caller, ref, body string) step {
		return func(id string) error {
			_, err := svc.PostMessage(ctx, c, rooms.PostMessage{Ref: ref, ReferralID: id, Body: body})
			return err
		}
	}
	move := func(c rooms.Caller, ref string, to rooms.Status, reason string, outcome map[string]any) step {
		return func(id string) error {
			_, _, err := svc.Transition(ctx, c, rooms.Transition{Ref: ref, ReferralID: id, To: to, Reason: reason, Outcome: outcome})
			return err
		}
	}
	plan := func(c rooms.Caller, ref, section, text string) step {
		return func(id string) error {
			// Base revision 0: the first edit of the section. On a repeat the ref
			// returns the first result before the base is looked at.
			_, _, err := svc.EditPlan(ctx, c, rooms.EditPlan{Ref: ref, ReferralID: id, Section: section, Text: text})
			return err
		}
	}

	seeds := []struct {
		ref     string
		prio    rooms.Priority
		submit  bool
		patient rooms.Patient
		form    map[string]any
		steps   []step
	}{
		{"demo-1", rooms.PriorityEmergency, true,
			rooms.Patient{NHSNumber: "9990000018", Name: "Margaret Ellis", DateOfBirth: "1951-03-14", Sex: "female"},
			demoForm(map[string]any{"primary_cancer": "Breast carcinoma", "neuro_limb_weakness": true,
				"ambulatory_status": "with_aid", "neuro_onset_at": "2026-11-21T06:30:00Z", "spinal_levels": "T10–T11"}),
			[]step{
				message(referrer, "demo-1-m1", "New bilateral leg weakness since this morning, power 4/5. MRI attached. Dexamethasone 16 mg given."),
				move(specialist, "demo-1-t1", rooms.StatusInTriage, "", nil),
				message(specialist, "demo-1-m2", "Reviewed the MRI. Keep flat with spinal precautions; we will call within the hour."),
				plan(specialist, "demo-1-p1", "spinal_precautions", "Strict flat bed rest, log-roll until surgical review."),
				plan(specialist, "demo-1-p2", "imaging", "Whole-spine MRI reviewed: T10 epidural disease with compression."),
			}},
		{"demo-2", rooms.PriorityUrgent, true,
			rooms.Patient{NHSNumber: "9990000026", Name: "David Okafor", DateOfBirth: "1962-09-02", Sex: "male"},
			demoForm(map[string]any{"primary_cancer": "Non-small cell lung cancer", "spinal_levels": "L2"}),
			[]step{message(referrer, "demo-2-m1", "Known lung primary, new mechanical back pain, no deficit. MRI booked today.")}},
		{"demo-3", rooms.PriorityRoutine, false,
			rooms.Patient{NHSNumber: "9990000034", Name: "Eileen Shaw", DateOfBirth: "1947-12-21", Sex: "female"},
			demoForm(map[string]any{"primary_cancer": "Myeloma", "spinal_levels": "C5–C6"}),
			nil},
		{"demo-4", rooms.PriorityUrgent, true,
			rooms.Patient{NHSNumber: "9990000042", Name: "Peter Lloyd", DateOfBirth: "1958-06-30", Sex: "male"},
			demoForm(nil),
			[]step{
				move(coordinator, "demo-4-t1", rooms.StatusInTriage, "", nil),
				plan(specialist, "demo-4-p1", "surgical_opinion", "For posterior decompression and stabilisation T6–T8."),
				move(specialist, "demo-4-t2", rooms.StatusAccepted, "Accepted for surgical decompression", map[string]any{"bed_type": "neurosurgical"}),
				message(bedManager, "demo-4-m1", "Looking for a neurosurgical bed for tomorrow morning."),
				plan(specialist, "demo-4-p2", "transfer", "Transfer flat with spinal precautions; ambulance crew briefed."),
			}},
		{"demo-5", rooms.PriorityRoutine, true,
			rooms.Patient{NHSNumber: "9990000050", Name: "Susan Clarke", DateOfBirth: "1940-01-08", Sex: "female"},
			demoForm(map[string]any{"primary_cancer": "Renal cell carcinoma", "spinal_levels": "L4", "prognosis": "under_3_months", "who_performance_status": 3.0}),
			[]step{
				move(specialist, "demo-5-t1", rooms.StatusInTriage, "", nil),
				move(specialist, "demo-5-t2", rooms.StatusManagedRemotely, "Not for surgery. Refer to local oncology for palliative radiotherapy; continue dexamethasone with PPI cover.", nil),
			}},
	}
	for _, s := range seeds {
		r, err := create(s.ref, s.prio, s.submit, s.patient, s.form)
		if err != nil {
			return fmt.Errorf("demo referral %s: %w", s.ref, err)
		}
		for i, st := range s.steps {
			if err := st(r.ID); err != nil {
				return fmt.Errorf("demo referral %s step %d: %w", s.ref, i+1, err)
			}
		}
	}
	return nil
}
