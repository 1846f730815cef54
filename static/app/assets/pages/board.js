// The triage board (SPEC §9): the receiving team's live queue of open
// referrals, earliest deadline first, to claim and assign from. Bed
// managers set the site's OPEL level here too (the wallboard takes no
// input).
import { html, useState, useEffect } from '../vendor/htm-preact.js';
import { api, newRef } from '../lib/api.js';
import { live } from '../lib/live.js';
import { useSession, hasRole } from '../lib/session.js';
import { nhsNumber, countdown, human, time, clock } from '../lib/format.js';
import { useTitle, ErrorSummary } from '../lib/ui.js';
import { syncServerClock, useNow } from '../lib/server-clock.js';
import { OpelSetter } from '../lib/opel-setter.js';

// The statuses whose triage clock runs (claiming is not triaging).
const onTheClock = ['submitted', 'in_triage'];

const deadline = (item) => (item.triage_due_at ? Date.parse(item.triage_due_at) : Infinity);

function byDeadline(a, b) {
  return deadline(a) - deadline(b) || Date.parse(a.created_at) - Date.parse(b.created_at);
}

// urgency is the row's class: red once the deadline has passed, amber when
// the server says it is due soon or three quarters of the window have gone.
export function urgency(item, now) {
  if (!onTheClock.includes(item.status)) return '';
  const due = deadline(item);
  if (due === Infinity) return '';
  if (item.overdue || now >= due) return 'overdue';
  const from = Date.parse(item.submitted_at);
  if (item.due_soon || (!isNaN(from) && now >= from + 0.75 * (due - from))) return 'due-soon';
  return '';
}

// useBoard follows board:P. Items in updates carry no unread count (it is
// each viewer's own), so the read marker the snapshot gave for each
// referral is kept and the count worked out from head_seq.
function useBoard(pathway) {
  const [board, setBoard] = useState({ items: [], truncated: false, ready: false, error: null, generatedAt: null });
  useEffect(() => {
    if (!pathway) return undefined;
    let items = new Map();
    const readSeq = new Map();
    const withUnread = (it) => ({ ...it, unread: Math.max(0, it.head_seq - (readSeq.get(it.id) || 0)) });
    const show = (extra) => setBoard((b) => ({ ...b, ...extra, items: [...items.values()].sort(byDeadline) }));
    return live.subscribe('board:' + pathway, {
      onSnapshot(d) {
        syncServerClock(d.generated_at);
        items = new Map();
        for (const it of d.referrals || []) {
          readSeq.set(it.id, it.read_seq != null ? it.read_seq : Math.max(0, it.head_seq - (it.unread || 0)));
          items.set(it.id, withUnread(it));
        }
        show({ truncated: d.truncated, ready: true, error: null, generatedAt: d.generated_at });
      },
      onUpdate(d) {
        if (d.referral) {
          const held = items.get(d.referral.id);
          if (held && held.head_seq > d.referral.head_seq) return; // older than what is shown
          items.set(d.referral.id, withUnread(d.referral));
        } else if (d.removed) {
          const held = items.get(d.removed);
          if (!held || (d.head_seq && held.head_seq > d.head_seq)) return;
          items.delete(d.removed);
        }
        show({});
      },
      onError(f) {
        setBoard((b) => ({ ...b, ready: true, error: { code: f.code, message: f.message || 'The board is not available to you.' } }));
      },
    });
  }, [pathway]);
  return board;
}

// receivingPathway is the pathway the user's organisation receives (the
// first, while there is one per organisation).
function useReceivingPathway(me) {
  const [state, setState] = useState({ pathway: undefined, error: null });
  useEffect(() => {
    api.get('/api/pathways').then((r) => {
      if (!r.ok) { setState({ pathway: null, error: r.error }); return; }
      const p = (r.data.pathways || []).find((x) => x.receiving_organisation === me.user.organisation);
      setState({ pathway: p || null, error: null });
    });
  }, [me.user.organisation]);
  return state;
}

// sameDay reports whether two times fall on the same local day.
function sameDay(a, b) { return new Date(a).toDateString() === new Date(b).toDateString(); }

function Due({ item, now }) {
  if (!onTheClock.includes(item.status)) return html`<span class="muted">clock stopped</span>`;
  if (!item.triage_due_at) return '';
  const at = sameDay(item.triage_due_at, now) ? clock(item.triage_due_at) : time(item.triage_due_at);
  return html`<span class="countdown">${countdown(item.triage_due_at, now)}</span>
    <span class="muted due-at">due ${at}</span>`;
}

