// Notifications: the bell in the header (the unread count, live) and the
// page listing them. Both listen to the shared `user` topic
// (lib/notify-store.js), since one topic has one subscription.
import { html, useState, useEffect } from '../vendor/htm-preact.js';
import { api } from '../lib/api.js';
import { time } from '../lib/format.js';
import { useTitle, ErrorSummary } from '../lib/ui.js';
import { listenNotifications, markedRead } from '../lib/notify-store.js';

function useNotifications() {
  const [state, setState] = useState({ ready: false, unread: 0, latest: [] });
  useEffect(() => listenNotifications(setState), []);
  return state;
}

export function Bell() {
  const { unread } = useNotifications();
  const label = 'Notifications, ' + unread + ' unread';
  return html`<a href="/notifications" class="bell" aria-label=${label} title=${label}>
    <svg class="bell-icon" aria-hidden="true" viewBox="0 0 24 24" width="22" height="22"><path fill="currentColor" d="M12 22a2.5 2.5 0 0 0 2.45-2h-4.9A2.5 2.5 0 0 0 12 22Zm7-6V11a7 7 0 0 0-5.5-6.84V3.5a1.5 1.5 0 0 0-3 0v.66A7 7 0 0 0 5 11v5l-2 2v1h18v-1Z"/></svg>${unread > 0 ? html`<span class="badge" aria-hidden="true">${unread > 99 ? '99+' : unread}</span>` : ''}
  </a>`;
}

// merge puts the live ones in with those read from the API, newest first.
function merge(listed, live) {
  const byId = new Map(listed.map((n) => [n.id, n]));
  for (const n of live) if (!byId.has(n.id)) byId.set(n.id, n);
  return [...byId.values()].sort((a, b) => (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

export function Notifications() {
  useTitle('Notifications');
  const store = useNotifications();
  const [listed, setListed] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api.get('/api/notifications?limit=100').then((r) => {
      if (r.ok) setListed(r.data.notifications || []);
      else setError(r.error);
    });
  }, []);
  if (error && !listed) return html`<main id="main"><h1>Notifications</h1><${ErrorSummary} error=${error} /></main>`;
  if (!listed) return html`<main id="main"><h1>Notifications</h1><p class="loading">Loading…</p></main>`;
  const all = merge(listed, store.latest);
  const unreadShown = all.filter((n) => !n.read).map((n) => n.id);

  // markRead marks exactly those named (ids, not up_to: one committed a
  // moment after the newest shown must stay unread).
  const markRead = async (ids) => {
    setBusy(true);
    setError(null);
    const r = await api.post('/api/notifications/read', { ids });
    setBusy(false);
    if (!r.ok) { setError(r.error); return; }
    const set = new Set(ids);
    setListed(all.map((n) => (set.has(n.id) ? { ...n, read: true } : n)));
    markedRead(ids, r.data.unread);
  };

  return html`<main id="main" class="notifications">
    <div class="page-head">
      <h1>Notifications</h1>
      ${unreadShown.length > 0 ? html`<button disabled=${busy} onClick=${() => markRead(unreadShown.slice(0, 500))}>Mark all shown as read</button>` : ''}
    </div>
    <p class="muted" role="status">${store.unread > 0 ? store.unread + ' unread' : 'Nothing unread'}</p>
    <${ErrorSummary} error=${error} />
    ${all.length === 0 ? html`<p class="card empty">No notifications yet. You will be told here of new referrals, replies and deadlines.</p>`
      : html`<ul class="notification-list">
        ${all.map((n) => html`<li key=${n.id} class=${n.read ? 'read' : 'unread'} data-id=${n.id}>
          <div class="n-main">
            ${n.read ? '' : html`<span class="visually-hidden">Unread: </span>`}
            ${n.referral ? html`<a href=${'/referrals/' + n.referral}>${n.title}</a>` : html`<span>${n.title}</span>`}
            <time class="muted" datetime=${n.at}>${time(n.at)}</time>
          </div>
          ${n.read ? '' : html`<button class="link" disabled=${busy} onClick=${() => markRead([n.id])}>Mark read</button>`}
        </li>`)}
      </ul>`}
  </main>`;
}
