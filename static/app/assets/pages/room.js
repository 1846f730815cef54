// A referral's room: the patient at the top, the conversation and its
// events in seq order with the compose box, the management plan beside it
// (below it on narrow screens), and the status actions the user may take.
// Everything that changes arrives on the room's live subscription; the page
// reads the referral once, for what it was when the room opened.
import { html, Component, useState, useEffect, useMemo, useRef, useLayoutEffect } from '../vendor/htm-preact.js';
import { api, newRef } from '../lib/api.js';
import { live } from '../lib/live.js';
import { useSession } from '../lib/session.js';
import { Field, ErrorSummary, describedBy, useTitle } from '../lib/ui.js';
import * as format from '../lib/format.js';
import { useRoomThread, useReadMarker } from '../lib/room-thread.js';
import { actionLabels, allowedMoves, moves, outcomeFields, partiesOf } from '../lib/transitions.js';

// At most one typing frame this often while the user types.
const typingEveryMs = 2000;

// eventTime is format.time with its formatter made once: a thread shows
// thousands of times, and toLocaleString builds a formatter per call.
const eventTimeFormat = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit' });
function eventTime(t) { return eventTimeFormat.format(new Date(t)); }

export function Room({ id }) {
  useTitle('Referral');
  const { me } = useSession();
  const loaded = useReferral(id);
  const thread = useRoomThread(id);
  const { events, ready } = thread;
  const lastSeq = events.length ? events[events.length - 1].seq : 0;
  useReadMarker(id, lastSeq, ready);

  const referral = loaded && loaded.referral;
  const pathway = loaded && loaded.pathway;
  const state = useMemo(() => referral && liveState(referral, events, me.user), [referral, events, me]);
  const labels = useMemo(() => pathway && labelsOf(pathway), [pathway]);

  // room-ready: the replay is rendered and the compose box usable (the
  // browser tests read it to measure how long a large room takes to open).
  const marked = useRef(false);
  useEffect(() => {
    if (marked.current || !ready || !referral) return;
    marked.current = true;
    performance.mark('room-ready');
  }, [ready, referral]);

  if (thread.notFound || (loaded && loaded.notFound)) return html`<${NotFound} />`;
  if (loaded && loaded.error) return html`<main id="main"><h1>Referral</h1><${ErrorSummary} error=${loaded.error} /></main>`;
  if (!referral) return html`<main id="main"><p class="loading">Loading the referral…</p></main>`;

  const parties = partiesOf(me.user, referral, state.participants);
  // Keyed by the referral, so nothing typed in one room shows in the next.
  return html`<main id="main" class="room" key=${id}>
    <${PatientHeader} referral=${referral} state=${state} pathway=${pathway} />
    <${FormDetails} form=${referral.form} fields=${pathway.form} />
    <${Actions} referralId=${id} status=${state.status} allowed=${allowedMoves(state.status, parties)}
      bedTypes=${pathway.bed_types} outcomes=${state.outcomes} />
    <div class="room-cols">
      <${Conversation} id=${id} me=${me.user} thread=${thread} labels=${labels} />
      <${Plan} referralId=${id} defs=${labels.sectionDefs} sections=${state.sections} />
    </div>
  </main>`;
}

function NotFound() {
  useTitle('Referral not found');
  return html`<main id="main"><h1>Referral not found</h1>
    <p>There is no referral here, or it is not one you can see.</p>
    <p><a href="/referrals">Back to your referrals</a></p></main>`;
}

// useReferral reads the referral and its pathway (form labels, plan
// sections, bed types). It returns null while loading, then {referral,
// pathway}, {notFound} or {error}.
function useReferral(id) {
  const [loaded, setLoaded] = useState(null);
  useEffect(() => {
    let gone = false;
    setLoaded(null);
    Promise.all([api.get('/api/referrals/' + encodeURIComponent(id)), api.get('/api/pathways')]).then(([r, p]) => {
      if (gone) return;
      if (!r.ok) {
        const missing = r.status === 404 || r.status === 400;
        setLoaded(missing ? { notFound: true } : { error: r.error });
        return;
      }
      const found = p.ok && p.data.pathways.find((pw) => pw.id === r.data.pathway);
      setLoaded({ referral: r.data, pathway: found || fallbackPathway(r.data) });
    });
    return () => { gone = true; };
  }, [id]);
  return loaded;
}

