// Patient Pass in the browser: the layout every page shares (navigation by
// role, the notification bell, the system notice banner, the connection's
// state) and the routes. Pages are modules of their own in pages/.
import { html, render, useState, useEffect, useCallback } from './vendor/htm-preact.js';
import { api, whenLoggedOut } from './lib/api.js';
import { live } from './lib/live.js';
import { useRoute, navigate, match } from './lib/router.js';
import { Session, hasRole } from './lib/session.js';
import { Login, Register, Pending } from './pages/login.js';
import { Referrals } from './pages/referrals.js';
import { NewReferral } from './pages/new-referral.js';
import { Room } from './pages/room.js';
import { Board } from './pages/board.js';
import { WallboardPage } from './pages/wallboard.js';
import { Admin } from './pages/admin.js';
import { Account } from './pages/account.js';
import { Notifications, Bell } from './pages/notifications.js';
import { forgetNotifications } from './lib/notify-store.js';

// forgetUser drops everything the tab holds of the user who is leaving:
// the live connection, notifications and any draft (patient data must
// not outlive the session on a shared ward computer).
function forgetUser() {
  live.stop();
  forgetNotifications();
  for (const k of Object.keys(sessionStorage)) if (k.startsWith('pp.')) sessionStorage.removeItem(k);
}

// Pages anyone may open without a session.
const open = ['/login', '/register', '/pending'];

const routes = [
  ['/', Referrals],
  ['/referrals', Referrals],
  ['/referrals/new', NewReferral],
  ['/referrals/:id', Room],
  ['/board', Board],
  ['/admin', Admin],
  ['/account', Account],
  ['/notifications', Notifications],
];

function ConnectionState() {
  const [s, setS] = useState(live.state());
  useEffect(() => live.onState(setS), []);
  if (s === 'live') return html`<span class="conn conn-live" role="status">● live</span>`;
  if (s === 'ended') return html`<span class="conn conn-bad" role="status">session ended</span>`;
  return html`<span class="conn conn-wait" role="status">${s === 'connecting' ? 'connecting…' : 'reconnecting…'}</span>`;
}

// NoticeBanner shows the system notice in force, on every page, live.
export function NoticeBanner() {
  const [notice, setNotice] = useState(null);
  useEffect(() => live.subscribe('system', {
    onSnapshot: (d) => setNotice(d.notice),
    onUpdate: (d) => setNotice(d.notice),
  }), []);
  if (!notice) return '';
  return html`<div class=${'notice notice-' + notice.level} role=${notice.level === 'info' ? 'status' : 'alert'}>
    <strong>${notice.level === 'outage' ? 'Outage' : notice.level === 'degraded' ? 'Service degraded' : 'Notice'}:</strong> ${notice.message}
  </div>`;
}

function Nav({ me, path }) {
  const link = (href, label) => html`<a href=${href} aria-current=${path === href ? 'page' : undefined}>${label}</a>`;
  const logout = async () => {
    await api.del('/api/session');
    forgetUser();
    location.assign('/login');
  };
  return html`<header class="top">
    <a class="brand" href="/">Patient Pass</a>
    <nav aria-label="Main">
      ${link('/referrals', 'Referrals')}
      ${hasRole(me, 'clinician', 'specialist') ? link('/referrals/new', 'New referral') : ''}
      ${hasRole(me, 'coordinator', 'specialist') ? link('/board', 'Triage board') : hasRole(me, 'bed_manager') ? link('/board', 'OPEL level') : ''}
      ${hasRole(me, 'bed_manager', 'coordinator', 'specialist', 'admin') ? html`<a href="/wallboard">Wallboard</a>` : ''}
      ${hasRole(me, 'admin') ? link('/admin', 'Admin') : ''}
    </nav>
    <div class="top-right">
      <${ConnectionState} />
      <${Bell} />
      <a href="/account" class="who">${me.user.name}</a>
      <button class="link" onClick=${logout}>Log out</button>
    </div>
  </header>`;
}

function NotFound() {
  return html`<main id="main"><h1>Page not found</h1><p><a href="/">Back to your referrals</a></p></main>`;
}

function App() {
  const path = useRoute();
  const [me, setMe] = useState(undefined);
  const reload = useCallback(async () => {
    const r = await api.get('/api/me');
    setMe(r.ok ? r.data : null);
    return r;
  }, []);
  // A wall display has no user: its page asks nothing of /api/me.
  useEffect(() => { if (path !== '/wallboard') reload(); }, []);
  useEffect(() => whenLoggedOut(() => { forgetUser(); setMe(null); }), []);
  // A session that ends while the page is open (timeout, logout
  // elsewhere, suspension) takes the page's patient data with it.
  useEffect(() => live.onState((s) => {
    if (s === 'ended' && location.pathname !== '/wallboard') {
      forgetUser();
      setMe(null);
      navigate('/login', true);
    }
  }), []);
  useEffect(() => { if (me) live.start(); }, [me]);

  if (path === '/wallboard') return html`<${WallboardPage} />`;
  if (me === undefined) return html`<p class="loading">Loading Patient Pass…</p>`;
  if (!me && !open.includes(path)) {
    if (path !== '/login') navigate('/login', true);
    return '';
  }
  const session = { me, reload };
  let page = null;
  if (open.includes(path)) {
    page = path === '/register' ? Register : path === '/pending' ? Pending : Login;
    return html`<${Session.Provider} value=${session}><${page} /></${Session.Provider}>`;
  }
  let params = {};
  for (const [pattern, comp] of routes) {
    const m = match(pattern, path);
    if (m && !(pattern === '/referrals/:id' && m.id === 'new')) { page = comp; params = m; break; }
  }
  if (me.totp_required && !me.totp_enrolled && path !== '/account') {
    navigate('/account', true);
    return '';
  }
  return html`<${Session.Provider} value=${session}>
    <a class="skip" href="#main">Skip to content</a>
    <${Nav} me=${me} path=${path} />
    <${NoticeBanner} />
    ${page ? html`<${page} ...${params} />` : html`<${NotFound} />`}
  </${Session.Provider}>`;
}

const root = document.getElementById('app');
root.textContent = ''; // the shell's "Loading…" placeholder
render(html`<${App} />`, root);
