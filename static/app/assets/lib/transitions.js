// The referral status machine as the browser needs it to offer actions: a
// mirror of SPEC §4 and rooms/transition.go (the server decides; this only
// chooses which buttons to show and which fields each move asks for).

// moves: for each target status, where it may be entered from, by which
// parties, and whether it needs a reason.
export const moves = {
  submitted: { from: ['draft', 'more_info_needed'], by: ['referrer'] },
  in_triage: { from: ['submitted'], by: ['specialist', 'coordinator'] },
  more_info_needed: { from: ['submitted', 'in_triage'], by: ['specialist'], reason: true },
  accepted: { from: ['in_triage'], by: ['specialist'] },
  managed_remotely: { from: ['in_triage'], by: ['specialist'], reason: true },
  declined: { from: ['submitted', 'in_triage'], by: ['specialist'], reason: true },
  transfer_booked: { from: ['accepted'], by: ['bed_manager', 'coordinator'] },
  transferred: { from: ['transfer_booked'], by: ['bed_manager', 'specialist'] },
  cancelled: { from: ['draft', 'submitted', 'in_triage', 'more_info_needed'], by: ['referrer'], reason: true },
};

// The order actions are offered in, and what each button says.
export const actionLabels = {
  in_triage: 'Start triage',
  accepted: 'Accept',
  transfer_booked: 'Book transfer',
  transferred: 'Record arrival',
  more_info_needed: 'Ask for more information',
  managed_remotely: 'Manage remotely',
  declined: 'Decline',
  submitted: 'Resubmit',
  cancelled: 'Cancel referral',
};

// outcomeFields: what a move's outcome carries (rooms/outcome.go), each
// with the kind of input it needs.
export const outcomeFields = {
  accepted: [{ key: 'bed_type', label: 'Bed type', kind: 'bed_type', required: true }],
  transfer_booked: [
    { key: 'bed_type', label: 'Bed type', kind: 'bed_type', required: true },
    { key: 'ward', label: 'Ward', kind: 'text', required: true },
    { key: 'expected_at', label: 'Expected arrival', kind: 'time', required: true },
  ],
  transferred: [{ key: 'arrived_at', label: 'Arrived at', kind: 'time', required: true }],
  managed_remotely: [{ key: 'advice', label: 'Advice given to the referring team', kind: 'multiline' }],
};

// partiesOf is the capacities in which the user acts on the referral:
// referrer when they created it or take part from outside the receiving
// organisation, and the receiving roles they hold when they belong to it.
export function partiesOf(user, referral, participants) {
  const ps = [];
  const inRoom = participants.some((p) => p.user_id === user.id);
  if (referral.referrer.id === user.id || (inRoom && user.organisation !== referral.receiving_organisation)) {
    ps.push('referrer');
  }
  if (user.organisation === referral.receiving_organisation) {
    for (const role of ['specialist', 'coordinator', 'bed_manager']) {
      if (user.roles.includes(role)) ps.push(role);
    }
  }
  return ps;
}

// allowedMoves lists, in the order actions are offered, the statuses the
// parties may move a referral in status to.
export function allowedMoves(status, parties) {
  return Object.keys(actionLabels).filter((to) => {
    const m = moves[to];
    return m.from.includes(status) && m.by.some((p) => parties.includes(p));
  });
}