// fallbackPathway stands in when the pathways cannot be read: fields and
// sections are shown by their keys.
function fallbackPathway(referral) {
  return {
    form: Object.keys(referral.form || {}).map((key) => ({ key, label: format.human(key), type: 'text' })),
    plan_sections: referral.plan.sections.map((s) => ({ name: s.name, label: format.human(s.name) })),
    bed_types: [],
  };
}

// labelsOf is what the thread needs to name things: plan sections by label.
function labelsOf(pathway) {
  const sections = {};
  for (const s of pathway.plan_sections) sections[s.name] = s.label;
  return { sections, sectionDefs: pathway.plan_sections };
}

// liveState is the referral as its events have moved it since it was read
// (events after its head_seq): status, deadline, outcomes, participants;
// each plan section with who last edited it; and the assignee, whose name
// only the events tell (the first move to in triage claims the referral
// for its author, an assigned event gives it to someone).
function liveState(referral, events, me) {
  const s = {
    status: referral.status,
    triageDueAt: referral.triage_due_at,
    outcomes: { ...(referral.outcomes || {}) },
    participants: referral.participants.slice(),
    assignee: null,
    sections: {},
  };
  for (const x of referral.plan.sections) s.sections[x.name] = { revision: x.revision, text: x.text, by: '', at: x.updated_at };
  for (const ev of events) {
    const b = ev.body || {};
    const after = ev.seq > referral.head_seq;
    switch (ev.kind) {
      case 'plan_edit': {
        const cur = s.sections[b.section];
        if (!cur || b.revision >= cur.revision) s.sections[b.section] = { revision: b.revision, text: b.text, by: ev.author.name, at: ev.at };
        break;
      }
      case 'assigned':
        s.assignee = { id: b.assignee_id, name: b.assignee_name };
        break;
      case 'transition':
        if (b.to === 'in_triage' && !s.assignee) s.assignee = { id: ev.author.id, name: ev.author.name };
        if (!after) break;
        s.status = b.to;
        if (b.outcome) s.outcomes[b.to] = b.outcome;
        if (b.triage_due_at) s.triageDueAt = b.triage_due_at;
        break;
      case 'participant_added':
        if (after && !s.participants.some((p) => p.user_id === b.user_id)) s.participants.push({ user_id: b.user_id, name: b.name });
        break;
    }
  }
  // Until the replay has come, the referral names the assignee by id only.
  if (!s.assignee && referral.assignee_id) s.assignee = { id: referral.assignee_id, name: nameOf(referral, referral.assignee_id, me) };
  return s;
}

function nameOf(referral, userId, me) {
  if (userId === me.id) return me.name;
  const p = referral.participants.find((x) => x.user_id === userId);
  return p ? p.name : 'a member of the team';
}

// useNow re-renders every half minute, for countdowns.
function useNow() {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), 30000);
    return () => clearInterval(t);
  }, []);
  return now;
}

// ---- The patient ----

