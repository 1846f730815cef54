// Administration, for admins of an organisation: accounts, wall displays,
// the system notice, the OPEL level and the audit trail.
import { html, useState, useEffect } from '../vendor/htm-preact.js';
import { api } from '../lib/api.js';
import { time, human } from '../lib/format.js';
import { useSession, hasRole } from '../lib/session.js';
import { Field, ErrorSummary, describedBy, useTitle } from '../lib/ui.js';
import { OpelSetter } from '../lib/opel-setter.js';

const statuses = ['pending', 'active', 'suspended'];

// Accounts of the admin's organisation, by status, with what can be done
// to each.
function Accounts() {
  const [status, setStatus] = useState('pending');
  const [users, setUsers] = useState(null);
  const [error, setError] = useState(null);
  const [done, setDone] = useState('');
  const load = async (s) => {
    setUsers(null);
    const r = await api.get('/api/admin/users?status=' + s);
    if (r.ok) setUsers(r.data.users || []); else setError(r.error);
  };
  useEffect(() => { load(status); }, [status]);
  const act = async (u, verb) => {
    if (verb === 'suspend' && !confirm('Suspend ' + u.name + '? They are logged out everywhere at once.')) return;
    setError(null);
    const r = await api.post('/api/admin/users/' + u.id + '/' + verb);
    if (!r.ok) { setError(r.error); return; }
    setDone(u.name + (verb === 'approve' ? ' approved' : verb === 'suspend' ? ' suspended' : ' reinstated'));
    load(status);
  };
  const actions = { pending: [['approve', 'Approve', 'primary']], active: [['suspend', 'Suspend', 'danger']], suspended: [['reinstate', 'Reinstate', '']] };
  return html`<section class="card" id="accounts" aria-labelledby="accounts-title">
    <h2 id="accounts-title">Accounts</h2>
    <div class="tabs" role="group" aria-label="Show accounts">
      ${statuses.map((s) => html`<button aria-pressed=${s === status} class=${s === status ? 'current' : ''} onClick=${() => { setDone(''); setStatus(s); }}>${human(s)}</button>`)}
    </div>
    ${done ? html`<p class="done" role="status">${done}.</p>` : ''}
    <${ErrorSummary} error=${error} />
    ${users === null ? html`<p class="loading">Loading…</p>`
      : users.length === 0 ? html`<p class="muted">No ${status} accounts.</p>`
      : html`<table class="responsive accounts">
        <thead><tr><th>Name</th><th>Email</th><th>Registration</th><th>Roles</th><th>Registered</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
        <tbody>${users.map((u) => html`<tr key=${u.id} data-id=${u.id}>
          <td>${u.name}</td><td>${u.email}</td><td>${u.professional_body} ${u.registration_number}</td>
          <td>${(u.roles || []).map(human).join(', ')}</td><td>${time(u.created_at)}</td>
          <td>${actions[status].map(([verb, label, cls]) => html`<button class=${cls} data-action=${verb} onClick=${() => act(u, verb)}>${label}</button>`)}</td>
        </tr>`)}</tbody>
      </table>`}
  </section>`;
}

