package fhir

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/samply/golang-fhir-models/fhir-models/fhir"

	"patientpass/rooms"
)

// The mapping from the domain to FHIR R4, in one place. A referral is a
// ServiceRequest; its workflow a Task (same id); its patient, as the
// referrer recorded them, a Patient (same id: the platform keeps no
// patient index of its own, the NHS number is the identifier that joins
// them); its management plan a CarePlan (same id); each message a
// Communication ("<referral>-<seq>"). People with accounts are
// Practitioners (their user id), organisations Organizations (their ODS
// code), audit entries AuditEvents (their number).

// The identifier systems of SPEC §10: no resource carries any other.
const (
	SystemNHSNumber = "https://fhir.nhs.uk/Id/nhs-number"
	SystemODS       = "https://fhir.nhs.uk/Id/ods-organization-code"
	SystemGMC       = "https://fhir.hl7.org.uk/Id/gmc-number"
	SystemNMC       = "https://fhir.hl7.org.uk/Id/nmc-number"
	SystemHCPC      = "https://fhir.hl7.org.uk/Id/hcpc-number"
)

const (
	systemSNOMED          = "http://snomed.info/sct"
	systemAuditEventType  = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	systemAuditEntityType = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
)

func str(s string) *string { return &s }

// optional is nil for an empty string.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// instant renders a stored time as a FHIR instant (UTC, microseconds).
func instant(t time.Time) string { return t.UTC().Truncate(time.Microsecond).Format(time.RFC3339Nano) }

func instantPtr(t *time.Time) *string {
	if t == nil {
		return nil
	}
	return str(instant(*t))
}

func reference(resourceType, id, display string) *fhir.Reference {
	return &fhir.Reference{Reference: str(resourceType + "/" + id), Display: optional(display)}
}

func identifier(system, value string) fhir.Identifier {
	return fhir.Identifier{System: str(system), Value: str(value)}
}

// meta is a resource's meta: its version (the referral's head seq, where
// it has one) and its last change.
func meta(version int64, updated time.Time) *fhir.Meta {
	m := &fhir.Meta{LastUpdated: str(instant(updated))}
	if version > 0 {
		m.VersionId = str(strconv.FormatInt(version, 10))
	}
	return m
}

// requestStatus is a referral's ServiceRequest.status (and its CarePlan's):
// the request stands while the referral moves through triage to transfer.
func requestStatus(s rooms.Status) fhir.RequestStatus {
	switch s {
	case rooms.StatusDraft:
		return fhir.RequestStatusDraft
	case rooms.StatusTransferred, rooms.StatusManagedRemotely:
		return fhir.RequestStatusCompleted
	case rooms.StatusDeclined, rooms.StatusCancelled:
		return fhir.RequestStatusRevoked
	}
	return fhir.RequestStatusActive
}

// priority is SPEC §10's mapping: emergency→stat, urgent→urgent,
// routine→routine.
func priority(p rooms.Priority) *fhir.RequestPriority {
	v := fhir.RequestPriorityRoutine
	switch p {
	case rooms.PriorityEmergency:
		v = fhir.RequestPriorityStat
	case rooms.PriorityUrgent:
		v = fhir.RequestPriorityUrgent
	}
	return &v
}

var taskStatuses = map[string]fhir.TaskStatus{
	"draft": fhir.TaskStatusDraft, "requested": fhir.TaskStatusRequested, "received": fhir.TaskStatusReceived,
	"accepted": fhir.TaskStatusAccepted, "rejected": fhir.TaskStatusRejected, "cancelled": fhir.TaskStatusCancelled,
	"in-progress": fhir.TaskStatusInProgress, "on-hold": fhir.TaskStatusOnHold, "completed": fhir.TaskStatusCompleted,
}

// patientRef names the referral's Patient without its name: a token
// without Patient reads must not learn it from a reference's display.
func patientRef(r rooms.Referral) *fhir.Reference {
	return reference("Patient", r.ID, "")
}

func referrerRef(r rooms.Referral) *fhir.Reference {
	return reference("Practitioner", r.Referrer.ID, r.Referrer.Name)
}

func serviceRequestRef(r rooms.Referral) fhir.Reference {
	return *reference("ServiceRequest", r.ID, "")
}

// authored is when the referral was sent: its submission, or its creation
// while it is a draft.
func authored(r rooms.Referral) *string {
	if r.SubmittedAt != nil {
		return instantPtr(r.SubmittedAt)
	}
	return str(instant(r.CreatedAt))
}