function PatientHeader({ referral, state, pathway }) {
  const p = referral.patient;
  const age = format.age(p.date_of_birth);
  const precautions = pathway.form.find((f) => f.key === 'spinal_precautions');
  return html`<header class="room-head card">
    <div class="room-title">
      <h1>${p.name}</h1>
      <span class=${'pill prio-' + referral.priority}>${format.human(referral.priority)}</span>
      <span class=${'pill room-status status-' + state.status}>${format.human(state.status)}</span>
      <${Deadline} referral=${referral} state=${state} />
    </div>
    <dl class="room-facts">
      <div><dt>NHS number</dt><dd class="nhs">${format.nhsNumber(p.nhs_number)}</dd></div>
      <div><dt>Date of birth</dt><dd>${dateOnly(p.date_of_birth)}${age !== '' ? ` (${age} years)` : ''}</dd></div>
      <div><dt>Sex</dt><dd>${format.human(p.sex)}</dd></div>
      <div><dt>Referred by</dt><dd>${referral.referrer.name}, ${referral.referring_organisation}</dd></div>
      <div><dt>Referred to</dt><dd>${referral.receiving_organisation}</dd></div>
      <div><dt>Contact phone</dt><dd><a href=${'tel:' + referral.contact_phone.replace(/\s/g, '')}>${referral.contact_phone}</a></dd></div>
      <div><dt>Assigned to</dt><dd>${state.assignee ? state.assignee.name : 'Nobody yet'}</dd></div>
    </dl>
    <ul class="room-safety" aria-label="Safety">
      <${Safety} label="Consultant discussed" yes=${referral.consultant_discussed} />
      ${precautions ? html`<${Safety} label=${precautions.label} yes=${referral.form.spinal_precautions === true} />` : ''}
    </ul>
    <${Outcomes} outcomes=${state.outcomes} />
  </header>`;
}

function Safety({ label, yes }) {
  return html`<li class=${yes ? 'safe-yes' : 'safe-no'}><span class="safe-label">${label}:</span> <strong>${yes ? 'Yes' : 'No'}</strong></li>`;
}

function Deadline({ referral, state }) {
  const now = useNow();
  if (!state.triageDueAt || !['submitted', 'in_triage'].includes(state.status)) return '';
  const due = Date.parse(state.triageDueAt);
  const left = due - now;
  // Due soon: the last quarter of the triage window, as the board has it.
  const window = referral.submitted_at ? due - Date.parse(referral.submitted_at) : 4 * 3600e3;
  const cls = left < 0 ? 'overdue' : left <= window / 4 ? 'due-soon' : '';
  const text = left < 0 ? 'Triage ' + format.countdown(state.triageDueAt, now) : 'Triage due in ' + format.countdown(state.triageDueAt, now);
  return html`<span class=${'pill room-deadline ' + cls}>${text} <span class="muted">(by ${format.time(state.triageDueAt)})</span></span>`;
}

const outcomeHeadings = { accepted: 'Accepted', transfer_booked: 'Transfer booked', transferred: 'Transferred', managed_remotely: 'Managed remotely' };

function Outcomes({ outcomes }) {
  const shown = Object.keys(outcomeHeadings).filter((st) => outcomes[st]);
  if (!shown.length) return '';
  return html`<dl class="room-outcomes">${shown.map((st) => html`<div>
    <dt>${outcomeHeadings[st]}</dt><dd>${outcomeText(outcomes[st])}</dd></div>`)}</dl>`;
}

function outcomeText(o) {
  return Object.entries(o).map(([k, v]) => outcomeLabel(k) + ': ' + outcomeValue(k, v)).join('; ');
}

function outcomeLabel(key) {
  return { bed_type: 'Bed type', ward: 'Ward', expected_at: 'Expected', arrived_at: 'Arrived', advice: 'Advice' }[key] || format.human(key);
}

function outcomeValue(key, v) {
  return key.endsWith('_at') ? format.time(v) : key === 'bed_type' ? format.human(v) : String(v);
}

function dateOnly(d) {
  const t = new Date(d + 'T00:00:00Z');
  return isNaN(t) ? d : t.toLocaleDateString('en-GB', { day: 'numeric', month: 'short', year: 'numeric', timeZone: 'UTC' });
}

// FormDetails lists each answered field of the referral form by its label.
function FormDetails({ form, fields }) {
  const answered = fields.filter((f) => form[f.key] !== undefined && form[f.key] !== null && form[f.key] !== '');
  return html`<details class="room-form card">
    <summary>Referral form</summary>
    <dl>${answered.map((f) => html`<div><dt>${f.label}</dt><dd>${fieldValue(f, form[f.key])}</dd></div>`)}</dl>
  </details>`;
}

function fieldValue(f, v) {
  switch (f.type) {
    case 'bool': return v ? 'Yes' : 'No';
    case 'choice': return format.human(v);
    case 'time': return format.time(v);
    case 'date': return dateOnly(v);
    default: return String(v);
  }
}

