// The referral list: what the user may see (the receiving team: their
// pathways' referrals; a referrer: their own), filtered by status and
// priority, kept live from the user's notification feed.
import { html, useState, useEffect, useRef } from '../vendor/htm-preact.js';
import { api } from '../lib/api.js';
import { live } from '../lib/live.js';
import { navigate } from '../lib/router.js';
import { useSession, hasRole } from '../lib/session.js';
import { ErrorSummary, useTitle } from '../lib/ui.js';
import * as format from '../lib/format.js';
import { statuses, statusLabel, priorities, priorityLabel, triageState, timeLeft } from '../lib/referral-text.js';

// Status filters offered besides each single status.
const statusGroups = [
  ['submitted,in_triage', 'Awaiting triage'],
  ['submitted,in_triage,more_info_needed', 'Open'],
];

// How long to wait for a burst of notifications to settle before fetching
// the list again, and how often the triage countdowns move on.
const refetchDelay = 500;
const tick = 30 * 1000;

// Unread notifications counted per referral: the most the API lists.
const notificationLimit = 200;

function filtersFromURL() {
  const q = new URLSearchParams(location.search);
  return { status: q.get('status') || '', priority: q.get('priority') || '' };
}

function query(filters) {
  const q = new URLSearchParams();
  if (filters.status) q.set('status', filters.status);
  if (filters.priority) q.set('priority', filters.priority);
  const s = q.toString();
  return s ? '?' + s : '';
}

// unreadByReferral counts the unread notifications of each referral. The
// list does not carry the user's read marker (read_seq), so this stands in
// for head_seq - read_seq: what others did on the referral that the user
// has not yet seen.
function unreadByReferral(notifications) {
  const n = {};
  for (const x of notifications || []) {
    if (x.referral && !x.read) n[x.referral] = (n[x.referral] || 0) + 1;
  }
  return n;
}

function unreadOf(r, unread) {
  if (typeof r.read_seq === 'number') return Math.max(0, r.head_seq - r.read_seq);
  return unread[r.id] || 0;
}

export function Referrals() {
  useTitle('Referrals');
  const { me } = useSession();
  const [filters, setFilters] = useState(filtersFromURL);
  const [list, setList] = useState(null); // null until the first answer
  const [unread, setUnread] = useState({});
  const [error, setError] = useState(null);
  const [now, setNow] = useState(Date.now());
  const filtersRef = useRef(filters);
  filtersRef.current = filters;
  const latest = useRef(0); // the newest request: older answers are dropped

  const load = async () => {
    const n = ++latest.current;
    const [r, ns] = await Promise.all([
      api.get('/api/referrals' + query(filtersRef.current)),
      api.get('/api/notifications?unread=true&limit=' + notificationLimit),
    ]);
    if (n !== latest.current) return;
    if (!r.ok) { setError(r.error); return; }
    setError(null);
    setList(r.data.referrals);
    if (ns.ok) setUnread(unreadByReferral(ns.data.notifications));
  };

  useEffect(() => {
    history.replaceState(null, '', location.pathname + query(filters));
    load();
  }, [filters.status, filters.priority]);

  // A notification names the referral that changed (a new submission, a
  // status change, a message): fetch the list again once a burst settles.
  // A snapshot after the first follows a reconnection, when updates may
  // have been missed.
  useEffect(() => {
    let timer = null;
    let snapshots = 0;
    const later = () => { clearTimeout(timer); timer = setTimeout(load, refetchDelay); };
    const stop = live.subscribe('user', {
      onSnapshot: () => { if (snapshots++ > 0) later(); },
      onUpdate: (d) => { if ((d.notification && d.notification.referral) || d.unread !== undefined) later(); },
    });
    // Not every change notifies every reader (a status change reaches the
    // participants and the assignee), so a tab coming back into view
    // fetches the list afresh too.
    const onVisible = () => { if (document.visibilityState === 'visible') later(); };
    document.addEventListener('visibilitychange', onVisible);
    return () => { clearTimeout(timer); stop(); document.removeEventListener('visibilitychange', onVisible); };
  }, []);

  useEffect(() => {
    const id = setInterval(() => setNow(Date.now()), tick);
    return () => clearInterval(id);
  }, []);

  const set = (k) => (e) => setFilters({ ...filters, [k]: e.target.value });
  const filtered = filters.status || filters.priority;
  const canRefer = hasRole(me, 'clinician', 'specialist');

  return html`<main id="main" class="referrals">
    <div class="page-head">
      <h1>Referrals</h1>
      ${canRefer ? html`<a class="button primary" href="/referrals/new">New referral</a>` : ''}
    </div>
    <form class="filters" role="search" aria-label="Filter referrals" onSubmit=${(e) => e.preventDefault()}>
      <div class="field">
        <label for="filter-status">Status</label>
        <select id="filter-status" value=${filters.status} onChange=${set('status')}>
          <option value="">All statuses</option>
          ${statusGroups.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
          ${statuses.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
        </select>
      </div>
      <div class="field">
        <label for="filter-priority">Priority</label>
        <select id="filter-priority" value=${filters.priority} onChange=${set('priority')}>
          <option value="">All priorities</option>
          ${priorities.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
        </select>
      </div>
    </form>
    <${ErrorSummary} error=${error} />
    ${list === null && !error ? html`<p class="muted" role="status">Loading referrals…</p>` : ''}
    ${list && list.length === 0 ? html`<p class="empty" role="status">${filtered
      ? 'No referrals match these filters.'
      : canRefer ? 'No referrals yet. Referrals you make, or that your team receives, appear here.' : 'No referrals yet. Referrals your team receives appear here.'}</p>` : ''}
    ${list && list.length > 0 ? html`<${ReferralTable} list=${list} unread=${unread} now=${now} />` : ''}
  </main>`;
}

