// Formatting shared by the pages. Times are shown in the browser's zone
// (the clinicians' own, Europe/London in practice).

// nhsNumber shows an NHS number as 3-3-4 with spaces: 943 476 5919.
export function nhsNumber(n) {
  const d = String(n || '').replace(/\D/g, '');
  return d.length === 10 ? d.slice(0, 3) + ' ' + d.slice(3, 6) + ' ' + d.slice(6) : String(n || '');
}

// validNHSNumber checks the modulus 11 check digit (SPEC §4).
export function validNHSNumber(n) {
  const d = String(n || '').replace(/\s/g, '');
  if (!/^\d{10}$/.test(d)) return false;
  let sum = 0;
  for (let i = 0; i < 9; i++) sum += Number(d[i]) * (10 - i);
  let check = 11 - (sum % 11);
  if (check === 11) check = 0;
  return check !== 10 && check === Number(d[9]);
}

export function time(t) {
  if (!t) return '';
  const d = new Date(t);
  return d.toLocaleString('en-GB', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
}

export function clock(t) {
  if (!t) return '';
  return new Date(t).toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' });
}

// countdown is how long until t (negative: how long ago it passed), as
// "45 min", "2 h 10 min", "overdue 12 min".
export function countdown(t, now = Date.now()) {
  if (!t) return '';
  let s = Math.round((new Date(t).getTime() - now) / 1000);
  const over = s < 0;
  s = Math.abs(s);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const txt = h > 0 ? h + ' h ' + m + ' min' : m + ' min';
  return over ? 'overdue ' + txt : txt;
}

export function human(s) { return String(s || '').replaceAll('_', ' '); }

export function age(dob, now = new Date()) {
  const b = new Date(dob);
  if (isNaN(b)) return '';
  let a = now.getFullYear() - b.getFullYear();
  const m = now.getMonth() - b.getMonth();
  if (m < 0 || (m === 0 && now.getDate() < b.getDate())) a--;
  return a;
}