// ---- The conversation ----

function Conversation({ id, me, thread, labels }) {
  const [pending, setPending] = useState([]); // messages sent, not yet in the thread
  const [text, setText] = useState('');
  const stick = useRef(true);
  const { events, ready } = thread;
  const lastSeq = events.length ? events[events.length - 1].seq : 0;

  // A sent message leaves the pending list once its own event (the seq of
  // its ack) is in the thread: the replay has no gaps, so that is any seq
  // up to the last one.
  const waiting = pending.filter((p) => !p.seq || p.seq > lastSeq);
  useEffect(() => {
    if (waiting.length !== pending.length) setPending((ps) => ps.filter((p) => !p.seq || p.seq > lastSeq));
  }, [lastSeq, pending]);

  const send = (body) => {
    const ref = newRef();
    stick.current = true;
    setPending((ps) => [...ps, { ref, body, state: 'sending' }]);
    live.command({ type: 'message', referral: id, body, ref }).then((r) => {
      setPending((ps) => ps.map((p) => p.ref !== ref ? p
        : r.ok ? { ...p, state: 'sent', seq: r.seq } : { ...p, state: 'failed', error: r.error }));
    });
  };
  const drop = (ref) => setPending((ps) => ps.filter((p) => p.ref !== ref));
  const retry = (p) => { drop(p.ref); send(p.body); };
  const edit = (p) => {
    drop(p.ref);
    setText(p.body);
    document.getElementById('compose').focus();
  };

  return html`<section class="room-conversation" aria-labelledby="conversation-h">
    <h2 id="conversation-h">Conversation</h2>
    <${Presence} me=${me} presence=${thread.presence} typing=${thread.typing} />
    ${thread.error ? html`<${ErrorSummary} error=${thread.error} />` : ''}
    <${Thread} events=${events} pending=${waiting} me=${me} labels=${labels} ready=${ready} stick=${stick}
      onRetry=${retry} onEdit=${edit} onDiscard=${(p) => drop(p.ref)} />
    <${Compose} id=${id} text=${text} setText=${setText} onSend=${send} />
  </section>`;
}

function Presence({ me, presence, typing }) {
  const others = presence.filter((u) => u.id !== me.id).map((u) => u.name);
  const here = presence.some((u) => u.id === me.id) ? ['you', ...others] : others;
  // Who is here is announced when it changes; typing is shown, not
  // announced: a screen reader would hear every keystroke's start and stop.
  return html`<div class="room-presence">
    <p class="presence-here" aria-live="polite">${here.length ? 'Here now: ' + here.join(', ') : 'Nobody else is here'}</p>
    ${typing.filter((u) => u.id !== me.id).map((u) => html`<p class="presence-typing" key=${u.id}>${u.name} is typing…</p>`)}
  </div>`;
}

// Thread is the scrolling list of events, then this browser's messages not
// yet in it. It keeps to the bottom while the reader is there.
function Thread({ events, pending, me, labels, ready, stick, onRetry, onEdit, onDiscard }) {
  const box = useRef(null);
  const onScroll = () => {
    const el = box.current;
    stick.current = el.scrollHeight - el.scrollTop - el.clientHeight < 48;
  };
  // Scrolling measures the whole list, so not during the replay: once, at
  // its end.
  useLayoutEffect(() => {
    if (ready && stick.current && box.current) box.current.scrollTop = box.current.scrollHeight;
  }, [ready, events.length, pending.length]);

  // Announced as they arrive once the replay is done, not before.
  return html`<div class="thread-box" ref=${box} onScroll=${onScroll} tabindex="0"
      role="log" aria-live=${ready ? 'polite' : 'off'} aria-label="Messages and events">
    ${!ready && !events.length ? html`<p class="muted">Loading the conversation…</p>` : ''}
    <ol class="thread">
      ${chunkStarts(events.length).map((start) => html`<${EventChunk} key=${start} events=${events} start=${start} me=${me} labels=${labels} />`)}
      ${pending.map((p) => html`<${PendingItem} key=${p.ref} p=${p} onRetry=${onRetry} onEdit=${onEdit} onDiscard=${onDiscard} />`)}
    </ol>
  </div>`;
}