function ReferralTable({ list, unread, now }) {
  const open = (id) => (e) => {
    if (e.target.closest('a')) return; // the link routes itself
    navigate('/referrals/' + encodeURIComponent(id));
  };
  return html`<table class="responsive referral-list" aria-label="Referrals, the nearest triage deadline first">
    <thead><tr>
      <th scope="col">Patient</th><th scope="col">Priority</th><th scope="col">Status</th>
      <th scope="col">Triage due</th><th scope="col">Last updated</th><th scope="col">Unread</th>
    </tr></thead>
    <tbody>
      ${list.map((r) => html`<tr key=${r.id} class="row-link" onClick=${open(r.id)}>
        <td data-label="Patient">
          <a href=${'/referrals/' + encodeURIComponent(r.id)} class="patient-name">${r.patient.name}</a>
          <span class="nhs-number">NHS ${format.nhsNumber(r.patient.nhs_number)}</span>
        </td>
        <td data-label="Priority"><span class=${'pill prio-' + r.priority}>${priorityLabel(r.priority)}</span></td>
        <td data-label="Status" class="status">${statusLabel(r.status)}</td>
        <td data-label="Triage due"><${TriageDue} r=${r} now=${now} /></td>
        <td data-label="Last updated"><time datetime=${r.updated_at}>${format.time(r.updated_at)}</time></td>
        <td data-label="Unread" class="unread"><${Unread} n=${unreadOf(r, unread)} /></td>
      </tr>`)}
    </tbody>
  </table>`;
}

// TriageDue counts down to the triage deadline while the clock runs; the
// words say what the colour does (due soon, overdue).
function TriageDue({ r, now }) {
  const state = triageState(r, now);
  if (!state) return html`<span class="muted">${r.triaged_at ? 'Triaged ' + format.time(r.triaged_at) : '—'}</span>`;
  const left = timeLeft(r.triage_due_at, now);
  const text = state === 'overdue' ? 'Overdue by ' + left : state === 'due-soon' ? 'Due soon: ' + left + ' left' : left + ' left';
  return html`<span class=${state === 'running' ? 'due' : 'due ' + state}>
    ${text}<span class="due-at"> (by ${format.time(r.triage_due_at)})</span>
  </span>`;
}

function Unread({ n }) {
  if (!n) return html`<span class="muted">None</span>`;
  return html`<span class="badge" aria-label=${n + ' unread'}>${n}</span>`;
}