// Actions are Claim (for a submitted referral: moving it to in_triage
// assigns it to whoever moved it) and Assign. There is no list of the
// team's people for non-admins, so the choice is yourself or someone the
// board already shows holding a referral.
function Actions({ item, me, team, onError }) {
  const [busy, setBusy] = useState(false);
  const [to, setTo] = useState(me.user.id);
  const run = async (what) => {
    setBusy(true);
    onError(null);
    const r = await what();
    setBusy(false);
    if (!r.ok) onError({ ...r.error, message: item.short_ref + ': ' + r.error.message });
  };
  const claim = () => run(() => live.command({ type: 'transition', referral: item.id, to: 'in_triage' }));
  const assign = () => run(() => api.post('/api/referrals/' + item.id + '/assignee', { ref: newRef(), assignee_id: to }));
  const others = team.filter((p) => p.id !== me.user.id);
  const mine = item.assignee && item.assignee.id === me.user.id;
  const held = item.assignee && item.assignee.id === to;
  return html`<div class="board-actions">
    ${item.status === 'submitted' ? html`<button class="primary" disabled=${busy} onClick=${claim}>Claim</button>` : ''}
    ${others.length > 0
      ? html`<select aria-label=${'Assign ' + item.short_ref + ' to'} value=${to} onChange=${(e) => setTo(e.target.value)}>
          <option value=${me.user.id}>Me</option>
          ${others.map((p) => html`<option value=${p.id}>${p.name}</option>`)}
        </select>
        <button class="assign" disabled=${busy || held} onClick=${assign}>Assign</button>`
      : mine ? '' : html`<button class="assign" disabled=${busy} onClick=${assign}>Assign to me</button>`}
  </div>`;
}

function Row({ item, now, me, team, onError }) {
  const p = item.patient || {};
  return html`<tr class=${urgency(item, now)} data-id=${item.id} data-status=${item.status}>
    <td data-label="Priority"><span class=${'pill prio-' + item.priority}>${human(item.priority)}</span></td>
    <td data-label="Status" class="status">${human(item.status)}</td>
    <td data-label="Patient">
      <a href=${'/referrals/' + item.id} class="patient">${p.name}</a>
      <div class="muted nhs">NHS ${nhsNumber(p.nhs_number)}</div>
    </td>
    <td data-label="Reference"><a href=${'/referrals/' + item.id}><code>${item.short_ref}</code></a>
      <div class="muted">${item.referring_organisation}</div></td>
    <td data-label="Triage due" class="due"><${Due} item=${item} now=${now} /></td>
    <td data-label="Assignee" class="assignee">${item.assignee ? item.assignee.name : html`<span class="muted">nobody</span>`}</td>
    <td data-label="Last activity">${time(item.last_activity_at)}</td>
    <td data-label="Unread" class="unread">${item.unread > 0 ? html`<span class="badge" aria-label=${item.unread + ' unread'}>${item.unread}</span>` : ''}</td>
    <td data-label="Actions"><${Actions} item=${item} me=${me} team=${team} onError=${onError} /></td>
  </tr>`;
}

function Queue({ me, pathway }) {
  const board = useBoard(pathway.id);
  const now = useNow(15000);
  const [error, setError] = useState(null);
  const team = [];
  for (const it of board.items) {
    const a = it.assignee;
    if (a && a.organisation === me.user.organisation && !team.some((t) => t.id === a.id)) team.push(a);
  }
  team.sort((a, b) => a.name.localeCompare(b.name));
  if (!board.ready) return html`<p class="loading">Loading the board…</p>`;
  if (board.error) return html`<${ErrorSummary} error=${board.error} />`;
  const overdue = board.items.filter((it) => urgency(it, now) === 'overdue').length;
  return html`<section aria-labelledby="queue-title">
    <h2 id="queue-title" class="board-summary">
      ${board.items.length} open${overdue ? html` · <span class="overdue-count">${overdue} overdue</span>` : ''}
      <span class="muted"> · updated ${clock(board.generatedAt)}</span>
    </h2>
    <${ErrorSummary} error=${error} />
    ${board.items.length === 0
      ? html`<p class="card empty">No open referrals. New submissions appear here as they arrive.</p>`
      : html`<table class="board responsive">
        <thead><tr><th>Priority</th><th>Status</th><th>Patient</th><th>Reference</th><th>Triage due</th><th>Assignee</th><th>Last activity</th><th>Unread</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${board.items.map((it) => html`<${Row} key=${it.id} item=${it} now=${now} me=${me} team=${team} onError=${setError} />`)}</tbody>
      </table>`}
    ${board.truncated ? html`<p class="muted">Only the earliest deadlines are shown; more referrals are open. See <a href="/referrals">all referrals</a>.</p>` : ''}
  </section>`;
}

export function Board() {
  useTitle('Triage board');
  const { me } = useSession();
  const { pathway, error } = useReceivingPathway(me);
  const triages = hasRole(me, 'coordinator', 'specialist');
  const setsOpel = hasRole(me, 'bed_manager', 'admin');
  return html`<main id="main" class="board-page">
    <h1>Triage board${pathway ? html` <span class="muted pathway-name">${pathway.name}</span>` : ''}</h1>
    <${ErrorSummary} error=${error} />
    ${setsOpel ? html`<${OpelSetter} />` : ''}
    ${!triages ? (setsOpel ? '' : html`<p>The triage board is for the receiving team's coordinators and specialists.</p>`)
      : pathway === undefined ? html`<p class="loading">Loading…</p>`
      : pathway === null ? html`<p>Your organisation does not receive referrals on any pathway, so there is no board to show.</p>`
      : html`<${Queue} me=${me} pathway=${pathway} />`}
  </main>`;
}