// Events are rendered in chunks of this many: appending to a long thread
// renders only its last chunk again.
const chunkSize = 100;

function chunkStarts(n) {
  const starts = [];
  for (let i = 0; i < n; i += chunkSize) starts.push(i);
  return starts;
}

// EventChunk renders events[start, start+chunkSize), as many as there are
// yet. Events never change once here, so a full chunk renders once.
class EventChunk extends Component {
  shouldComponentUpdate(next) {
    const p = this.props;
    return next.events[next.start] !== p.events[p.start] || chunkEnd(next) !== chunkEnd(p) || next.labels !== p.labels || next.me !== p.me;
  }

  render({ events, start, me, labels }) {
    const items = [];
    for (let i = start; i < chunkEnd(this.props); i++) {
      const ev = events[i];
      items.push(html`<${EventItem} key=${ev.seq} ev=${ev} mine=${ev.author.id === me.id} labels=${labels} />`);
    }
    return items;
  }
}

function chunkEnd({ events, start }) { return Math.min(events.length, start + chunkSize); }

// EventItem renders one stored event as text, once.
class EventItem extends Component {
  shouldComponentUpdate(next) {
    return next.ev !== this.props.ev || next.mine !== this.props.mine || next.labels !== this.props.labels;
  }

  render({ ev, mine, labels }) {
    const when = html`<time datetime=${ev.at}>${eventTime(ev.at)}</time>`;
    if (ev.kind === 'message') {
      return html`<li class=${'ev msg' + (mine ? ' mine' : '')} data-seq=${ev.seq}>
        <p class="ev-meta"><span class="ev-author">${ev.author.name}</span> <span class="muted">${authorRole(ev.author)}</span> · ${when}</p>
        <p class="ev-body">${ev.body.body}</p>
      </li>`;
    }
    const { text, details } = describe(ev, labels);
    return html`<li class=${'ev sys ev-' + ev.kind} data-seq=${ev.seq}>
      <p class="ev-meta">${ev.kind === 'reminder' ? '' : html`<span class="ev-author">${ev.author.name}</span> `}${text} · ${when}</p>
      ${details.map((d) => html`<p class="ev-detail">${d}</p>`)}
    </li>`;
  }
}

function PendingItem({ p, onRetry, onEdit, onDiscard }) {
  const failed = p.state === 'failed';
  return html`<li class=${'ev msg mine' + (p.state === 'sent' ? '' : ' pending') + (failed ? ' failed' : '')} data-ref=${p.ref}>
    <p class="ev-meta"><span class="ev-author">You</span>
      ${p.state === 'sending' ? html` <span class="ev-state">sending…</span>` : ''}
      ${failed ? html` <span class="ev-state">not sent</span>` : ''}</p>
    <p class="ev-body">${p.body}</p>
    ${failed ? html`<p class="error-text" role="alert">${p.error.message}</p>
      <p class="ev-actions">
        <button type="button" onClick=${() => onRetry(p)}>Retry</button>
        <button type="button" onClick=${() => onEdit(p)}>Edit</button>
        <button type="button" class="link" onClick=${() => onDiscard(p)}>Discard</button>
      </p>` : ''}
  </li>`;
}

function authorRole(a) {
  return [format.human(a.role), a.organisation].filter(Boolean).join(', ');
}

// describe puts an event other than a message into words: a line, and
// details (a reason, an outcome, a plan section's new text).
function describe(ev, labels) {
  const b = ev.body || {};
  switch (ev.kind) {
    case 'created':
      return { text: `created the referral (${format.human(b.priority)})`, details: [] };
    case 'transition': {
      const details = [];
      if (b.reason) details.push('Reason: ' + b.reason);
      if (b.outcome) {
        for (const [k, v] of Object.entries(b.outcome)) details.push(outcomeLabel(k) + ': ' + outcomeValue(k, v));
      }
      if (b.triage_due_at) details.push('Triage due by ' + format.time(b.triage_due_at));
      const text = b.from === 'draft' && b.to === 'submitted' ? 'submitted the referral'
        : `moved the referral from ${format.human(b.from)} to ${format.human(b.to)}`;
      return { text, details };
    }
    case 'plan_edit':
      return { text: `updated the plan: ${labels.sections[b.section] || format.human(b.section)} (revision ${b.revision})`, details: [b.text] };
    case 'assigned':
      return { text: `assigned the referral to ${b.assignee_name}`, details: [] };
    case 'participant_added':
      return { text: `added ${b.name} to the room`, details: [] };
    case 'reminder':
      return { text: reminderText(b), details: [] };
    default:
      return { text: format.human(ev.kind), details: [] };
  }
}

