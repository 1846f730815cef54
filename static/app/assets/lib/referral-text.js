// The words the pages use for a referral's status, priority and triage
// clock, so every page names them the same way.

// statuses lists every status in journey order (rooms.Statuses), with the
// label a clinician reads.
export const statuses = [
  ['draft', 'Draft'],
  ['submitted', 'Submitted, awaiting triage'],
  ['in_triage', 'In triage'],
  ['more_info_needed', 'More information needed'],
  ['accepted', 'Accepted'],
  ['managed_remotely', 'Managed remotely'],
  ['declined', 'Declined'],
  ['transfer_booked', 'Transfer booked'],
  ['transferred', 'Transferred'],
  ['cancelled', 'Cancelled'],
];

const statusLabels = Object.fromEntries(statuses);

export function statusLabel(s) { return statusLabels[s] || String(s || '').replaceAll('_', ' '); }

export const priorities = [
  ['emergency', 'Emergency'],
  ['urgent', 'Urgent'],
  ['routine', 'Routine'],
];

const priorityLabels = Object.fromEntries(priorities);

export function priorityLabel(p) { return priorityLabels[p] || String(p || ''); }

// awaitingTriage reports whether the referral's triage clock runs
// (rooms.Status.AwaitingTriage).
export function awaitingTriage(r) { return r.status === 'submitted' || r.status === 'in_triage'; }

// Triage becomes due soon at this fraction of the window from submission
// to the deadline: when the coordinators are reminded (README, Workflow).
const dueSoonAt = 0.75;

// triageState is where the referral's triage clock stands at now:
// 'overdue', 'due-soon', 'running', or '' when no clock runs.
export function triageState(r, now = Date.now()) {
  if (!awaitingTriage(r) || !r.triage_due_at) return '';
  const due = new Date(r.triage_due_at).getTime();
  if (now >= due) return 'overdue';
  const from = r.submitted_at ? new Date(r.submitted_at).getTime() : due;
  if (now >= from + dueSoonAt * (due - from)) return 'due-soon';
  return 'running';
}

// timeLeft is how long until the deadline, or how long past it, in
// words: "45 min", "2 h 10 min", "3 days 4 h" (days once it is a day or
// more, so a long overdue referral reads plainly).
export function timeLeft(due, now = Date.now()) {
  const min = Math.floor(Math.abs(new Date(due).getTime() - now) / 60000);
  const d = Math.floor(min / 1440);
  const h = Math.floor((min % 1440) / 60);
  const m = min % 60;
  if (d > 0) return d + (d === 1 ? ' day' : ' days') + (h ? ' ' + h + ' h' : '');
  return h > 0 ? h + ' h ' + m + ' min' : m + ' min';
}

// triageWindows describes a pathway's triage policy, by priority, as help
// text: "Triage within 1 hour of submission".
export function triageWindows(policy) {
  const within = (ns) => {
    const min = Math.round(Number(ns) / 6e10);
    if (!min) return '';
    if (min % 60) return 'Triage within ' + min + ' minutes of submission';
    const h = min / 60;
    return 'Triage within ' + h + (h === 1 ? ' hour' : ' hours') + ' of submission';
  };
  const p = policy || {};
  const hour = String(p.routine_hour ?? 12).padStart(2, '0') + ':00';
  return {
    emergency: within(p.emergency),
    urgent: within(p.urgent),
    routine: 'Triage by ' + hour + ' on the next working day',
  };
}
