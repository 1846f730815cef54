// The `user` topic, shared. live.subscribe keeps one set of handlers per
// topic (a second subscriber replaces the first), so the bell and the
// notifications page listen here instead: one subscription while anyone
// listens, its state handed to every listener.
import { live } from './live.js';

const listeners = new Set();
let state = { ready: false, unread: 0, latest: [] };
let unsubscribe = null;

function publish(next) {
  state = next;
  for (const fn of listeners) fn(state);
}

// newestFirst orders notifications by id, which is the order they happened.
function newestFirst(a, b) { return a.id < b.id ? 1 : a.id > b.id ? -1 : 0; }

function onSnapshot(d) {
  publish({ ready: true, unread: d.unread || 0, latest: (d.latest || []).slice().sort(newestFirst) });
}

function onUpdate(d) {
  if (d.notification) {
    const n = d.notification;
    if (state.latest.some((x) => x.id === n.id)) return;
    publish({ ...state, unread: state.unread + (n.read ? 0 : 1), latest: [n, ...state.latest].sort(newestFirst).slice(0, 50) });
  } else if (typeof d.unread === 'number') {
    publish({ ...state, unread: d.unread });
  }
}

// listenNotifications calls fn with the state now and on every change;
// it returns the function that stops listening.
export function listenNotifications(fn) {
  listeners.add(fn);
  if (!unsubscribe) unsubscribe = live.subscribe('user', { onSnapshot, onUpdate });
  fn(state);
  return () => {
    listeners.delete(fn);
    if (listeners.size === 0 && unsubscribe) {
      unsubscribe();
      unsubscribe = null;
    }
  };
}

// markedRead records the unread count the server answered after marking
// some read, and flags those ids read, without waiting for the topic.
export function markedRead(ids, unread) {
  const set = new Set(ids);
  publish({ ...state, unread, latest: state.latest.map((n) => (set.has(n.id) ? { ...n, read: true } : n)) });
}

// forgetNotifications drops what the store holds (a user logged out: the
// next one must not see the last one's count or titles).
export function forgetNotifications() {
  if (unsubscribe) unsubscribe();
  unsubscribe = null;
  publish({ ready: false, unread: 0, latest: [] });
}