function reminderText(b) {
  const due = format.time(b.due_at);
  switch (b.reason) {
    case 'due_soon': return `Reminder: triage is due soon (by ${due})`;
    case 'breached': return `Reminder: the triage deadline has passed (${due})`;
    case 'breached_again': return `Reminder: triage is still overdue (deadline ${due})`;
    case 'more_info_24h': return 'Reminder: more information was asked for 24 hours ago';
    case 'more_info_48h': return 'Reminder: more information was asked for 48 hours ago';
    default: return 'Reminder';
  }
}

// Compose: Enter sends, Shift+Enter is a new line.
function Compose({ id, text, setText, onSend }) {
  const lastTyping = useRef(0);
  const submit = () => {
    const body = text.trim();
    if (!body) return;
    onSend(body);
    setText('');
  };
  const onKeyDown = (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      submit();
    }
  };
  const onInput = (e) => {
    setText(e.target.value);
    const now = Date.now();
    if (now - lastTyping.current >= typingEveryMs) {
      lastTyping.current = now;
      live.typing(id);
    }
  };
  return html`<form class="compose" onSubmit=${(e) => { e.preventDefault(); submit(); }}>
    <label for="compose">Message</label>
    <p class="hint" id="compose-hint">Enter sends; Shift+Enter starts a new line.</p>
    <textarea id="compose" rows="3" maxlength="10000" value=${text} aria-describedby="compose-hint"
      onKeyDown=${onKeyDown} onInput=${onInput}></textarea>
    <button type="submit" class="primary">Send</button>
  </form>`;
}

// ---- The management plan ----

function Plan({ referralId, defs, sections }) {
  return html`<section class="room-plan" aria-labelledby="plan-h">
    <h2 id="plan-h">Management plan</h2>
    ${defs.map((d) => html`<${PlanSection} key=${d.name} referralId=${referralId} name=${d.name} label=${d.label}
      section=${sections[d.name] || { revision: 0, text: '', by: '' }} />`)}
  </section>`;
}

