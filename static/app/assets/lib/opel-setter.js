// The OPEL level setter for bed managers and admins (PUT
// /api/wallboard/opel). The wallboard itself takes no input.
import { html, useState, useEffect } from '../vendor/htm-preact.js';
import { api } from './api.js';
import { time } from './format.js';
import { Field, ErrorSummary, describedBy } from './ui.js';

export const opelMeaning = {
  1: 'Steady: demand is being met',
  2: 'Moderate pressure',
  3: 'Severe pressure',
  4: 'Extreme pressure: the site cannot meet demand',
};

export function OpelSetter() {
  const [current, setCurrent] = useState(null);
  const [level, setLevel] = useState('');
  const [note, setNote] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    api.get('/api/wallboard').then((r) => {
      if (!r.ok || !r.data.opel) return;
      setCurrent(r.data.opel);
      setLevel(String(r.data.opel.level));
    });
  }, []);
  const submit = async (e) => {
    e.preventDefault();
    setError(null);
    if (!level) {
      setError({ field: 'opel-level', message: 'Choose the OPEL level' });
      return;
    }
    setBusy(true);
    const body = { level: Number(level) };
    if (note.trim()) body.note = note.trim();
    const r = await api.put('/api/wallboard/opel', body);
    setBusy(false);
    if (!r.ok) {
      setError(r.error.field === 'level' ? { ...r.error, field: 'opel-level' } : r.error.field === 'note' ? { ...r.error, field: 'opel-note' } : r.error);
      return;
    }
    setCurrent(r.data.opel);
    setNote('');
  };
  return html`<section class="card opel-setter" aria-labelledby="opel-title">
    <h2 id="opel-title">OPEL level</h2>
    <p>${current
      ? html`Now <strong class=${'opel-chip opel-' + current.level}>OPEL ${current.level}</strong>, set ${time(current.set_at)}${current.set_by && current.set_by.name ? ' by ' + current.set_by.name : ''}${current.note ? html` — ${current.note}` : ''}`
      : 'Not set yet.'}</p>
    <${ErrorSummary} error=${error} fields=${['opel-level', 'opel-note']} />
    <form onSubmit=${submit} novalidate>
      <${Field} id="opel-level" label="Level" error=${error}>
        <select id="opel-level" value=${level} aria-describedby=${describedBy('opel-level', error)} onChange=${(e) => setLevel(e.target.value)}>
          <option value="">Choose…</option>
          ${[1, 2, 3, 4].map((n) => html`<option value=${n}>OPEL ${n} — ${opelMeaning[n]}</option>`)}
        </select>
      </${Field}>
      <${Field} id="opel-note" label="Note (optional)" error=${error} hint="Shown on wall screens in public areas: what is driving the pressure, never a patient\u2019s name">
        <input id="opel-note" maxlength="500" value=${note} aria-describedby=${describedBy('opel-note', error, true)} onInput=${(e) => setNote(e.target.value)} />
      </${Field}>
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Setting…' : 'Set OPEL level'}</button>
    </form>
  </section>`;
}