// ServiceRequest is the referral itself.
func ServiceRequest(r rooms.Referral, pw rooms.Pathway) fhir.ServiceRequest {
	return fhir.ServiceRequest{
		Id:     str(r.ID),
		Meta:   meta(r.HeadSeq, r.UpdatedAt),
		Status: requestStatus(r.Status),
		Intent: fhir.RequestIntentOrder,
		Category: []fhir.CodeableConcept{{
			Coding: []fhir.Coding{{System: str(systemSNOMED), Code: str("3457005"), Display: str("Patient referral")}},
		}},
		Priority:   priority(r.Priority),
		Code:       &fhir.CodeableConcept{Text: str(pw.Name)},
		Subject:    *patientRef(r),
		AuthoredOn: authored(r),
		Requester:  referrerRef(r),
		Performer:  []fhir.Reference{*reference("Organization", r.ReceivingOrganisation, "")},
	}
}

// Task is the referral's workflow: its status, deadline and owner.
func Task(r rooms.Referral) fhir.Task {
	owner := reference("Organization", r.ReceivingOrganisation, "")
	if r.AssigneeID != "" {
		owner = reference("Practitioner", r.AssigneeID, "")
	}
	t := fhir.Task{
		Id:             str(r.ID),
		Meta:           meta(r.HeadSeq, r.UpdatedAt),
		Status:         taskStatuses[r.Status.FHIRTaskStatus()],
		BusinessStatus: &fhir.CodeableConcept{Text: str(string(r.Status))},
		Intent:         "order",
		Priority:       priority(r.Priority),
		Focus:          reference("ServiceRequest", r.ID, ""),
		For:            patientRef(r),
		AuthoredOn:     str(instant(r.CreatedAt)),
		LastModified:   str(instant(r.UpdatedAt)),
		Requester:      referrerRef(r),
		Owner:          owner,
	}
	if r.TriageDueAt != nil {
		t.Restriction = &fhir.TaskRestriction{Period: &fhir.Period{End: instantPtr(r.TriageDueAt)}}
	}
	return t
}

var genders = map[string]fhir.AdministrativeGender{
	"female": fhir.AdministrativeGenderFemale, "male": fhir.AdministrativeGenderMale,
	"other": fhir.AdministrativeGenderOther, "unknown": fhir.AdministrativeGenderUnknown,
}

// Patient is the referral's patient as the referrer recorded them.
func Patient(r rooms.Referral) fhir.Patient {
	p := fhir.Patient{
		Id:         str(r.ID),
		Meta:       meta(0, r.CreatedAt),
		Identifier: []fhir.Identifier{identifier(SystemNHSNumber, r.Patient.NHSNumber)},
		Name:       []fhir.HumanName{{Text: str(r.Patient.Name)}},
		BirthDate:  optional(r.Patient.DateOfBirth),
	}
	if g, ok := genders[r.Patient.Sex]; ok {
		p.Gender = &g
	}
	return p
}

var registrationSystems = map[rooms.ProfessionalBody]string{
	rooms.BodyGMC: SystemGMC, rooms.BodyNMC: SystemNMC, rooms.BodyHCPC: SystemHCPC,
}

// Practitioner is a person with an account, by their professional
// registration: what the public registers show, and not whether the
// account is suspended, which is their organisation's business.
func Practitioner(u rooms.User) fhir.Practitioner {
	p := fhir.Practitioner{
		Id:   str(u.ID),
		Meta: meta(0, u.UpdatedAt),
		Name: []fhir.HumanName{{Text: str(u.Name)}},
	}
	if system, ok := registrationSystems[u.ProfessionalBody]; ok && u.RegistrationNumber != "" {
		p.Identifier = []fhir.Identifier{identifier(system, u.RegistrationNumber)}
	}
	return p
}

// Organization is an organisation of the directory.
func Organization(o rooms.Organisation) fhir.Organization {
	return fhir.Organization{
		Id:         str(o.ODS),
		Identifier: []fhir.Identifier{identifier(SystemODS, o.ODS)},
		Active:     new(true),
		Name:       str(o.Name),
	}
}

// CommunicationID is the id of the Communication of a referral's message.
func CommunicationID(referralID string, seq int64) string {
	return referralID + "-" + strconv.FormatInt(seq, 10)
}

// Communication is one message of a referral's room, as JSON: the model
// writes every choice of payload.content[x] (an empty attachment and
// reference beside the string), which R4 forbids, so the payload is
// written here.
func Communication(r rooms.Referral, e rooms.Event) (json.RawMessage, error) {
	var body rooms.MessageBody
	if err := json.Unmarshal(e.Body, &body); err != nil {
		return nil, fmt.Errorf("decode message %d of referral %s: %w", e.Seq, r.ID, err)
	}
	c := fhir.Communication{
		Id:      str(CommunicationID(r.ID, e.Seq)),
		Meta:    meta(0, e.At),
		BasedOn: []fhir.Reference{serviceRequestRef(r)},
		Status:  fhir.EventStatusCompleted,
		Subject: patientRef(r),
		Sent:    str(instant(e.At)),
		Sender:  reference("Practitioner", e.Author.ID, e.Author.Name),
	}
	return withField(c, "payload", []map[string]string{{"contentString": body.Body}})
}

