// The server's time as this browser sees it. Deadlines are set by the
// server's clock, and a wall screen's own clock is often wrong: each
// snapshot's generated_at moves the offset, so countdowns agree with the
// server whatever the local clock says.
import { useState, useEffect } from '../vendor/htm-preact.js';

let offset = 0;

// syncServerClock takes a server timestamp that was current just now.
export function syncServerClock(generatedAt) {
  const t = Date.parse(generatedAt);
  if (!isNaN(t)) offset = t - Date.now();
}

export function serverNow() { return Date.now() + offset; }

// useNow re-renders every intervalMs and returns the server's time now.
export function useNow(intervalMs) {
  const [, setTick] = useState(0);
  useEffect(() => {
    const t = setInterval(() => setTick((n) => n + 1), intervalMs);
    return () => clearInterval(t);
  }, [intervalMs]);
  return serverNow();
}