// PlanSection shows one section; Edit opens it, Save sends it against the
// revision it was opened at. Someone else's save in between is a conflict:
// their text and this user's side by side, to take one or the other.
function PlanSection({ referralId, name, label, section }) {
  const [mode, setMode] = useState('view'); // view, edit, conflict
  const [draft, setDraft] = useState('');
  const [base, setBase] = useState(0);
  const [current, setCurrent] = useState(null); // the conflict's {revision, text}
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  // What this browser saved, shown until its own event arrives.
  const [saved, setSaved] = useState(null);
  const shown = saved && saved.revision > section.revision ? { ...saved, by: 'you' } : section;
  const inputId = 'plan-' + name;

  const save = async (text, baseRevision) => {
    setBusy(true);
    setError(null);
    const r = await live.command({ type: 'plan_edit', referral: referralId, section: name, base_revision: baseRevision, text });
    setBusy(false);
    if (r.ok) {
      setSaved({ revision: baseRevision + 1, text, at: new Date().toISOString() });
      setMode('view');
      setCurrent(null);
    } else if (r.error.code === 'conflict' && r.error.current) {
      setDraft(text);
      setCurrent(r.error.current);
      setMode('conflict');
    } else {
      setError({ ...r.error, field: r.error.field === 'text' ? inputId : r.error.field });
    }
  };
  const edit = () => {
    setDraft(shown.text);
    setBase(shown.revision);
    setError(null);
    setMode('edit');
  };

  return html`<section class="plan-section card" data-section=${name} aria-labelledby=${inputId + '-h'}>
    <h3 id=${inputId + '-h'}>${label}</h3>
    <p class="plan-meta muted">${shown.revision ? `Revision ${shown.revision}` + (shown.by ? ` · ${shown.by}` : '') + (shown.at ? ` · ${format.time(shown.at)}` : '') : 'Not written yet'}</p>
    ${mode === 'view' ? html`
      ${shown.text ? html`<p class="plan-text">${shown.text}</p>` : ''}
      <button type="button" onClick=${edit} aria-label=${'Edit ' + label}>Edit</button>` : ''}
    ${mode === 'edit' ? html`<form onSubmit=${(e) => { e.preventDefault(); save(draft, base); }}>
      <${ErrorSummary} error=${error && error.field !== inputId ? error : null} />
      <${Field} id=${inputId} label=${'Edit ' + label} error=${error}>
        <textarea id=${inputId} rows="4" maxlength="20000" value=${draft} aria-describedby=${describedBy(inputId, error)}
          onInput=${(e) => setDraft(e.target.value)}></textarea>
      </${Field}>
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Saving…' : 'Save'}</button>
      <button type="button" class="link" onClick=${() => setMode('view')}>Cancel</button>
    </form>` : ''}
    ${mode === 'conflict' ? html`<${PlanConflict} label=${label} section=${section} current=${current} mine=${draft} busy=${busy}
      onTheirs=${() => { setMode('view'); setCurrent(null); }}
      onMine=${() => save(draft, current.revision)} />` : ''}
  </section>`;
}

function PlanConflict({ label, section, current, mine, busy, onTheirs, onMine }) {
  // Their name is on the plan_edit event of that revision, once it is here.
  const who = section.revision === current.revision && section.by ? section.by : 'Someone else';
  return html`<div class="plan-conflict" role="alert">
    <p class="plan-conflict-title"><strong>${who} changed this section first.</strong> Choose which text to keep.</p>
    <div class="plan-conflict-cols">
      <div class="plan-theirs"><h4>Their version (revision ${current.revision})</h4><p class="plan-text">${current.text || '(empty)'}</p></div>
      <div class="plan-mine"><h4>Your version</h4><p class="plan-text">${mine || '(empty)'}</p></div>
    </div>
    <button type="button" onClick=${onTheirs} disabled=${busy}>Use theirs</button>
    <button type="button" class="primary" onClick=${onMine} disabled=${busy}>${busy ? 'Saving…' : `Save mine over revision ${current.revision}`}</button>
  </div>`;
}

// ---- Status actions ----

function Actions({ referralId, status, allowed, bedTypes, outcomes }) {
  const [open, setOpen] = useState(null);
  const [done, setDone] = useState('');
  if (!allowed.length && !done) return '';
  const shown = open && allowed.includes(open) ? open : null;
  return html`<section class="room-actions card" aria-labelledby="actions-h">
    <h2 id="actions-h">Actions</h2>
    <p class="muted" role="status">${done}</p>
    <div class="action-buttons">
      ${allowed.map((to) => html`<button type="button" data-to=${to} aria-expanded=${shown === to ? 'true' : 'false'}
        class=${to === 'declined' || to === 'cancelled' ? 'danger' : ''}
        onClick=${() => { setDone(''); setOpen(shown === to ? null : to); }}>${actionLabels[to]}</button>`)}
    </div>
    ${shown ? html`<${TransitionForm} key=${shown + status} referralId=${referralId} to=${shown} bedTypes=${bedTypes}
      outcomes=${outcomes} onCancel=${() => setOpen(null)}
      onDone=${(to) => {
        // Only the form of the move that was acknowledged closes: its event
        // may arrive first, and the user may have opened the next move's.
        setOpen((o) => (o === to ? null : o));
        setDone('Moved to ' + format.human(to) + '.');
      }} />` : ''}
  </section>`;
}

