package rooms

// receivingRoles are the roles that see every referral their organisation
// receives.
var receivingRoles = []Role{RoleSpecialist, RoleCoordinator, RoleBedManager, RoleIntegrator}

// CanView reports whether u may see referral r: its participants, and the
// specialists, coordinators and bed managers of the receiving organisation.
// Only active users see anything.
func CanView(u User, r Referral) bool {
	if u.Status != UserActive {
		return false
	}
	return r.IsParticipant(u.ID) || ReceivesFor(u, r.ReceivingOrganisation)
}

// ReceivesFor reports whether u works on the receiving side of organisation
// ods: a specialist, coordinator or bed manager there.
func ReceivesFor(u User, ods string) bool {
	if u.Organisation != ods {
		return false
	}
	for _, role := range receivingRoles {
		if u.HasRole(role) {
			return true
		}
	}
	return false
}

// VisibleFilter narrows f to the referrals u may see.
func VisibleFilter(u User, f ReferralFilter) ReferralFilter {
	f.VisibleToUser = u.ID
	f.VisibleToOrganisation = ""
	if ReceivesFor(u, u.Organisation) {
		f.VisibleToOrganisation = u.Organisation
		if u.HasRole(RoleIntegrator) {
			// Never a participant: the organisation's referrals alone,
			// which the (receiving organisation, updated) index finds.
			f.VisibleToUser = ""
		}
	}
	return f
}