// withField marshals a resource with one more top-level element.
func withField(resource any, name string, value any) (json.RawMessage, error) {
	b, err := json.Marshal(resource)
	if err != nil {
		return nil, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m[name], err = json.Marshal(value); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// CarePlan is the referral's management plan, one activity per section in
// the pathway's order.
func CarePlan(r rooms.Referral, pw rooms.Pathway) fhir.CarePlan {
	labels := make(map[string]string, len(pw.PlanSections))
	for _, d := range pw.PlanSections {
		labels[d.Name] = d.Label
	}
	updated := r.CreatedAt
	activities := make([]fhir.CarePlanActivity, 0, len(r.Plan.Sections))
	for _, s := range r.Plan.Sections {
		status := fhir.CarePlanActivityStatusNotStarted
		if s.Text != "" {
			status = fhir.CarePlanActivityStatusInProgress
		}
		if s.UpdatedAt.After(updated) {
			updated = s.UpdatedAt
		}
		label := labels[s.Name]
		if label == "" {
			label = s.Name
		}
		activities = append(activities, fhir.CarePlanActivity{Detail: &fhir.CarePlanActivityDetail{
			Code: &fhir.CodeableConcept{Text: str(label)}, Status: status, Description: optional(s.Text),
		}})
	}
	return fhir.CarePlan{
		Id:       str(r.ID),
		Meta:     meta(0, updated),
		Status:   requestStatus(r.Status),
		Intent:   fhir.CarePlanIntentPlan,
		Title:    str("Management plan"),
		Subject:  *patientRef(r),
		Created:  str(instant(r.CreatedAt)),
		Activity: activities,
		// basedOn names only CarePlans in R4: the referral the plan
		// belongs to is its supporting information.
		SupportingInfo: []fhir.Reference{serviceRequestRef(r)},
	}
}

var auditActions = map[rooms.AuditAction]fhir.AuditEventAction{
	rooms.ActionCreate: fhir.AuditEventActionC, rooms.ActionRead: fhir.AuditEventActionR,
	rooms.ActionUpdate: fhir.AuditEventActionU, rooms.ActionDelete: fhir.AuditEventActionD,
	rooms.ActionExecute: fhir.AuditEventActionE,
}

// AuditEvent is one entry of the audit trail.
func AuditEvent(e rooms.AuditEntry) fhir.AuditEvent {
	outcome := fhir.AuditEventOutcome0
	switch e.Outcome {
	case rooms.OutcomeDenied, rooms.OutcomeInvalid:
		outcome = fhir.AuditEventOutcome4
	case rooms.OutcomeFailed:
		outcome = fhir.AuditEventOutcome8
	}
	agent := fhir.AuditEventAgent{Requestor: true, Who: &fhir.Reference{Display: str(e.ActorID)}}
	if rooms.CheckID("actor", e.ActorID) == nil {
		agent.Who = reference("Practitioner", e.ActorID, "")
	}
	if e.ClientAddr != "" {
		ip := fhir.AuditEventAgentNetworkType2
		agent.Network = &fhir.AuditEventAgentNetwork{Address: str(e.ClientAddr), Type: &ip}
	}
	a := auditActions[e.Action]
	ae := fhir.AuditEvent{
		Id:          str(strconv.FormatInt(e.ID, 10)),
		Meta:        meta(0, e.At),
		Type:        fhir.Coding{System: str(systemAuditEventType), Code: str("rest"), Display: str("RESTful Operation")},
		Subtype:     []fhir.Coding{{Code: str(e.Event)}},
		Action:      &a,
		Recorded:    instant(e.At),
		Outcome:     &outcome,
		OutcomeDesc: optional(e.Detail),
		Agent:       []fhir.AuditEventAgent{agent},
		Source:      fhir.AuditEventSource{Site: optional(e.Node), Observer: fhir.Reference{Display: str("Patient Pass")}},
	}
	if e.ReferralID != "" {
		ae.Entity = append(ae.Entity, fhir.AuditEventEntity{What: reference("ServiceRequest", e.ReferralID, "")})
	}
	if e.PatientNHSNumber != "" {
		nhs := identifier(SystemNHSNumber, e.PatientNHSNumber)
		ae.Entity = append(ae.Entity, fhir.AuditEventEntity{
			What: &fhir.Reference{Identifier: &nhs},
			Type: &fhir.Coding{System: str(systemAuditEntityType), Code: str("1"), Display: str("Person")},
		})
	}
	return ae
}