// TransitionForm asks for what a move needs: a reason, an outcome's fields.
// The server's error is shown at the field it names ("reason",
// "outcome.bed_type").
function TransitionForm({ referralId, to, bedTypes, outcomes, onDone, onCancel }) {
  const needsReason = !!moves[to].reason;
  const fields = outcomeFields[to] || [];
  const [reason, setReason] = useState('');
  const [values, setValues] = useState(() => initialOutcome(to, outcomes));
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const ids = ['tr-reason', ...fields.map((f) => 'tr-outcome-' + f.key)];
  // The form's own ids for the fields the API names.
  const fieldError = error && { ...error, field: error.field ? 'tr-' + error.field.replace('.', '-') : '' };

  useEffect(() => {
    if (fieldError && ids.includes(fieldError.field)) document.getElementById(fieldError.field)?.focus();
  }, [error]);

  const submit = async (e) => {
    e.preventDefault();
    const frame = { type: 'transition', referral: referralId, to };
    if (needsReason) frame.reason = reason.trim();
    if (fields.length) frame.outcome = outcomeOf(fields, values);
    setBusy(true);
    setError(null);
    const r = await live.command(frame);
    setBusy(false);
    if (r.ok) onDone(to);
    else setError(r.error);
  };
  const set = (key) => (e) => setValues({ ...values, [key]: e.target.value });

  return html`<form class="transition-form" onSubmit=${submit} novalidate>
    <h3>${actionLabels[to]}</h3>
    <${ErrorSummary} error=${fieldError && !ids.includes(fieldError.field) ? error : null} />
    ${needsReason ? html`<${Field} id="tr-reason" label="Reason" required error=${fieldError}>
      <textarea id="tr-reason" rows="3" maxlength="10000" value=${reason} aria-describedby=${describedBy('tr-reason', fieldError)}
        onInput=${(e) => setReason(e.target.value)}></textarea>
    </${Field}>` : ''}
    ${fields.map((f) => html`<${OutcomeInput} f=${f} value=${values[f.key] || ''} onValue=${set(f.key)}
      bedTypes=${bedTypes} error=${fieldError} />`)}
    <button type="submit" class="primary tr-submit" disabled=${busy}>${busy ? 'Saving…' : actionLabels[to]}</button>
    <button type="button" class="link" onClick=${onCancel}>Cancel</button>
  </form>`;
}

function OutcomeInput({ f, value, onValue, bedTypes, error }) {
  const id = 'tr-outcome-' + f.key;
  const common = { id, value, 'aria-describedby': describedBy(id, error) };
  let input;
  if (f.kind === 'bed_type') {
    input = html`<select ...${common} onChange=${onValue}>
      <option value="">Choose a bed type</option>
      ${bedTypes.map((b) => html`<option value=${b}>${format.human(b)}</option>`)}
    </select>`;
  } else if (f.kind === 'time') {
    input = html`<input type="datetime-local" ...${common} onInput=${onValue} />`;
  } else if (f.kind === 'multiline') {
    input = html`<textarea rows="3" ...${common} onInput=${onValue}></textarea>`;
  } else {
    input = html`<input type="text" ...${common} onInput=${onValue} />`;
  }
  return html`<${Field} id=${id} label=${f.label} required=${f.required} error=${error}>${input}</${Field}>`;
}

// initialOutcome fills in what is known: the bed type accepted for, and
// now as the arrival time.
function initialOutcome(to, outcomes) {
  if (to === 'transfer_booked') return { bed_type: (outcomes.accepted && outcomes.accepted.bed_type) || '' };
  if (to === 'transferred') return { arrived_at: localInput(new Date()) };
  return {};
}

// outcomeOf is the outcome to send: the fields filled in, times as RFC
// 3339. A field left empty is left out, for the server to name.
function outcomeOf(fields, values) {
  const out = {};
  for (const f of fields) {
    const v = (values[f.key] || '').trim();
    if (!v) continue;
    if (f.kind === 'time') {
      const t = new Date(v);
      out[f.key] = isNaN(t) ? v : t.toISOString();
    } else {
      out[f.key] = v;
    }
  }
  return out;
}

// localInput is a date as a datetime-local input's value, in local time.
function localInput(d) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}
