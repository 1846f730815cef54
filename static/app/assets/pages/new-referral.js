// The new referral form, rendered from the pathway's own form definition
// (GET /api/pathways). The API is the judge of what is valid: its 400
// names the field (patient.nhs_number, form.spinal_levels, contact_phone…),
// and the message is shown at that field, each field's id being the API's
// name for it. What has been typed is kept as a draft in this tab
// (lib/draft.js) with the create command's ref, so a retry or a double
// click makes one referral.
import { html, useState, useEffect, useRef } from '../vendor/htm-preact.js';
import { api, newRef } from '../lib/api.js';
import { navigate } from '../lib/router.js';
import { useSession, hasRole } from '../lib/session.js';
import { Field, ErrorSummary, describedBy, useTitle } from '../lib/ui.js';
import { RadioGroup, YesNo, Checkbox } from '../lib/choices.js';
import { draftKey, loadDraft, saveDraft, clearDraft } from '../lib/draft.js';
import { validNHSNumber, human } from '../lib/format.js';
import { priorities, triageWindows } from '../lib/referral-text.js';

// The pathway's safety question, asked in the safety panel with the
// referral's own safety fields rather than among the clinical ones.
const safetyFormKeys = ['spinal_precautions'];

const sexes = [['female', 'Female'], ['male', 'Male'], ['other', 'Other'], ['unknown', 'Not known']];

function emptyDraft(pathway = '') {
  return {
    ref: newRef(), pathway, priority: '',
    patient: { nhs_number: '', name: '', date_of_birth: '', sex: '' },
    form: {}, contact_phone: '', consultant_discussed: false,
  };
}

// hasContent reports whether the user has entered anything yet.
function hasContent(d) {
  return !!(d.priority || d.contact_phone || d.consultant_discussed ||
    Object.values(d.patient).some(Boolean) ||
    Object.values(d.form).some((v) => v !== '' && v !== undefined && v !== null));
}

// withValue returns the draft with the value at path ("patient.name",
// "form.spinal_levels", "contact_phone") replaced.
function withValue(d, path, value) {
  const [head, key] = path.split('.');
  if (!key) return { ...d, [head]: value };
  return { ...d, [head]: { ...d[head], [key]: value } };
}

// nhsAsTyped groups an NHS number's digits 3-3-4 as they are typed, keeping
// the caret after the same digit. More than ten digits are left ungrouped
// so the mistake shows.
function nhsAsTyped(value, caret) {
  const digits = value.replace(/\D/g, '');
  const before = value.slice(0, caret).replace(/\D/g, '').length;
  const out = digits.length > 10 ? digits : [digits.slice(0, 3), digits.slice(3, 6), digits.slice(6)].filter(Boolean).join(' ');
  let pos = 0;
  for (let seen = 0; pos < out.length && seen < before; pos++) if (out[pos] !== ' ') seen++;
  return { value: out, caret: pos };
}

// nhsCheck is the live check of an NHS number: {ok, text}, or null for an
// empty field.
function nhsCheck(value) {
  const digits = value.replace(/\D/g, '');
  if (!digits) return null;
  if (digits.length < 10) return { ok: null, text: digits.length + ' of 10 digits' };
  if (digits.length > 10) return { ok: false, text: 'An NHS number has 10 digits; this has ' + digits.length };
  if (!validNHSNumber(digits)) return { ok: false, text: 'This is not a valid NHS number (its check digit is wrong): check it against the patient’s record' };
  return { ok: true, text: 'NHS number looks right' };
}

