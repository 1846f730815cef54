package rooms

import (
	"slices"
	"strings"
)

// Party is the capacity in which someone moves a referral.
type Party string

// The parties that may move referrals.
const (
	// PartyReferrer is a participant on the referring side.
	PartyReferrer    Party = "referrer"
	PartySpecialist  Party = "specialist"
	PartyCoordinator Party = "coordinator"
	PartyBedManager  Party = "bed_manager"
)

// move is one allowed edge of the status machine.
type move struct {
	from []Status
	by   []Party
	// needsReason: the move must carry a reason. What its outcome must
	// carry is outcomeFields'.
	needsReason bool
}

// moves is the status machine of SPEC §4: for each target status, where it may
// be entered from and by whom.
var moves = map[Status]move{
	StatusSubmitted:       {from: []Status{StatusDraft, StatusMoreInfoNeeded}, by: []Party{PartyReferrer}},
	StatusInTriage:        {from: []Status{StatusSubmitted}, by: []Party{PartySpecialist, PartyCoordinator}},
	StatusMoreInfoNeeded:  {from: []Status{StatusSubmitted, StatusInTriage}, by: []Party{PartySpecialist}, needsReason: true},
	StatusAccepted:        {from: []Status{StatusInTriage}, by: []Party{PartySpecialist}},
	StatusManagedRemotely: {from: []Status{StatusInTriage}, by: []Party{PartySpecialist}, needsReason: true},
	StatusDeclined:        {from: []Status{StatusSubmitted, StatusInTriage}, by: []Party{PartySpecialist}, needsReason: true},
	StatusTransferBooked:  {from: []Status{StatusAccepted}, by: []Party{PartyBedManager, PartyCoordinator}},
	StatusTransferred:     {from: []Status{StatusTransferBooked}, by: []Party{PartyBedManager, PartySpecialist}},
	StatusCancelled: {from: []Status{StatusDraft, StatusSubmitted, StatusInTriage, StatusMoreInfoNeeded},
		by: []Party{PartyReferrer}, needsReason: true},
}

// PartiesOf returns the capacities in which u acts on r: referrer when u takes
// part from outside the receiving organisation (or created it), and the
// receiving roles u holds when u belongs to the receiving organisation.
func PartiesOf(u User, r Referral) []Party {
	var ps []Party
	if r.Referrer.ID == u.ID || (r.IsParticipant(u.ID) && u.Organisation != r.ReceivingOrganisation) {
		ps = append(ps, PartyReferrer)
	}
	if u.Organisation == r.ReceivingOrganisation {
		for _, pair := range []struct {
			role  Role
			party Party
		}{{RoleSpecialist, PartySpecialist}, {RoleCoordinator, PartyCoordinator}, {RoleBedManager, PartyBedManager}} {
			if u.HasRole(pair.role) {
				ps = append(ps, pair.party)
			}
		}
	}
	return ps
}

// CheckTransition decides whether parties may move a referral in pathway p
// from one status to another with the given reason and outcome (checked by
// CheckOutcome). It returns nil when the move is allowed, an invalid error
// naming the field at fault, or a forbidden error when the move exists but
// the parties may not make it.
func CheckTransition(p Pathway, parties []Party, from, to Status, reason string, outcome map[string]any) error {
	if !slices.Contains(Statuses, to) || to == StatusDraft {
		return Invalid("to", "%q is not a status a referral can be moved to", to)
	}
	m := moves[to]
	if !slices.Contains(m.from, from) {
		return Invalid("to", "a referral that is %s cannot be moved to %s", humanStatus(from), humanStatus(to))
	}
	allowed := false
	for _, party := range parties {
		if slices.Contains(m.by, party) {
			allowed = true
		}
	}
	if !allowed {
		return Forbidden("only %s may move a referral to %s", partyList(m.by), humanStatus(to))
	}
	if m.needsReason && strings.TrimSpace(reason) == "" {
		return Invalid("reason", "a reason is required to move a referral to %s", humanStatus(to))
	}
	if err := ruleReason.check("reason", reason); err != nil {
		return err
	}
	return CheckOutcome(p, to, outcome)
}

func humanStatus(s Status) string { return strings.ReplaceAll(string(s), "_", " ") }

func partyList(ps []Party) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = strings.ReplaceAll(string(p), "_", " ") + "s"
	}
	return strings.Join(names, " or ")
}
