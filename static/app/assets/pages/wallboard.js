// The bed-management wallboard (SPEC §9): a wall screen read across a room.
// It runs without the shell and often without a user: a display has only
// its display cookie (GET /display?token=…). It takes no input at all, and
// looks after itself: the live connection reconnects after a restart, and a
// display an admin revokes says so.
import { html, useState, useEffect } from '../vendor/htm-preact.js';
import { api } from '../lib/api.js';
import { live } from '../lib/live.js';
import { countdown, human, clock, time } from '../lib/format.js';
import { useTitle } from '../lib/ui.js';
import { syncServerClock, useNow } from '../lib/server-clock.js';
import { opelMeaning } from '../lib/opel-setter.js';

// While the connection is down the screen asks, this often, whether its
// display still works: a display revoked while the server was away is
// refused the socket's upgrade (401), not closed with 4001.
const probeEvery = 30000;

const offMessages = {
  revoked: ['This display has been switched off by an administrator.', 'Ask an admin of your organisation for a new display link.'],
  session: ['Your session has ended.', html`<a href="/login" data-reload>Log in again</a> to see the wallboard.`],
  unset: ['This screen is not set up as a wallboard display.', html`An admin can create a display link under Admin → Displays, or <a href="/login" data-reload>log in</a>.`],
  forbidden: ['This wallboard is not available to you.', 'The wallboard is for bed managers, the receiving team and admins of the organisation.'],
};

function Tile({ label, value, cls = '', children }) {
  return html`<section class=${'wb-tile ' + cls} aria-label=${label}>
    <h2>${label}</h2>
    <p class="wb-value">${value}</p>
    ${children ? html`<div class="wb-detail">${children}</div>` : ''}
  </section>`;
}

// minutes shows a median: the number large, its unit small.
function minutes(m) {
  if (m == null) return '—';
  return m >= 90 ? html`${(m / 60).toFixed(1)}<small> h</small>` : html`${Math.round(m)}<small> min</small>`;
}

function Tiles({ wb }) {
  const at = wb.awaiting_triage;
  const beds = Object.entries(wb.awaiting_bed || {});
  const opel = wb.opel;
  const median = wb.median_minutes_to_triage || {};
  return html`<div class="wb-tiles">
    <${Tile} label="OPEL" cls=${'wb-opel opel-' + (opel ? opel.level : 'none')} value=${opel ? opel.level : '—'}>
      ${opel ? html`<span>${opelMeaning[opel.level]}</span><span>set ${clock(opel.set_at)}${opel.note ? ' · ' + opel.note : ''}</span>` : 'not set'}
    </${Tile}>
    <${Tile} label="Awaiting triage" cls="wb-triage" value=${at.emergency + at.urgent + at.routine}>
      <span class="prio-emergency">emergency ${at.emergency}</span>
      <span class="prio-urgent">urgent ${at.urgent}</span>
      <span>routine ${at.routine}</span>
    </${Tile}>
    <${Tile} label="Overdue" cls=${'wb-overdue' + (at.overdue ? ' wb-alert' : '')} value=${at.overdue} />
    <${Tile} label="In triage" cls="wb-in-triage" value=${wb.in_triage} />
    <${Tile} label="More info needed" cls="wb-more-info" value=${wb.more_info_needed} />
    <${Tile} label="Awaiting bed" cls="wb-beds" value=${beds.reduce((n, [, v]) => n + v, 0)}>
      ${beds.map(([bed, n]) => html`<span data-bed=${bed}>${human(bed)} <strong>${n}</strong></span>`)}
    </${Tile}>
    <${Tile} label="Transfers booked" cls="wb-booked" value=${wb.transfers_booked} />
    <${Tile} label="Transferred today" cls="wb-transferred" value=${wb.transferred_today} />
    <${Tile} label="Managed remotely today" cls="wb-remote" value=${wb.managed_remotely_today}>
      <span>7 days <strong>${wb.managed_remotely_7d}</strong></span>
    </${Tile}>
    <${Tile} label="Breaches today" cls=${'wb-breaches' + (wb.breaches_today ? ' wb-alert' : '')} value=${wb.breaches_today} />
    <${Tile} label="Median to triage" cls="wb-median" value=${minutes(median.today)}>
      <span>today · 7 days <strong>${median['7d'] == null ? '—' : Math.round(median['7d']) + ' min'}</strong></span>
    </${Tile}>
  </div>`;
}