// Displays: read-only wall screens. A new display's link carries its token
// and is shown once.
function Displays() {
  const [displays, setDisplays] = useState(null);
  const [name, setName] = useState('');
  const [created, setCreated] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    const r = await api.get('/api/admin/displays');
    if (r.ok) setDisplays(r.data.displays || []); else setError(r.error);
  };
  useEffect(() => { load(); }, []);
  const create = async (e) => {
    e.preventDefault();
    setError(null);
    const r = await api.post('/api/admin/displays', { name: name.trim() });
    if (!r.ok) { setError(r.error.field === 'name' ? { ...r.error, field: 'display-name' } : r.error); return; }
    setCreated({ name: r.data.display.name, url: location.origin + r.data.url });
    setName('');
    load();
  };
  const revoke = async (d) => {
    if (!confirm('Switch off the display "' + d.name + '"? Its screen stops showing the wallboard at once.')) return;
    setError(null);
    const r = await api.del('/api/admin/displays/' + d.id);
    if (!r.ok) { setError(r.error); return; }
    load();
  };
  const copy = () => navigator.clipboard && navigator.clipboard.writeText(created.url);
  return html`<section class="card" id="displays" aria-labelledby="displays-title">
    <h2 id="displays-title">Wallboard displays</h2>
    <p>A display shows your organisation's wallboard on a screen without anyone logged in. Open its link once on the screen's browser.</p>
    <${ErrorSummary} error=${error} fields=${['display-name']} />
    ${created ? html`<div class="one-time" role="status">
      <p><strong>Link for "${created.name}"</strong> — copy it now: it is shown only once.</p>
      <p><input class="display-url" readonly value=${created.url} aria-label="Display link" onFocus=${(e) => e.target.select()} />
        <button onClick=${copy}>Copy</button></p>
    </div>` : ''}
    <form class="inline-form" onSubmit=${create} novalidate>
      <${Field} id="display-name" label="New display's name" error=${error} hint="Where the screen is, e.g. Bed management office">
        <input id="display-name" maxlength="100" value=${name} aria-describedby=${describedBy('display-name', error, true)} onInput=${(e) => setName(e.target.value)} />
      </${Field}>
      <button type="submit" class="primary">Create display</button>
    </form>
    ${displays === null ? '' : displays.length === 0 ? html`<p class="muted">No displays yet.</p>` : html`<table class="responsive displays">
      <thead><tr><th>Name</th><th>Created</th><th>State</th><th><span class="visually-hidden">Actions</span></th></tr></thead>
      <tbody>${displays.map((d) => html`<tr key=${d.id} data-id=${d.id}>
        <td>${d.name}</td><td>${time(d.created_at)}</td>
        <td>${d.revoked_at ? 'switched off ' + time(d.revoked_at) : 'on'}</td>
        <td>${d.revoked_at ? '' : html`<button class="danger" onClick=${() => revoke(d)}>Switch off</button>`}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

// SystemNotice posts the banner every user and display sees, or clears it.
function SystemNotice() {
  const [current, setCurrent] = useState(undefined);
  const [level, setLevel] = useState('info');
  const [message, setMessage] = useState('');
  const [error, setError] = useState(null);
  const load = async () => {
    const r = await api.get('/api/system-status');
    if (r.ok) setCurrent(r.data.notice); else setError(r.error);
  };
  useEffect(() => { load(); }, []);
  const post = async (e) => {
    e.preventDefault();
    setError(null);
    const r = await api.post('/api/admin/system-status', { level, message: message.trim() });
    if (!r.ok) { setError(r.error.field === 'message' ? { ...r.error, field: 'notice-message' } : r.error); return; }
    setCurrent(r.data.notice);
    setMessage('');
  };
  const clear = async () => {
    if (!confirm('Clear the notice for everyone?')) return;
    setError(null);
    const r = await api.del('/api/admin/system-status');
    if (!r.ok && r.status !== 404) { setError(r.error); return; }
    setCurrent(null);
  };
  return html`<section class="card" id="notice" aria-labelledby="notice-title">
    <h2 id="notice-title">System notice</h2>
    <p>A banner every user and wall display sees at once, until it is cleared.</p>
    <${ErrorSummary} error=${error} fields=${['notice-message']} />
    ${current === undefined ? '' : current
      ? html`<div class=${'notice notice-' + current.level + ' current-notice'}>
          <strong>In force (${current.level}):</strong> ${current.message}
          <span class="muted"> — ${current.posted_by ? current.posted_by.name + ', ' : ''}${time(current.posted_at)}</span>
          <button class="link" onClick=${clear}>Clear</button>
        </div>`
      : html`<p class="muted">No notice is in force.</p>`}
    <form onSubmit=${post} novalidate>
      <${Field} id="notice-level" label="Level">
        <select id="notice-level" value=${level} onChange=${(e) => setLevel(e.target.value)}>
          <option value="info">Information</option>
          <option value="degraded">Service degraded</option>
          <option value="outage">Outage</option>
        </select>
      </${Field}>
      <${Field} id="notice-message" label="Message" error=${error} hint="Up to 500 characters; it replaces any notice in force">
        <textarea id="notice-message" maxlength="500" value=${message} aria-describedby=${describedBy('notice-message', error, true)} onInput=${(e) => setMessage(e.target.value)}></textarea>
      </${Field}>
      <button type="submit" class="primary">Post notice</button>
    </form>
  </section>`;
}

const noFilters = { user: '', referral: '', action: '', outcome: '', from: '', to: '' };

// auditQuery is the query string of the filters (datetime-local values
// are the browser's local time; the API takes RFC 3339).
function auditQuery(f, cursor) {
  const q = new URLSearchParams();
  for (const k of ['user', 'referral', 'action', 'outcome']) if (f[k].trim()) q.set(k, f[k].trim());
  for (const k of ['from', 'to']) if (f[k]) q.set(k, new Date(f[k]).toISOString());
  if (cursor) q.set('cursor', cursor);
  return q.toString();
}

// download saves the trail as CSV. A link cannot ask for text/csv, so the
// export is fetched with that Accept header and saved from a Blob.
async function downloadCSV(filters) {
  const res = await fetch('/api/admin/audit?' + auditQuery(filters), { headers: { Accept: 'text/csv' }, credentials: 'same-origin' });
  if (!res.ok) return { ok: false, error: { message: 'The export failed (' + res.status + ').' } };
  const url = URL.createObjectURL(await res.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = 'audit-' + new Date().toISOString().slice(0, 19).replace(/:/g, '') + '.csv';
  a.click(); // not in the document: the router's click handler must not see it
  setTimeout(() => URL.revokeObjectURL(url), 10000);
  return { ok: true };
}

function AuditTrail() {
  const [filters, setFilters] = useState(noFilters);
  const [applied, setApplied] = useState(noFilters);
  const [entries, setEntries] = useState(null);
  const [next, setNext] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const fetchPage = async (f, cursor) => {
    setBusy(true);
    setError(null);
    const r = await api.get('/api/admin/audit?' + auditQuery(f, cursor));
    setBusy(false);
    if (!r.ok) { setError(r.error.field ? { ...r.error, field: 'audit-' + r.error.field } : r.error); return; }
    setEntries((prev) => (cursor && prev ? prev.concat(r.data.entries || []) : r.data.entries || []));
    setNext(r.data.next || '');
  };
  useEffect(() => { fetchPage(noFilters, ''); }, []);
  const search = (e) => { e.preventDefault(); setApplied(filters); fetchPage(filters, ''); };
  const set = (k) => (e) => setFilters({ ...filters, [k]: e.target.value });
  const exportCSV = async () => {
    setBusy(true);
    const r = await downloadCSV(applied);
    setBusy(false);
    if (!r.ok) setError(r.error);
  };
  const field = (k, label, input) => html`<${Field} id=${'audit-' + k} label=${label} error=${error}>${input}</${Field}>`;
  return html`<section class="card" id="audit" aria-labelledby="audit-title">
    <h2 id="audit-title">Audit trail</h2>
    <p>Everything done by your organisation's people and displays, and on the referrals it sends or receives, newest first. Each look at the trail is itself recorded.</p>
    <${ErrorSummary} error=${error} fields=${Object.keys(noFilters).map((k) => 'audit-' + k)} />
    <form class="audit-filters" onSubmit=${search} novalidate>
      ${field('user', 'User id', html`<input id="audit-user" value=${filters.user} onInput=${set('user')} />`)}
      ${field('referral', 'Referral id', html`<input id="audit-referral" value=${filters.referral} onInput=${set('referral')} />`)}
      ${field('action', 'Action', html`<select id="audit-action" value=${filters.action} onChange=${set('action')}>
        <option value="">Any</option>${['create', 'read', 'update', 'delete', 'execute'].map((a) => html`<option value=${a}>${a}</option>`)}</select>`)}
      ${field('outcome', 'Outcome', html`<select id="audit-outcome" value=${filters.outcome} onChange=${set('outcome')}>
        <option value="">Any</option>${['success', 'denied', 'invalid', 'failed'].map((o) => html`<option value=${o}>${o}</option>`)}</select>`)}
      ${field('from', 'From', html`<input id="audit-from" type="datetime-local" value=${filters.from} onInput=${set('from')} />`)}
      ${field('to', 'To', html`<input id="audit-to" type="datetime-local" value=${filters.to} onInput=${set('to')} />`)}
      <div class="audit-buttons">
        <button type="submit" class="primary" disabled=${busy}>Search</button>
        <button type="button" onClick=${() => { setFilters(noFilters); setApplied(noFilters); fetchPage(noFilters, ''); }}>Clear filters</button>
        <button type="button" class="download" disabled=${busy} onClick=${exportCSV}>Download CSV</button>
      </div>
    </form>
    ${entries === null ? html`<p class="loading">Loading…</p>` : entries.length === 0 ? html`<p class="muted">No entries match.</p>` : html`
      <div class="table-scroll"><table class="audit-table">
        <thead><tr><th>#</th><th>Time</th><th>Actor</th><th>Action</th><th>Event</th><th>Referral</th><th>Patient</th><th>Outcome</th><th>Detail</th><th>Address</th></tr></thead>
        <tbody>${entries.map((a) => html`<tr key=${a.id} class=${'outcome-' + a.outcome}>
          <td>${a.id}</td><td>${time(a.at)}</td>
          <td><code title=${a.actor_id}>${a.actor_registration || a.actor_id}</code> <span class="muted">${human(a.actor_role)}</span></td>
          <td>${a.action}</td><td>${a.event}</td>
          <td>${a.referral_id ? html`<a href=${'/referrals/' + a.referral_id}><code>${a.referral_id.slice(0, 8)}</code></a>` : ''}</td>
          <td>${a.patient_nhs_number}</td><td>${a.outcome}</td><td>${a.detail}</td><td>${a.client_addr}</td>
        </tr>`)}</tbody>
      </table></div>
      ${next ? html`<p><button disabled=${busy} onClick=${() => fetchPage(applied, next)}>Load more</button></p>` : html`<p class="muted">End of the trail.</p>`}`}
  </section>`;
}

const sections = [['accounts', 'Accounts'], ['displays', 'Displays'], ['notice', 'System notice'], ['opel-title', 'OPEL level'], ['audit', 'Audit trail']];

// jump scrolls to a section itself: the router would treat the link as a
// page and drop the #fragment.
const jump = (id) => (e) => {
  e.preventDefault();
  const el = document.getElementById(id);
  if (el) el.scrollIntoView();
};

export function Admin() {
  useTitle('Admin');
  const { me } = useSession();
  if (!hasRole(me, 'admin')) return html`<main id="main"><h1>Admin</h1><p>This page is for admins.</p></main>`;
  return html`<main id="main" class="admin">
    <h1>Admin <span class="muted org">${me.user.organisation}</span></h1>
    <nav class="admin-nav" aria-label="Admin sections">
      ${sections.map(([id, label]) => html`<a href=${'#' + id} onClick=${jump(id)}>${label}</a>`)}
    </nav>
    <${Accounts} />
    <${Displays} />
    <${SystemNotice} />
    <${OpelSetter} />
    <${AuditTrail} />
  </main>`;
}
