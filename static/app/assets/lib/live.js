// The live connection: one WebSocket per tab, reconnecting by itself with
// jittered backoff, resubscribing every topic (rooms from the last seq seen,
// so nothing is missed), and re-sending the commands not yet acknowledged
// under their original ref (the server applies a ref once). A command's
// promise resolves on its ack — never before the server has committed it.

import { newRef } from './api.js';

const listeners = new Set();
const subs = new Map(); // topic -> {after, handlers: Set}
const pending = new Map(); // ref -> {frame, resolve}
let ws = null;
let state = 'connecting';
let attempt = 0;
let timer = null;
let stopped = false;
let openedAt = 0;

// maxFrame is the server's bound on a frame (64 KiB): a larger one closes
// the connection, so it is refused here, before it is sent.
const maxFrame = 64 * 1024;
const encoder = new TextEncoder();

// failPending answers every command not yet acknowledged with err.
function failPending(err) {
  for (const p of pending.values()) p.resolve({ ok: false, error: err });
  pending.clear();
}

function setState(s) {
  if (state === s) return;
  state = s;
  for (const fn of listeners) fn(s);
}

function send(frame) {
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify(frame));
    return true;
  }
  return false;
}

function subscribeFrame(topic, sub) {
  const f = { type: 'subscribe', topic };
  if (topic.startsWith('referral:')) f.after = sub.after;
  return f;
}

function connect() {
  if (stopped) return;
  clearTimeout(timer);
  const proto = location.protocol === 'https:' ? 'wss://' : 'ws://';
  const sock = new WebSocket(proto + location.host + '/ws');
  ws = sock;
  sock.onopen = () => {
    openedAt = Date.now();
    setState('live');
    for (const [topic, sub] of subs) send(subscribeFrame(topic, sub));
    for (const p of pending.values()) send(p.frame);
  };
  sock.onmessage = (m) => {
    let f;
    try { f = JSON.parse(m.data); } catch (e) { return; }
    dispatch(f);
  };
  sock.onclose = (ev) => {
    if (ws !== sock) return;
    ws = null;
    if (ev.code === 4001) {
      stopped = true;
      failPending({ code: 'unauthenticated', message: 'Your session has ended; log in again.' });
      setState('ended');
      return;
    }
    if (ev.code === 1008 || ev.code === 1009) {
      // Refused for what was sent (too many refused frames, or too large):
      // sending it again would be refused again.
      failPending({ code: 'invalid', message: 'The server refused this; it was not sent. Shorten it or try again.' });
    }
    // Only a connection that stayed up a while resets the backoff: one
    // closed at once (a loop) waits longer each time.
    attempt = Date.now() - openedAt > 10000 ? 1 : attempt + 1;
    setState('reconnecting');
    const wait = Math.min(10000, 250 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
    timer = setTimeout(connect, wait);
  };
}

function dispatch(f) {
  if (f.type === 'ack' || (f.type === 'error' && f.ref)) {
    const p = pending.get(f.ref);
    if (!p) return;
    if (f.type === 'error' && f.code === 'rate_limited') {
      // Not executed, so safe to send again, after a growing pause.
      p.tries = (p.tries || 0) + 1;
      setTimeout(() => send(p.frame), Math.min(30000, 1000 * 2 ** Math.min(p.tries, 5)) * (0.5 + Math.random() / 2));
      return;
    }
    pending.delete(f.ref);
    p.resolve(f.type === 'ack' ? { ok: true, seq: f.seq, referral: f.referral } : { ok: false, error: f });
    return;
  }
  const sub = f.topic && subs.get(f.topic);
  if (!sub) return;
  if (f.type === 'event') {
    if (f.seq <= sub.after) return; // seen already
    sub.after = f.seq;
  }
  for (const h of sub.handlers) {
    switch (f.type) {
      case 'event': h.onEvent && h.onEvent(f.event, f.seq); break;
      case 'subscribed': h.onSubscribed && h.onSubscribed(f.head); break;
      case 'snapshot': h.onSnapshot && h.onSnapshot(f.data); break;
      case 'update': h.onUpdate && h.onUpdate(f.data); break;
      case 'presence': h.onPresence && h.onPresence(f.users || []); break;
      case 'typing': h.onTyping && h.onTyping(f.user); break;
      case 'error': h.onError && h.onError(f); break;
    }
  }
}

export const live = {
  start() {
    if (ws) return;
    stopped = false;
    setState('connecting');
    connect();
  },
  stop() {
    stopped = true;
    clearTimeout(timer);
    if (ws) ws.close(1000);
    ws = null;
    subs.clear();
    pending.clear();
  },
  state: () => state,
  onState(fn) { listeners.add(fn); return () => listeners.delete(fn); },
  // subscribe follows a topic. For a room, after is the last seq the page
  // holds; events after it arrive in order, then live (one component per
  // room). Several components may follow a snapshot topic ("user",
  // "system"): a new one makes the topic subscribe again, so every one of
  // them is sent a fresh snapshot. Returns the function that stops
  // following.
  subscribe(topic, handlers, after = 0) {
    let sub = subs.get(topic);
    if (sub && topic.startsWith('referral:')) {
      sub.handlers = new Set([handlers]);
      sub.after = after;
      send({ type: 'unsubscribe', topic });
      send(subscribeFrame(topic, sub));
    } else if (sub) {
      sub.handlers.add(handlers);
      send({ type: 'unsubscribe', topic });
      send(subscribeFrame(topic, sub));
    } else {
      sub = { after, handlers: new Set([handlers]) };
      subs.set(topic, sub);
      send(subscribeFrame(topic, sub));
    }
    return () => {
      if (subs.get(topic) !== sub || !sub.handlers.delete(handlers) || sub.handlers.size > 0) return;
      subs.delete(topic);
      send({ type: 'unsubscribe', topic });
    };
  },
  // command sends a message, plan_edit or transition frame and resolves
  // with {ok, seq} on its ack or {ok:false, error} on its refusal.
  command(frame) {
    const f = { ...frame, ref: frame.ref || newRef() };
    if (encoder.encode(JSON.stringify(f)).length > maxFrame) {
      return Promise.resolve({ ok: false, error: { code: 'invalid', field: f.type === 'plan_edit' ? 'text' : f.type === 'message' ? 'body' : 'reason',
        message: 'This is too long to send in one go (more than 64 KB); shorten it or split it.' } });
    }
    return new Promise((resolve) => {
      pending.set(f.ref, { frame: f, resolve });
      send(f);
    });
  },
  typing(referral) { send({ type: 'typing', referral }); },
  read(referral, seq) { send({ type: 'read', referral, seq }); },
};
