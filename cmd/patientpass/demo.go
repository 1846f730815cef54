package main

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

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
// Centre, the demo users and a day of referrals (seedDemoReferrals), and
// prints the logins. Every step is keyed (users by email, commands by ref),
// so seeding again changes nothing; a changed demo password or TOTP secret
// is applied to the existing users.
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
	// The referrals are a day's work up to now, taken once from the
	// service's clock (the wall clock when serving).
	if err := seedDemoReferrals(ctx, store, cfg.Node, svc.Clock().Now(), users); err != nil {
		return err
	}
	// The site's OPEL level, as the demo bed manager would have set it this
	// morning; once set (by the seed or by anyone since) it is left alone.
	if _, err := store.OPEL(ctx, "RET"); errors.Is(err, rooms.ErrNotFound) {
		bm := rooms.Caller{User: users["bedmanager"], ClientAddr: "demo-seed"}
		if _, err := svc.SetOPEL(ctx, bm, 3, "ED at capacity; two spinal beds closed for cleaning until 16:00"); err != nil {
			return fmt.Errorf("demo OPEL level: %w", err)
		}
	} else if err != nil {
		return fmt.Errorf("read demo OPEL level: %w", err)
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

// demoPrefix starts every ref of the demo day. It differs from the refs of
// the earlier five-referral demo, so a store seeded by that one keeps its
// referrals and gains these rather than failing to replay new steps on old
// referrals.
const demoPrefix = "demo-day-"

// demoContactPhone is the referring team's number on every demo referral:
// they all come from the one demo referrer.
const demoContactPhone = "01244 365000 bleep 4471"

// msccForm is an MSCC referral form with typed fields, so every demo
// referral states each field once and no key is misspelt.
type msccForm struct {
	primary, histology, levels, pain string
	weakness                         bool
	sensoryLevel                     string // empty: none recorded
	bladderBowel                     bool
	ambulatory                       string
	onset                            time.Time // zero: no deficit
	mriAt                            time.Time // zero: no whole-spine MRI yet
	mriReport                        string    // empty: not reported yet
	dexMg                            float64   // 0: no steroids
	dexAt                            time.Time
	precautions                      bool
	sins                             int // 0: not scored
	who                              int
	prognosis                        string
	priorRT                          bool
}

// fields is the form as the referral carries it.
func (f msccForm) fields() map[string]any {
	m := map[string]any{
		"primary_cancer": f.primary, "histology": f.histology, "spinal_levels": f.levels, "pain_pattern": f.pain,
		"neuro_limb_weakness": f.weakness, "neuro_bladder_bowel": f.bladderBowel, "ambulatory_status": f.ambulatory,
		"steroids_given": f.dexMg > 0, "spinal_precautions": f.precautions,
		"who_performance_status": float64(f.who), "prognosis": f.prognosis, "prior_radiotherapy_to_level": f.priorRT,
	}
	if f.sensoryLevel != "" {
		m["neuro_sensory_level"] = f.sensoryLevel
	}
	if !f.onset.IsZero() {
		m["neuro_onset_at"] = demoTime(f.onset)
	}
	if !f.mriAt.IsZero() {
		m["mri_whole_spine_at"] = f.mriAt.In(rooms.London).Format(time.DateOnly)
	}
	if f.mriReport != "" {
		m["mri_report"] = f.mriReport
	}
	if f.dexMg > 0 {
		m["steroids_dose_mg"] = f.dexMg
		m["steroids_at"] = demoTime(f.dexAt)
	}
	if f.sins > 0 {
		m["sins_score"] = float64(f.sins)
	}
	return m
}

// demoTime is t as a form or outcome time, to the minute, in UTC.
func demoTime(t time.Time) string { return t.Truncate(time.Minute).UTC().Format(time.RFC3339) }

// demoDay lays out a day of referrals as timed steps, then runs them in
// time order through a service whose clock is set to each step's time.
type demoDay struct {
	now      time.Time
	midnight time.Time // the start of now's day, Europe/London

	referrer, specialist, coordinator, bedManager rooms.Caller
	specialistUser                                rooms.User

	ids   map[string]string // referral ref → id, filled as the creations run
	steps []demoStep
	err   error // the first step laid out at an impossible time
}

// demoStep is one command of the day at its time.
type demoStep struct {
	at  time.Time
	ref string
	run func(ctx context.Context, svc *rooms.Service) error
}

// demoRoom lays out the steps of one referral.
type demoRoom struct {
	d   *demoDay
	ref string
	at  time.Time // created (and submitted, unless a draft)
}

// ago is m minutes before now.
func (d *demoDay) ago(m int) time.Time { return d.now.Add(-time.Duration(m) * time.Minute) }

// today is m minutes before now, or the start of today (Europe/London)
// when that was yesterday: for the steps the wallboard counts as today's
// whatever the time the demo is seeded at.
func (d *demoDay) today(m int) time.Time {
	if t := d.ago(m); t.After(d.midnight) {
		return t
	}
	return d.midnight
}

func (d *demoDay) add(at time.Time, ref string, run func(ctx context.Context, svc *rooms.Service) error) {
	d.steps = append(d.steps, demoStep{at: at, ref: ref, run: run})
}

// referral lays out a referral made and submitted at at.
func (d *demoDay) referral(key string, at time.Time, p rooms.Priority, pt rooms.Patient, f msccForm) *demoRoom {
	return d.create(key, at, p, true, pt, f)
}

// draft lays out a referral begun at at and not submitted.
func (d *demoDay) draft(key string, at time.Time, p rooms.Priority, pt rooms.Patient, f msccForm) *demoRoom {
	return d.create(key, at, p, false, pt, f)
}

func (d *demoDay) create(key string, at time.Time, p rooms.Priority, submit bool, pt rooms.Patient, f msccForm) *demoRoom {
	r := &demoRoom{d: d, ref: demoPrefix + key, at: at}
	form := f.fields()
	d.add(at, r.ref, func(ctx context.Context, svc *rooms.Service) error {
		created, err := svc.CreateReferral(ctx, d.referrer, rooms.NewReferral{
			Ref: r.ref, PathwayID: "mscc", Priority: p, Submit: submit, Patient: pt, Form: form,
			ContactPhone: demoContactPhone, ConsultantDiscussed: true,
		})
		d.ids[r.ref] = created.ID
		return err
	})
	if at.After(d.now) {
		d.fail(r.ref, at)
	}
	return r
}

func (d *demoDay) fail(ref string, at time.Time) {
	if d.err == nil {
		d.err = fmt.Errorf("demo step %s is laid out at %s, before its referral or after now (%s)",
			ref, at.Format(time.RFC3339), d.now.Format(time.RFC3339))
	}
}

// step lays out one command on the referral; name makes its ref.
func (r *demoRoom) step(name string, at time.Time, run func(ctx context.Context, svc *rooms.Service, ref, id string) error) {
	ref := r.ref + "-" + name
	if at.Before(r.at) || at.After(r.d.now) {
		r.d.fail(ref, at)
	}
	r.d.add(at, ref, func(ctx context.Context, svc *rooms.Service) error {
		return run(ctx, svc, ref, r.d.ids[r.ref])
	})
}

func (r *demoRoom) message(name string, at time.Time, c rooms.Caller, body string) {
	r.step(name, at, func(ctx context.Context, svc *rooms.Service, ref, id string) error {
		_, err := svc.PostMessage(ctx, c, rooms.PostMessage{Ref: ref, ReferralID: id, Body: body})
		return err
	})
}

func (r *demoRoom) move(name string, at time.Time, c rooms.Caller, to rooms.Status, reason string, outcome map[string]any) {
	r.step(name, at, func(ctx context.Context, svc *rooms.Service, ref, id string) error {
		_, _, err := svc.Transition(ctx, c, rooms.Transition{Ref: ref, ReferralID: id, To: to, Reason: reason, Outcome: outcome})
		return err
	})
}

// plan writes a section for the first time (base revision 0). On a repeat
// the ref returns the first result before the base is looked at.
func (r *demoRoom) plan(name string, at time.Time, c rooms.Caller, section, text string) {
	r.step(name, at, func(ctx context.Context, svc *rooms.Service, ref, id string) error {
		_, _, err := svc.EditPlan(ctx, c, rooms.EditPlan{Ref: ref, ReferralID: id, Section: section, Text: text})
		return err
	})
}

func (r *demoRoom) assign(name string, at time.Time, c rooms.Caller, to rooms.User) {
	r.step(name, at, func(ctx context.Context, svc *rooms.Service, ref, id string) error {
		_, err := svc.Assign(ctx, c, rooms.Assign{Ref: ref, ReferralID: id, AssigneeID: to.ID})
		return err
	})
}

// seedDemoReferrals seeds a day of MSCC referrals from the Countess of
// Chester to The Walton Centre, as if made over the hours before now: the
// board has open referrals of every priority, one overdue and some due soon,
// and the wallboard has referrals awaiting a bed of each type, a transfer
// booked, a transfer and a remote management today, and a breach today.
//
// The steps run through a service of their own whose clock is set to each
// step's time, so events, deadlines and audit entries carry those times; it
// publishes nothing, as seeding runs before anyone can connect. Overdue and
// due soon hold at now whatever the time of day: they rest on the
// emergency (1 h) and urgent (4 h) windows only, never on routine ones.
//
// Every step has a fixed ref, so seeding again changes nothing: a repeated
// ref returns the first result. Seeding on a later day therefore finds the
// earlier day's referrals, with their times and deadlines, as they were.
func seedDemoReferrals(ctx context.Context, store rooms.Store, node string, now time.Time, users map[string]rooms.User) error {
	now = now.UTC()
	as := func(name string) rooms.Caller { return rooms.Caller{User: users[name], ClientAddr: "demo-seed"} }
	local := now.In(rooms.London)
	d := &demoDay{
		now:      now,
		midnight: time.Date(local.Year(), local.Month(), local.Day(), 0, 0, 0, 0, rooms.London).UTC(),
		referrer: as("referrer"), specialist: as("specialist"), coordinator: as("coordinator"), bedManager: as("bedmanager"),
		specialistUser: users["specialist"],
		ids:            map[string]string{},
	}
	d.layOut()
	if d.err != nil {
		return d.err
	}
	slices.SortStableFunc(d.steps, func(a, b demoStep) int { return a.at.Compare(b.at) })

	clock := rooms.NewManualClock(now)
	svc := rooms.NewService(rooms.Config{Store: store, Clock: clock, Node: node})
	for _, s := range d.steps {
		clock.Set(s.at)
		if err := s.run(ctx, svc); err != nil {
			return fmt.Errorf("demo %s: %w", s.ref, err)
		}
	}
	return nil
}

// layOut lays out the day's referrals. Times are minutes before now; text
// speaks of durations, never of the time of day, which depends on when the
// demo is seeded.
func (d *demoDay) layOut() {
	referrer, specialist, coordinator, bedManager := d.referrer, d.specialist, d.coordinator, d.bedManager
	mins := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	hours := func(n int) time.Duration { return time.Duration(n) * time.Hour }

	// Overdue: an emergency nobody has picked up, its hour long gone. It is
	// submitted 95 minutes ago, or later just after midnight so that its
	// breach falls today (unless seeded in the day's first minute: overdue
	// comes first).
	{
		late := mins(35)
		if since := d.now.Sub(d.midnight); since < late {
			late = max(since, mins(1))
		}
		at := d.now.Add(-time.Hour - late)
		r := d.referral("overdue-emergency", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9990166137", Name: "Brian Whitfield", DateOfBirth: "1953-08-19", Sex: "male"},
			msccForm{
				primary: "Prostate adenocarcinoma", histology: "Acinar adenocarcinoma, Gleason 4+4=8 (Grade Group 4)",
				levels: "T4–T5", pain: "Thoracic back pain for 3 weeks, band-like around the chest, worse on movement",
				weakness: true, sensoryLevel: "T5", ambulatory: "unable", onset: at.Add(-hours(8)),
				mriAt: at.Add(-hours(2)),
				mriReport: "Whole spine MRI: pathological fracture of T5 with less than 50% height loss and posterior epidural " +
					"tumour extending up to T4, compressing the cord, with cord signal change at T4–T5. " +
					"Widespread sclerotic bone metastases; no compression at any other level.",
				dexMg: 16, dexAt: at.Add(-hours(3)), precautions: true, sins: 8, who: 1, prognosis: "3_to_12_months",
			})
		r.message("m1", at.Add(mins(3)), referrer, "Progressive weakness in both legs over the last 8 hours, now unable to stand. "+
			"Power 3/5 hip flexion both sides, sensory level T5, bladder and bowel normal. "+
			"Dexamethasone 16 mg given, flat bed rest with log-rolling.")
		r.message("m2", d.ago(20), referrer, "Chasing this one, no reply yet. Neuro unchanged on last check. Please ring me on the number above.")
	}

	// Due soon: an emergency being triaged, 50 of its 60 minutes gone.
	{
		at := d.ago(50)
		r := d.referral("emergency-in-triage", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9990308241", Name: "Margaret Ellis", DateOfBirth: "1951-03-14", Sex: "female"},
			msccForm{
				primary: "Breast carcinoma", histology: "Invasive ductal carcinoma, ER positive, HER2 negative",
				levels: "T10–T11", pain: "Lower thoracic back pain for 2 weeks, worse at night and on coughing",
				weakness: true, sensoryLevel: "T11", ambulatory: "with_aid", onset: at.Add(-hours(12)),
				mriAt: at.Add(-hours(2)),
				mriReport: "Whole spine MRI: metastasis in the T10 vertebral body with epidural extension at T10–T11 " +
					"compressing the cord. No cord signal change. No compression at any other level.",
				dexMg: 16, dexAt: at.Add(-hours(4)), precautions: true, sins: 8, who: 1, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "New weakness in both legs over the last 12 hours, power 4/5, now walking with a frame. "+
			"No bladder or bowel symptoms. Dexamethasone 16 mg given, on flat bed rest.")
		r.move("t1", at.Add(mins(6)), specialist, rooms.StatusInTriage, "", nil)
		r.message("m2", at.Add(mins(8)), specialist, "Looking at the MRI now. Please keep her flat and log-roll. Has she had a post-void bladder scan?")
		r.message("m3", at.Add(mins(15)), referrer, "Post-void residual 60 mL. Neuro unchanged on repeat examination.")
		r.plan("p1", at.Add(mins(20)), specialist, "spinal_precautions", "Flat bed rest, log-roll 2-hourly, until the surgical decision.")
		r.plan("p2", at.Add(mins(21)), specialist, "imaging", "Whole spine MRI reviewed: T10 metastasis with epidural disease at T10–T11, cord compressed, no signal change.")
	}

	// Due soon: an urgent referral, 3 h 10 min of its 4 h gone, assigned
	// but not yet picked up.
	{
		at := d.ago(190)
		r := d.referral("urgent-assigned", at, rooms.PriorityUrgent,
			rooms.Patient{NHSNumber: "9991590838", Name: "David Okafor", DateOfBirth: "1962-09-02", Sex: "male"},
			msccForm{
				primary: "Non-small cell lung cancer", histology: "Adenocarcinoma, PD-L1 60%",
				levels: "L1", pain: "Thoracolumbar pain for 2 weeks, worse lying flat and at night, radiating round both flanks",
				ambulatory: "independent", mriAt: at.Add(-hours(5)),
				mriReport: "Whole spine MRI: lytic metastasis in the L1 vertebral body with early epidural extension. " +
					"The conus is not compressed. No other spinal metastases.",
				sins: 6, who: 1, prognosis: "3_to_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Metastatic lung adenocarcinoma on pembrolizumab. Two weeks of new thoracolumbar pain, worse lying flat. "+
			"Neurologically intact and walking independently. Grateful for advice on stability and whether this needs surgery or radiotherapy.")
		r.assign("a1", at.Add(mins(12)), coordinator, d.specialistUser)
		r.message("m2", at.Add(mins(13)), coordinator, "Assigned to Mr Patel, who will review the imaging when he is out of clinic.")
	}

	// More information needed: only the lumbar spine imaged.
	{
		at := d.ago(360)
		r := d.referral("more-info", at, rooms.PriorityUrgent,
			rooms.Patient{NHSNumber: "9991860916", Name: "Eileen Shaw", DateOfBirth: "1947-12-21", Sex: "female"},
			msccForm{
				primary: "Myeloma", histology: "IgG kappa multiple myeloma",
				levels: "L3", pain: "Low back pain for 10 days, worse on standing and walking, eased by lying down",
				ambulatory: "independent",
				mriReport: "MRI lumbar spine: pathological fracture of L3 with about 30% height loss and minor retropulsion. " +
					"Canal patent, no cauda equina compression. Thoracic and cervical spine not imaged.",
				precautions: true, sins: 9, who: 2, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Newly diagnosed myeloma under haematology. Mechanical back pain, neuro examination normal. "+
			"Lumbar MRI reported above; whole spine not yet imaged.")
		r.move("t1", at.Add(mins(25)), specialist, rooms.StatusInTriage, "", nil)
		r.move("t2", at.Add(mins(30)), specialist, rooms.StatusMoreInfoNeeded,
			"Only the lumbar spine has been imaged and myeloma is often multilevel. Please arrange a whole spine MRI "+
				"and send the report with her latest calcium and renal function. We will triage as soon as it is back.", nil)
		r.message("m2", at.Add(mins(120)), referrer, "Whole spine MRI requested, radiology will fit her in on the next available slot. "+
			"Adjusted calcium 2.41 mmol/L, creatinine 88 µmol/L.")
	}

	// Routine, awaiting triage since yesterday: may or may not be past
	// 12:00 on the next working day, depending on when the demo is seeded.
	{
		at := d.ago(17 * 60)
		r := d.referral("routine", at, rooms.PriorityRoutine,
			rooms.Patient{NHSNumber: "9991862528", Name: "Graham Pritchard", DateOfBirth: "1960-05-11", Sex: "male"},
			msccForm{
				primary: "Renal cell carcinoma", histology: "Clear cell renal cell carcinoma",
				levels: "T12", pain: "Mild thoracolumbar ache for 6 weeks, controlled with regular paracetamol and codeine",
				ambulatory: "independent", mriAt: at.AddDate(0, 0, -3),
				mriReport: "Whole spine MRI: 2 cm lytic metastasis in the right side of the T12 vertebral body and right pedicle. " +
					"No epidural extension, no cord compression. No other spinal lesions.",
				sins: 7, who: 1, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Routine referral for an opinion on a solitary T12 metastasis before oncology decide between SABR and surgery. "+
			"Neurologically intact, walking independently, pain well controlled.")
	}

	// Accepted, awaiting a neurosurgical bed.
	{
		at := d.ago(420)
		r := d.referral("awaiting-neurosurgical", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9992319488", Name: "Peter Lloyd", DateOfBirth: "1958-06-30", Sex: "male"},
			msccForm{
				primary: "Non-small cell lung cancer", histology: "Squamous cell carcinoma",
				levels: "T8–T9", pain: "Mid-thoracic back pain for 4 weeks, worse on sitting up and turning",
				weakness: true, sensoryLevel: "T10", ambulatory: "with_aid", onset: at.Add(-hours(20)),
				mriAt: at.Add(-hours(3)),
				mriReport: "Whole spine MRI: T9 vertebral metastasis with epidural tumour at T8–T9 compressing the cord, " +
					"early cord oedema at T9. No other compressive lesion.",
				dexMg: 16, dexAt: at.Add(-hours(5)), precautions: true, sins: 11, who: 1, prognosis: "3_to_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Weakness in both legs for 20 hours, power 4-/5, walking a few steps with a frame. "+
			"Sensory level T10, bladder and bowel normal. Dexamethasone 16 mg given, flat bed rest.")
		r.move("t1", at.Add(mins(10)), coordinator, rooms.StatusInTriage, "", nil)
		r.message("m2", at.Add(mins(25)), specialist, "He is a surgical candidate: we will take him for decompression and stabilisation. "+
			"Please continue dexamethasone 8 mg twice daily with a PPI and keep him flat.")
		r.move("t2", at.Add(mins(28)), specialist, rooms.StatusAccepted, "Accepted for posterior decompression and stabilisation.",
			map[string]any{"bed_type": "neurosurgical"})
		r.plan("p1", at.Add(mins(30)), specialist, "surgical_opinion", "Posterior decompression at T8–T9 with instrumented fixation, on the next available emergency list.")
		r.plan("p2", at.Add(mins(31)), specialist, "steroids", "Dexamethasone 8 mg twice daily with omeprazole 20 mg; monitor capillary blood glucose.")
		r.plan("p3", at.Add(mins(32)), specialist, "transfer", "Transfer flat with spinal precautions once a neurosurgical bed is confirmed.")
		r.message("m3", at.Add(mins(120)), bedManager, "No neurosurgical bed free at the moment. He is next in line for a discharge; I will update here.")
	}

	// Accepted, awaiting a spinal bed: triaged a quarter of an hour past
	// its 4 hours, a breach (today unless seeded early in the morning).
	{
		at := d.ago(540)
		r := d.referral("awaiting-spinal", at, rooms.PriorityUrgent,
			rooms.Patient{NHSNumber: "9993667129", Name: "Janet Morris", DateOfBirth: "1964-11-05", Sex: "female"},
			msccForm{
				primary: "Breast carcinoma", histology: "Invasive lobular carcinoma, ER positive, HER2 negative",
				levels: "L2", pain: "Severe mechanical low back pain for 1 week on sitting and standing, settles lying flat",
				ambulatory: "independent", mriAt: at.Add(-hours(20)),
				mriReport: "Whole spine MRI: L2 pathological fracture with more than 50% height loss and new kyphosis, " +
					"tumour in both pedicles. No compression of the cauda equina. No other spinal disease.",
				precautions: true, sins: 15, who: 1, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Metastatic lobular breast cancer on letrozole and palbociclib. Severe mechanical pain with an L2 fracture, "+
			"neurologically intact, walking but limited by pain. Grateful for an opinion on stabilisation.")
		r.move("t1", at.Add(mins(230)), coordinator, rooms.StatusInTriage, "", nil)
		r.message("m2", at.Add(mins(231)), coordinator, "Sorry for the delay, the on-call team have been in theatre. Mr Patel is reviewing now.")
		r.move("t2", at.Add(mins(255)), specialist, rooms.StatusAccepted, "Unstable L2 fracture (SINS 15). Accepted for stabilisation.",
			map[string]any{"bed_type": "spinal"})
		r.plan("p1", at.Add(mins(257)), specialist, "surgical_opinion", "Posterior instrumented fixation L1–L3 on the next available spinal list.")
		r.plan("p2", at.Add(mins(258)), specialist, "spinal_precautions", "Flat bed rest with log-rolling until the fracture is fixed.")
	}

	// Accepted, awaiting an oncology bed: not for surgery, for radiotherapy.
	{
		at := d.ago(240)
		r := d.referral("awaiting-oncology", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9993909963", Name: "Kenneth Harper", DateOfBirth: "1944-02-27", Sex: "male"},
			msccForm{
				primary: "Prostate adenocarcinoma", histology: "Adenocarcinoma, Gleason 4+5=9 (Grade Group 5)",
				levels: "T6–T8", pain: "Thoracic back pain for 2 months, now constant",
				weakness: true, sensoryLevel: "T9", bladderBowel: true, ambulatory: "unable", onset: at.Add(-hours(30)),
				mriAt: at.Add(-hours(4)),
				mriReport: "Whole spine MRI: epidural disease from T6 to T8 compressing the cord, worst at T7. " +
					"Widespread sclerotic metastases throughout the spine and pelvis, no compression elsewhere.",
				dexMg: 16, dexAt: at.Add(-hours(6)), precautions: true, sins: 4, who: 3, prognosis: "under_3_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Castrate-resistant prostate cancer. Unable to walk for about 30 hours, power 2/5 in both legs, "+
			"sensory level T9, urinary retention and now catheterised. Dexamethasone 16 mg given. In bed or chair most of the day for the last month.")
		r.move("t1", at.Add(mins(8)), specialist, rooms.StatusInTriage, "", nil)
		r.plan("p1", at.Add(mins(20)), specialist, "oncology_opinion", "Discussed with the acute oncology team at Clatterbridge: for urgent palliative radiotherapy.")
		r.move("t2", at.Add(mins(25)), specialist, rooms.StatusAccepted,
			"Not a surgical candidate (PS 3, dense paraparesis for over 24 hours, multilevel disease). Accepted for an oncology bed for urgent radiotherapy.",
			map[string]any{"bed_type": "oncology"})
		r.plan("p2", at.Add(mins(26)), specialist, "radiotherapy", "Single fraction 8 Gy to T5–T9 as soon as possible after transfer.")
		r.plan("p3", at.Add(mins(27)), specialist, "steroids", "Continue dexamethasone 8 mg twice daily with a PPI; review after radiotherapy.")
		r.message("m2", at.Add(mins(120)), bedManager, "Oncology bed requested at Clatterbridge, waiting for them to confirm.")
	}

	// Transfer booked: a neurosurgical bed, the ambulance due within the
	// hour or so.
	{
		at := d.ago(660)
		booked := d.ago(75)
		r := d.referral("transfer-booked", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9995075296", Name: "Alan Brooks", DateOfBirth: "1966-04-12", Sex: "male"},
			msccForm{
				primary: "Renal cell carcinoma", histology: "Clear cell renal cell carcinoma",
				levels: "T11–T12", pain: "Thoracolumbar back pain for 3 weeks, worse on movement",
				weakness: true, sensoryLevel: "L1", ambulatory: "with_aid", onset: at.Add(-hours(36)),
				mriAt: at.Add(-hours(4)),
				mriReport: "Whole spine MRI: expansile metastasis of T12 with epidural extension up to T11 and cord compression. " +
					"No cord signal change. No other spinal lesions.",
				dexMg: 16, dexAt: at.Add(-hours(6)), precautions: true, sins: 10, who: 1, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(3)), referrer, "Weakness in both legs for 36 hours, power 4/5, walking with a frame. Sensory level L1, bladder and bowel normal. "+
			"Dexamethasone 16 mg given, flat bed rest. Solitary spinal metastasis, nephrectomy 2 years ago.")
		r.move("t1", at.Add(mins(12)), specialist, rooms.StatusInTriage, "", nil)
		r.message("m2", at.Add(mins(20)), specialist, "For surgery. Renal metastases are very vascular, so we will arrange embolisation with interventional radiology before theatre.")
		r.move("t2", at.Add(mins(30)), specialist, rooms.StatusAccepted, "Accepted for embolisation, decompression and stabilisation.",
			map[string]any{"bed_type": "neurosurgical"})
		r.plan("p1", at.Add(mins(32)), specialist, "surgical_opinion", "Preoperative embolisation, then decompression at T11–T12 with instrumented fixation.")
		r.plan("p2", at.Add(mins(34)), specialist, "transfer", "Transfer flat with spinal precautions. Please send a group and save sample with him.")
		r.message("m3", at.Add(mins(260)), bedManager, "No neurosurgical bed yet; expecting one once the ward round discharges are through.")
		r.move("t3", booked, bedManager, rooms.StatusTransferBooked, "", map[string]any{
			"bed_type": "neurosurgical", "ward": "Ward 2 (neurosurgery)", "expected_at": demoTime(d.now.Add(time.Hour).Truncate(15 * time.Minute)),
		})
		r.message("m4", booked.Add(mins(1)), bedManager, "Bed confirmed on Ward 2. Ambulance booked; please transfer flat with spinal precautions.")
		r.message("m5", booked.Add(mins(15)), referrer, "Thank you. He and his family are aware, and the imaging is on the Image Exchange Portal.")
	}

	// Transferred today, to a spinal bed.
	{
		at := d.ago(840)
		booked := d.ago(330)
		arrived := d.today(190)
		r := d.referral("transferred", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9995181908", Name: "Patricia Kelly", DateOfBirth: "1972-07-23", Sex: "female"},
			msccForm{
				primary: "Breast carcinoma", histology: "Invasive ductal carcinoma, ER negative, HER2 positive",
				levels: "C5–C6", pain: "Neck pain for 3 weeks, worse on moving the head, with tingling in both hands",
				weakness: true, sensoryLevel: "C6", ambulatory: "with_aid", onset: at.Add(-hours(18)),
				mriAt: at.Add(-hours(3)),
				mriReport: "Whole spine MRI: C5 vertebral metastasis with collapse and epidural tumour at C5–C6 compressing the cord, " +
					"cord signal change at C5. No other compressive disease.",
				dexMg: 16, dexAt: at.Add(-hours(5)), precautions: true, sins: 14, who: 1, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Weakness of both hands and unsteady gait for 18 hours; grip 4/5 both sides, walking with a frame. "+
			"Bladder and bowel normal. Dexamethasone 16 mg given, in a hard collar on flat bed rest.")
		r.move("t1", at.Add(mins(8)), specialist, rooms.StatusInTriage, "", nil)
		r.move("t2", at.Add(mins(25)), specialist, rooms.StatusAccepted, "Accepted for anterior decompression and fixation.",
			map[string]any{"bed_type": "spinal"})
		r.plan("p1", at.Add(mins(27)), specialist, "surgical_opinion", "C5 corpectomy with anterior fixation, posterior fixation if needed. Keep in a hard collar until then.")
		r.move("t3", booked, bedManager, rooms.StatusTransferBooked, "", map[string]any{
			"bed_type": "spinal", "ward": "Ward 4 (spinal surgery)", "expected_at": demoTime(booked.Add(2 * time.Hour).Truncate(15 * time.Minute)),
		})
		r.message("m2", booked.Add(mins(1)), bedManager, "Bed on Ward 4. Ambulance booked; transfer in the hard collar.")
		r.move("t4", arrived, bedManager, rooms.StatusTransferred, "", map[string]any{"arrived_at": demoTime(arrived)})
	}

	// Managed remotely today: stable, for local radiotherapy.
	{
		at := d.ago(19 * 60)
		r := d.referral("managed-remotely", at, rooms.PriorityRoutine,
			rooms.Patient{NHSNumber: "9995260182", Name: "Susan Clarke", DateOfBirth: "1950-01-08", Sex: "female"},
			msccForm{
				primary: "Non-small cell lung cancer", histology: "Adenocarcinoma, EGFR exon 19 deletion",
				levels: "T3, T7", pain: "Intermittent upper and mid-thoracic ache for 2 months, unchanged",
				ambulatory: "independent", mriAt: at.AddDate(0, 0, -2),
				mriReport: "Whole spine MRI: metastases in the T3 and T7 vertebral bodies without epidural extension " +
					"or cord compression. No vertebral collapse.",
				sins: 5, who: 2, prognosis: "3_to_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Routine referral. Stable thoracic pain, neurologically intact. Is there a role for surgery, "+
			"or should these be treated with radiotherapy?")
		r.move("t1", d.ago(150), specialist, rooms.StatusInTriage, "", nil)
		r.plan("p1", d.ago(125), specialist, "radiotherapy", "Palliative radiotherapy to T3 and T7 for pain, via her local clinical oncology team.")
		r.move("t2", d.today(120), specialist, rooms.StatusManagedRemotely, "No cord compression and both lesions are stable (SINS 5). Not for surgery.",
			map[string]any{"advice": "Manage locally. Please refer to your clinical oncology team for palliative radiotherapy to T3 and T7. " +
				"No spinal precautions or steroids needed.\nRe-refer at once if she develops new weakness, numbness, or bladder or bowel symptoms."})
	}

	// Declined: not MSCC.
	{
		at := d.ago(720)
		r := d.referral("declined", at, rooms.PriorityUrgent,
			rooms.Patient{NHSNumber: "9996281949", Name: "Helen Foster", DateOfBirth: "1968-02-10", Sex: "female"},
			msccForm{
				primary: "Breast carcinoma", histology: "Invasive ductal carcinoma, ER positive; treated, no known metastases",
				levels: "L4–L5", pain: "Low back pain for 3 weeks radiating down the back of the right leg to the foot",
				ambulatory: "independent", mriAt: at.Add(-hours(4)),
				mriReport: "Whole spine MRI: no spinal metastases. Degenerative disc disease at L4–L5 with a right paracentral " +
					"disc protrusion contacting the traversing L5 nerve root. No cord or cauda equina compression.",
				who: 0, prognosis: "over_12_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Previous breast cancer, 3 weeks of back pain with right-sided sciatica. ED concerned about metastases. Neuro examination normal.")
		r.move("t1", at.Add(mins(30)), specialist, rooms.StatusDeclined,
			"The MRI shows no metastatic disease, only an L4–L5 disc protrusion on the right L5 root. This is not MSCC. "+
				"Please manage locally with analgesia and refer to your local spinal service if symptoms persist.", nil)
	}

	// Cancelled by the referrer before triage.
	{
		at := d.ago(300)
		r := d.referral("cancelled", at, rooms.PriorityEmergency,
			rooms.Patient{NHSNumber: "9997574915", Name: "Raymond Byrne", DateOfBirth: "1941-05-17", Sex: "male"},
			msccForm{
				primary: "Myeloma", histology: "IgA lambda multiple myeloma",
				levels: "T2–T3", pain: "Upper thoracic pain for 2 weeks",
				weakness: true, sensoryLevel: "T4", bladderBowel: true, ambulatory: "unable", onset: at.Add(-hours(48)),
				mriAt:     at.Add(-hours(3)),
				mriReport: "Whole spine MRI: T3 plasmacytoma with epidural extension to T2 compressing the cord, cord signal change at T3.",
				dexMg:     16, dexAt: at.Add(-hours(5)), precautions: true, sins: 7, who: 3, prognosis: "under_3_months",
			})
		r.message("m1", at.Add(mins(2)), referrer, "Relapsed myeloma. Unable to walk for 48 hours with urinary retention, catheterised. Dexamethasone 16 mg given.")
		r.move("t1", at.Add(mins(35)), referrer, rooms.StatusCancelled,
			"He has deteriorated. After discussion with him and his family the focus is now on comfort; not for transfer or radiotherapy. "+
				"The palliative care team are involved.", nil)
	}

	// A draft the referrer is still writing, waiting for the MRI report.
	d.draft("draft", d.ago(40), rooms.PriorityRoutine,
		rooms.Patient{NHSNumber: "9997601890", Name: "George Allen", DateOfBirth: "1949-10-03", Sex: "male"},
		msccForm{
			primary: "Prostate adenocarcinoma", histology: "Adenocarcinoma, Gleason 3+4=7 (Grade Group 2)",
			levels: "L5", pain: "Intermittent low back ache for 4 weeks, no leg symptoms",
			ambulatory: "independent", who: 0, prognosis: "over_12_months",
		})
}
