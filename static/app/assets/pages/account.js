// Your account: the sessions you have open (end one left logged in
// elsewhere) and two-factor authentication (TOTP), which admins must set
// up before anything else.
import { html, useState, useEffect } from '../vendor/htm-preact.js';
import { api } from '../lib/api.js';
import { time, human } from '../lib/format.js';
import { useSession } from '../lib/session.js';
import { Field, ErrorSummary, describedBy, useTitle } from '../lib/ui.js';
import qrcode from '../vendor/qrcode-generator.js';

// qrDataURL draws text as a QR code, a GIF data: URL (the CSP allows
// img-src data:). Error correction M; the type is chosen to fit.
function qrDataURL(text) {
  const qr = qrcode(0, 'M');
  qr.addData(text);
  qr.make();
  return qr.createDataURL(5, 4);
}

// browserName is a short reading of a user agent, for the sessions list.
function browserName(ua) {
  if (!ua) return 'Unknown browser';
  const b = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome' : /Safari\//.test(ua) ? 'Safari' : 'Browser';
  const os = /Windows/.test(ua) ? 'Windows' : /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS' : /Linux/.test(ua) ? 'Linux' : '';
  return os ? b + ' on ' + os : b;
}

function Sessions() {
  const [sessions, setSessions] = useState(null);
  const [error, setError] = useState(null);
  const load = async () => {
    const r = await api.get('/api/me/sessions');
    if (r.ok) setSessions(r.data.sessions || []); else setError(r.error);
  };
  useEffect(() => { load(); }, []);
  const end = async (s) => {
    setError(null);
    const r = await api.del('/api/me/sessions/' + encodeURIComponent(s.id));
    if (!r.ok) { setError(r.error); return; }
    load();
  };
  return html`<section class="card" aria-labelledby="sessions-title">
    <h2 id="sessions-title">Where you are logged in</h2>
    <${ErrorSummary} error=${error} />
    ${sessions === null ? html`<p class="loading">Loading…</p>` : html`<table class="responsive sessions">
      <thead><tr><th>Browser</th><th>Address</th><th>Logged in</th><th>Last active</th><th><span class="visually-hidden">Action</span></th></tr></thead>
      <tbody>${sessions.map((s) => html`<tr key=${s.id} data-id=${s.id}>
        <td title=${s.user_agent}>${browserName(s.user_agent)}${s.current ? html` <strong>(this browser)</strong>` : ''}</td>
        <td>${s.client_addr}</td>
        <td>${time(s.created_at)}</td>
        <td>${time(s.last_seen_at)}</td>
        <td>${s.current ? '' : html`<button onClick=${() => end(s)}>Log out there</button>`}</td>
      </tr>`)}</tbody>
    </table>`}
  </section>`;
}

function TwoFactor() {
  const { me, reload } = useSession();
  const [enrolment, setEnrolment] = useState(null); // {secret, otpauth_uri}
  const [code, setCode] = useState('');
  const [recovery, setRecovery] = useState(null);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const start = async () => {
    setBusy(true);
    setError(null);
    const r = await api.post('/api/me/totp');
    setBusy(false);
    if (r.ok) setEnrolment({ ...r.data, qr: qrDataURL(r.data.otpauth_uri) }); else setError(r.error);
  };
  const confirm = async (e) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const r = await api.post('/api/me/totp/confirm', { code: code.replace(/\s/g, '') });
    setBusy(false);
    if (!r.ok) { setError(r.error.field === 'code' || !r.error.field ? { ...r.error, field: 'totp-code' } : r.error); return; }
    setRecovery(r.data.recovery_codes || []);
    setEnrolment(null);
    reload();
  };

  if (recovery) {
    return html`<section class="card totp" aria-labelledby="totp-title">
      <h2 id="totp-title">Two-factor authentication is on</h2>
      <p role="status"><strong>Keep these recovery codes somewhere safe now: they are shown only once.</strong>
        Each one logs you in once if you lose your authenticator.</p>
      <ul class="recovery-codes">${recovery.map((c) => html`<li><code>${c}</code></li>`)}</ul>
      <p><a href="/">Continue to Patient Pass</a></p>
    </section>`;
  }
  if (me.totp_enrolled) {
    return html`<section class="card totp" aria-labelledby="totp-title">
      <h2 id="totp-title">Two-factor authentication</h2>
      <p>On. You are asked for a code from your authenticator app each time you log in. If you lose it, use a recovery code, or ask an admin of your organisation to reset it.</p>
    </section>`;
  }
  return html`<section class="card totp" aria-labelledby="totp-title">
    <h2 id="totp-title">Two-factor authentication</h2>
    <${ErrorSummary} error=${error} fields=${['totp-code']} />
    ${!enrolment ? html`
      <p>Protect your account with a code from an authenticator app (such as Microsoft Authenticator or Google Authenticator) as well as your password.</p>
      <button class="primary" disabled=${busy} onClick=${start}>Set up two-factor authentication</button>`
    : html`
      <ol class="totp-steps">
        <li>Scan this QR code with your authenticator app:
          <div><img class="qr" src=${enrolment.qr} width="200" height="200" alt="QR code for setting up your authenticator app" /></div>
          <p>Or enter this key by hand: <code class="secret">${enrolment.secret.replace(/(.{4})/g, '$1 ').trim()}</code></p>
        </li>
        <li>
          <form onSubmit=${confirm} novalidate>
            <${Field} id="totp-code" label="Enter the 6-digit code the app shows" error=${error}>
              <input id="totp-code" inputmode="numeric" autocomplete="one-time-code" maxlength="8" required value=${code}
                aria-describedby=${describedBy('totp-code', error)} onInput=${(e) => setCode(e.target.value)} />
            </${Field}>
            <button type="submit" class="primary" disabled=${busy}>${busy ? 'Checking…' : 'Turn on two-factor authentication'}</button>
          </form>
        </li>
      </ol>`}
  </section>`;
}

export function Account() {
  useTitle('Your account');
  const { me } = useSession();
  const u = me.user;
  const mustEnrol = me.totp_required && !me.totp_enrolled;
  return html`<main id="main" class="account">
    <h1>Your account</h1>
    ${mustEnrol ? html`<div class="error-summary" role="alert">As an admin you must set up two-factor authentication before you can use the rest of Patient Pass.</div>` : ''}
    <dl class="card account-facts">
      <dt>Name</dt><dd>${u.name}</dd>
      <dt>Email</dt><dd>${u.email}</dd>
      <dt>Registration</dt><dd>${u.professional_body} ${u.registration_number}</dd>
      <dt>Organisation</dt><dd>${u.organisation}</dd>
      <dt>Roles</dt><dd>${(u.roles || []).map(human).join(', ')}</dd>
    </dl>
    <${TwoFactor} />
    <${Sessions} />
  </main>`;
}