// Items carry initials, age and a short reference only: never a name, NHS
// number or date of birth.
function Items({ items, now }) {
  if (!items.length) return html`<p class="wb-empty">No open referrals.</p>`;
  return html`<table class="wb-items">
    <thead><tr><th>Ref</th><th>Patient</th><th>Priority</th><th>Status</th><th>Triage due</th><th>Bed</th></tr></thead>
    <tbody>${items.map((it) => {
      const overdue = it.overdue || (it.due_at && ['submitted', 'in_triage'].includes(it.status) && now >= Date.parse(it.due_at));
      return html`<tr key=${it.short_ref} class=${overdue ? 'overdue' : ''}>
        <td><code>${it.short_ref}</code></td>
        <td>${it.initials}${it.age ? ', ' + it.age : ''}</td>
        <td><span class=${'pill prio-' + it.priority}>${human(it.priority)}</span></td>
        <td>${human(it.status)}</td>
        <td>${it.due_at && ['submitted', 'in_triage'].includes(it.status) ? countdown(it.due_at, now) : ''}</td>
        <td>${human(it.bed_type)}</td>
      </tr>`;
    })}</tbody>
  </table>`;
}

function Notice({ notice }) {
  if (!notice) return '';
  const label = notice.level === 'outage' ? 'Outage' : notice.level === 'degraded' ? 'Service degraded' : 'Notice';
  return html`<div class=${'wb-notice wb-notice-' + notice.level} role=${notice.level === 'info' ? 'status' : 'alert'}>
    <strong>${label}:</strong> ${notice.message}
  </div>`;
}

export function WallboardPage() {
  useTitle('Wallboard');
  const [wb, setWb] = useState(null);
  const [notice, setNotice] = useState(null);
  const [conn, setConn] = useState(live.state());
  const [off, setOff] = useState(''); // a key of offMessages once the screen cannot show the board
  const [viewer, setViewer] = useState('display');
  const now = useNow(15000);

  useEffect(() => {
    // A display is refused /api/me (403); a signed-in member of staff is
    // not; a screen that is neither is told how to set it up.
    api.get('/api/me').then((r) => {
      if (r.ok) setViewer('user');
      else if (r.status === 401) setOff('unset');
    });
    const offState = live.onState(setConn);
    const show = (d) => { syncServerClock(d.generated_at); setWb(d); };
    const offBoard = live.subscribe('wallboard', {
      onSnapshot: show,
      onUpdate: show,
      onError: (f) => setOff(f.code === 'unauthenticated' ? 'revoked' : 'forbidden'),
    });
    const offSystem = live.subscribe('system', {
      onSnapshot: (d) => setNotice(d.notice),
      onUpdate: (d) => setNotice(d.notice),
    });
    live.start();
    return () => { offState(); offBoard(); offSystem(); };
  }, []);

  useEffect(() => {
    if (conn === 'ended') setOff(viewer === 'user' ? 'session' : 'revoked');
    if (conn !== 'reconnecting') return undefined;
    const t = setInterval(async () => {
      const r = await api.get('/api/system-status');
      if (r.status === 401) setOff(viewer === 'user' ? 'session' : 'revoked');
    }, probeEvery);
    return () => clearInterval(t);
  }, [conn, viewer]);

  if (off) {
    const [title, hint] = offMessages[off];
    return html`<main id="main" class="wallboard wb-off" role="alert"><h1>${title}</h1><p>${hint}</p></main>`;
  }
  return html`<main id="main" class="wallboard">
    <header class="wb-head">
      <h1>${wb ? wb.organisation.name : 'Wallboard'} <span class="wb-sub">MSCC referrals</span></h1>
      <div class="wb-status">
        ${conn === 'live' ? '' : html`<span class="wb-conn" role="status">${conn === 'connecting' ? 'connecting…' : 'reconnecting…'}</span>`}
        ${wb ? html`<span class="wb-time">updated <time datetime=${wb.generated_at}>${time(wb.generated_at)}</time></span>` : ''}
      </div>
    </header>
    <${Notice} notice=${notice} />
    ${wb ? html`<${Tiles} wb=${wb} /><${Items} items=${wb.items || []} now=${now} />` : html`<p class="wb-loading">Loading the wallboard…</p>`}
  </main>`;
}
