// A referral room's live side: its events (replayed from the start, then
// live, resumed by live.js after a reconnect), who is here and who is
// typing, and the read marker the page sends back.
import { useState, useEffect, useRef } from '../vendor/htm-preact.js';
import { live } from './live.js';

// How long "X is typing…" stays after their last typing frame.
const typingShownMs = 4000;
// At most one read marker this often.
const readEveryMs = 1000;

// useRoomThread subscribes to the room from seq 0. Events arrive one
// frame each; they are gathered and appended once per animation frame, so a
// replay of thousands renders in a few passes rather than one per event.
// It returns {events, ready, notFound, error, presence, typing}: ready once
// the replay is done; events in seq order.
export function useRoomThread(id) {
  const [events, setEvents] = useState([]);
  const [ready, setReady] = useState(false);
  const [notFound, setNotFound] = useState(false);
  const [error, setError] = useState(null);
  const [presence, setPresence] = useState([]);
  const [typing, setTyping] = useState([]);

  useEffect(() => {
    setEvents([]);
    setReady(false);
    setNotFound(false);
    setError(null);
    setPresence([]);
    setTyping([]);

    let buffer = [];
    let frame = 0;
    let fallback = 0;
    const flush = () => {
      cancelAnimationFrame(frame);
      clearTimeout(fallback);
      frame = fallback = 0;
      if (!buffer.length) return;
      const batch = buffer;
      buffer = [];
      setEvents((evs) => evs.concat(batch));
    };
    // Animation frames pause in a hidden tab; the timer keeps the thread
    // current there too.
    const schedule = () => {
      if (frame || fallback) return;
      frame = requestAnimationFrame(flush);
      fallback = setTimeout(flush, 250);
    };

    const typers = new Map(); // user id -> {user, timer}
    const showTypers = () => setTyping([...typers.values()].map((t) => t.user));
    const stopTyping = (userId) => {
      const t = typers.get(userId);
      if (!t) return;
      clearTimeout(t.timer);
      typers.delete(userId);
      showTypers();
    };

    const unsubscribe = live.subscribe('referral:' + id, {
      onEvent: (ev) => {
        buffer.push(ev);
        schedule();
        if (ev.kind === 'message') stopTyping(ev.author.id);
      },
      onSubscribed: () => {
        flush();
        setReady(true);
      },
      onPresence: setPresence,
      onTyping: (user) => {
        const t = typers.get(user.id);
        if (t) clearTimeout(t.timer);
        typers.set(user.id, { user, timer: setTimeout(() => stopTyping(user.id), typingShownMs) });
        showTypers();
      },
      onError: (f) => {
        if (f.code === 'not_found' || f.code === 'invalid') setNotFound(true);
        else setError(f);
      },
    }, 0);

    return () => {
      unsubscribe();
      cancelAnimationFrame(frame);
      clearTimeout(fallback);
      for (const t of typers.values()) clearTimeout(t.timer);
    };
  }, [id]);

  return { events, ready, notFound, error, presence, typing };
}

// useReadMarker tells the server how far the user has read: the last seq
// shown, once the page is visible, at most once a second, never backwards.
export function useReadMarker(id, lastSeq, enabled) {
  const state = useRef({ id, sent: 0, at: 0, timer: 0, seq: 0 });
  const s = state.current;
  if (s.id !== id) Object.assign(s, { id, sent: 0, at: 0, seq: 0 });
  s.seq = lastSeq;

  const flush = () => {
    clearTimeout(s.timer);
    s.timer = 0;
    if (document.visibilityState !== 'visible' || s.seq <= s.sent) return;
    s.sent = s.seq;
    s.at = Date.now();
    live.read(s.id, s.seq);
  };

  useEffect(() => {
    if (!enabled || s.timer) return;
    const wait = s.at + readEveryMs - Date.now();
    if (wait <= 0) flush();
    else s.timer = setTimeout(flush, wait);
  }, [enabled, lastSeq, id]);

  useEffect(() => {
    const onVisible = () => { if (enabled) flush(); };
    document.addEventListener('visibilitychange', onVisible);
    // A marker sent while the socket was down went nowhere: send it again
    // once it is back.
    const offState = live.onState((st) => {
      if (st !== 'live') return;
      s.sent = 0;
      if (enabled) flush();
    });
    return () => {
      document.removeEventListener('visibilitychange', onVisible);
      offState();
    };
  }, [enabled]);

  useEffect(() => () => clearTimeout(s.timer), []);
}