// localToRFC3339 turns a datetime-local value, the user's own time, into
// the UTC timestamp the API takes.
function localToRFC3339(v) {
  const d = new Date(v);
  return isNaN(d) ? v : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

// apiValue is a form field's value as the API takes it, or undefined when
// the field is unanswered.
function apiValue(field, v) {
  if (v === undefined || v === null || v === '') return undefined;
  switch (field.type) {
    case 'bool': return v === true;
    case 'text': return String(v).trim() || undefined;
    case 'time': return localToRFC3339(v);
    case 'number':
    case 'integer': {
      const n = Number(v);
      return Number.isFinite(n) ? n : v; // the API names what is wrong
    }
    default: return v;
  }
}

function requestBody(d, pathway, submit) {
  const form = {};
  for (const f of pathway.form) {
    const v = apiValue(f, d.form[f.key]);
    if (v !== undefined) form[f.key] = v;
  }
  return {
    ref: d.ref, pathway: pathway.id, priority: d.priority, submit,
    patient: { ...d.patient, nhs_number: d.patient.nhs_number.replace(/\s/g, ''), name: d.patient.name.trim() },
    form, contact_phone: d.contact_phone.trim(), consultant_discussed: d.consultant_discussed === true,
  };
}

// requiredNow reports whether a field must be answered given the rest of
// the form (the onset of a deficit, once a deficit is reported).
function requiredNow(field, form) {
  return field.required || (field.required_when_any || []).some((k) => form[k] === true);
}

function fieldHint(field, pathway) {
  const parts = [];
  if (field.type === 'number' || field.type === 'integer') {
    if (field.min !== undefined && field.max !== undefined) parts.push('Between ' + field.min + ' and ' + field.max);
    else if (field.min !== undefined) parts.push('At least ' + field.min);
    else if (field.max !== undefined) parts.push('At most ' + field.max);
  }
  if (field.type === 'time') parts.push('Date and time, in your local time');
  if (field.required_when_any) {
    const labels = field.required_when_any.map((k) => (pathway.form.find((f) => f.key === k) || { label: k }).label.toLowerCase());
    parts.push('Required when there is ' + labels.join(' or '));
  }
  return parts.join('. ');
}

export function NewReferral() {
  useTitle('New referral');
  const { me } = useSession();
  if (!hasRole(me, 'clinician', 'specialist')) {
    return html`<main id="main" class="narrow"><h1>New referral</h1>
      <p>Only referring clinicians and specialists can make referrals.</p>
      <p><a href="/referrals">Back to the referrals</a></p></main>`;
  }
  return html`<${ReferralForm} userId=${me.user.id} />`;
}

function ReferralForm({ userId }) {
  const key = draftKey('new-referral', userId);
  const [pathways, setPathways] = useState(null);
  const [loadError, setLoadError] = useState(null);
  const [draft, setDraft] = useState(() => loadDraft(key) || emptyDraft());
  const [restored, setRestored] = useState(() => hasContent(draft));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState('');
  const summary = useRef(null);

  useEffect(() => {
    api.get('/api/pathways').then((r) => {
      if (!r.ok) { setLoadError(r.error); return; }
      setPathways(r.data.pathways);
      const ps = r.data.pathways;
      setDraft((d) => (ps.some((p) => p.id === d.pathway) || !ps.length ? d : { ...d, pathway: ps[0].id }));
    });
  }, []);
  useEffect(() => { saveDraft(key, draft); }, [draft]);
  useEffect(() => { if (error && summary.current) summary.current.focus(); }, [error]);

  if (loadError) return html`<main id="main"><h1>New referral</h1><${ErrorSummary} error=${loadError} /></main>`;
  if (!pathways) return html`<main id="main"><h1>New referral</h1><p class="muted" role="status">Loading the referral form…</p></main>`;
  if (!pathways.length) return html`<main id="main"><h1>New referral</h1><p>No pathway accepts referrals yet.</p></main>`;
  const pathway = pathways.find((p) => p.id === draft.pathway) || pathways[0];

  // set changes the value at path; an error the API gave for that field
  // no longer applies once it is changed.
  const set = (path, value) => {
    setDraft((d) => withValue(d, path, value));
    if (error && error.field === path) setError(null);
  };
  const onNHSInput = (e) => {
    const t = e.target;
    const next = nhsAsTyped(t.value, t.selectionStart ?? t.value.length);
    t.value = next.value;
    if (document.activeElement === t) t.setSelectionRange(next.caret, next.caret);
    set('patient.nhs_number', next.value);
  };

  const send = async (submit) => {
    if (busy) return;
    setBusy(submit ? 'submit' : 'draft');
    const r = await api.post('/api/referrals', requestBody(draft, pathway, submit));
    setBusy('');
    if (r.ok) {
      clearDraft(key);
      navigate('/referrals/' + encodeURIComponent(r.data.id), true);
      return;
    }
    setError({ ...r.error }); // a new object: the summary takes focus again
  };
  // Neither button is a submit button, so Enter in a one-line input cannot
  // send the whole referral (the form has no implicit submission): only a
  // press of Submit does.
  const startAgain = () => {
    clearDraft(key);
    setDraft(emptyDraft(pathway.id));
    setRestored(false);
    setError(null);
  };

  // The summary's links move to the field named, rather than to a new
  // page as the router would take a same-page link to be.
  const toField = (e) => {
    const a = e.target.closest('a[href^="#"]');
    if (!a) return;
    e.preventDefault();
    const el = document.getElementById(decodeURIComponent(a.getAttribute('href').slice(1)));
    if (el) { el.scrollIntoView({ block: 'center' }); el.focus(); }
  };

  const clinical = pathway.form.filter((f) => !safetyFormKeys.includes(f.key));
  const safety = pathway.form.filter((f) => safetyFormKeys.includes(f.key));
  const fieldIds = ['pathway', 'priority', 'patient.nhs_number', 'patient.name', 'patient.date_of_birth', 'patient.sex',
    'contact_phone', 'consultant_discussed', ...pathway.form.map((f) => 'form.' + f.key)];
  const windows = triageWindows(pathway.triage);
  // The live check stands aside while the API's own message for the field
  // is shown, rather than say the same thing twice.
  const nhs = error && error.field === 'patient.nhs_number' ? null : nhsCheck(draft.patient.nhs_number);
  const text = (id, label, value, extra = {}) => html`<${Field} id=${id} label=${label} error=${error} required=${extra.required} hint=${extra.hint}>
    <input id=${id} type=${extra.type || 'text'} value=${value} autocomplete=${extra.autocomplete || 'off'} max=${extra.max}
      aria-describedby=${describedBy(id, error, extra.hint)} onInput=${(e) => set(id, e.target.value)} />
  </${Field}>`;

  return html`<main id="main" class="new-referral">
    <h1>New referral: ${pathway.name}</h1>
    <p class="muted">Fields marked <span class="req">*</span> are required. What you type is kept in this browser tab until you submit, so a reload loses nothing; closing the tab removes it.</p>
    ${restored ? html`<div class="draft-note" role="status">
      We kept what you had entered on this referral.
      <button type="button" class="link" onClick=${startAgain}>Start again with an empty form</button>
    </div>` : ''}
    <div class="summary-wrap" tabindex="-1" ref=${summary} onClick=${toField}>
      <${ErrorSummary} error=${error} fields=${fieldIds} />
    </div>
    <form novalidate onSubmit=${(e) => e.preventDefault()}>
      ${pathways.length > 1 ? html`<${Field} id="pathway" label="Pathway" error=${error} required=${true}>
        <select id="pathway" value=${pathway.id} onChange=${(e) => set('pathway', e.target.value)}>
          ${pathways.map((p) => html`<option value=${p.id}>${p.name}</option>`)}
        </select>
      </${Field}>` : ''}

      <section class="card" aria-labelledby="patient-heading">
        <h2 id="patient-heading">Patient</h2>
        <${Field} id="patient.nhs_number" label="NHS number" error=${error} required=${true} hint="10 digits, such as 943 476 5919">
          <input id="patient.nhs_number" class="nhs-input" inputmode="numeric" autocomplete="off" value=${draft.patient.nhs_number}
            aria-describedby=${[describedBy('patient.nhs_number', error, true), nhs && 'patient.nhs_number-check'].filter(Boolean).join(' ')}
            onInput=${onNHSInput} />
          <p id="patient.nhs_number-check" class=${'nhs-check' + (nhs && nhs.ok === true ? ' ok' : nhs && nhs.ok === false ? ' problem' : '')} aria-live="polite">
            ${nhs ? (nhs.ok === true ? '✓ ' : nhs.ok === false ? '✗ ' : '') + nhs.text : ''}
          </p>
        </${Field}>
        ${text('patient.name', 'Full name', draft.patient.name, { required: true })}
        ${text('patient.date_of_birth', 'Date of birth', draft.patient.date_of_birth, { type: 'date', required: true, max: new Date().toISOString().slice(0, 10) })}
        <${Field} id="patient.sex" label="Sex" error=${error} required=${true}>
          <select id="patient.sex" value=${draft.patient.sex} aria-describedby=${describedBy('patient.sex', error)}
            onChange=${(e) => set('patient.sex', e.target.value)}>
            <option value="">Choose…</option>
            ${sexes.map(([v, l]) => html`<option value=${v}>${l}</option>`)}
          </select>
        </${Field}>
      </section>

      <section class="card" aria-labelledby="priority-heading">
        <h2 id="priority-heading">Priority</h2>
        <${RadioGroup} id="priority" legend="How urgently must this referral be triaged?" error=${error} required=${true}
          value=${draft.priority || undefined} onChange=${(v) => set('priority', v)}
          options=${priorities.map(([v, l]) => [v, l, windows[v]])} />
      </section>

      <section class="card" aria-labelledby="clinical-heading">
        <h2 id="clinical-heading">Clinical details</h2>
        ${clinical.map((f) => html`<${FormField} key=${f.key} field=${f} pathway=${pathway} value=${draft.form[f.key]}
          required=${requiredNow(f, draft.form)} error=${error} onChange=${(v) => set('form.' + f.key, v)} />`)}
      </section>

      <section class="safety" aria-labelledby="safety-heading">
        <h2 id="safety-heading"><span aria-hidden="true">⚠ </span>Safety checks</h2>
        <p>The receiving team acts on these. Check each one before you submit.</p>
        ${text('contact_phone', 'Contact phone for the referring team', draft.contact_phone,
          { type: 'tel', required: true, hint: 'A number answered now, such as the ward or the registrar’s bleep via switchboard' })}
        ${safety.map((f) => html`<${FormField} key=${f.key} field=${f} pathway=${pathway} value=${draft.form[f.key]}
          required=${requiredNow(f, draft.form)} error=${error} onChange=${(v) => set('form.' + f.key, v)} />`)}
        <${Checkbox} id="consultant_discussed" required=${true} checked=${draft.consultant_discussed} error=${error}
          label="I have discussed this referral with the responsible consultant"
          onChange=${(v) => set('consultant_discussed', v)} />
      </section>

      <div class="actions">
        <button type="button" class="primary" disabled=${!!busy} onClick=${() => send(true)}>${busy === 'submit' ? 'Submitting…' : 'Submit referral'}</button>
        <button type="button" disabled=${!!busy} onClick=${() => send(false)}>${busy === 'draft' ? 'Saving…' : 'Save as draft'}</button>
      </div>
    </form>
  </main>`;
}

// FormField is one field of the pathway's form, its input chosen by type.
function FormField({ field: f, pathway, value, required, error, onChange }) {
  const id = 'form.' + f.key;
  const hint = fieldHint(f, pathway);
  const common = { id, 'aria-describedby': describedBy(id, error, hint) };
  if (f.type === 'bool') {
    return html`<${YesNo} id=${id} legend=${f.label} hint=${hint} error=${error} required=${required} value=${value} onChange=${onChange} />`;
  }
  let input;
  switch (f.type) {
    case 'choice':
      input = html`<select ...${common} value=${value || ''} onChange=${(e) => onChange(e.target.value)}>
        <option value="">${required ? 'Choose…' : 'Not stated'}</option>
        ${(f.options || []).map((o) => html`<option value=${o}>${human(o)}</option>`)}
      </select>`;
      break;
    case 'text':
      input = html`<textarea ...${common} rows="2" value=${value || ''} onInput=${(e) => onChange(e.target.value)} />`;
      break;
    case 'time':
      input = html`<input ...${common} type="datetime-local" value=${value || ''} onInput=${(e) => onChange(e.target.value)} />`;
      break;
    case 'date':
      input = html`<input ...${common} type="date" value=${value || ''} onInput=${(e) => onChange(e.target.value)} />`;
      break;
    case 'number':
    case 'integer':
      input = html`<input ...${common} type="number" inputmode=${f.type === 'integer' ? 'numeric' : 'decimal'}
        step=${f.type === 'integer' ? '1' : 'any'} min=${f.min} max=${f.max} value=${value ?? ''}
        onInput=${(e) => onChange(e.target.value)} />`;
      break;
    default:
      input = html`<input ...${common} type="text" value=${value || ''} onInput=${(e) => onChange(e.target.value)} />`;
  }
  return html`<${Field} id=${id} label=${f.label} error=${error} required=${required} hint=${hint}>${input}</${Field}>`;
}
