// Log in, register, and the page a new account waits on.
import { html, useState } from '../vendor/htm-preact.js';
import { api } from '../lib/api.js';
import { navigate } from '../lib/router.js';
import { useSession } from '../lib/session.js';
import { Field, ErrorSummary, describedBy, useTitle } from '../lib/ui.js';

export function Login() {
  useTitle('Log in');
  const { reload } = useSession();
  const [email, setEmail] = useState('');
  const [password, setPassword] = useState('');
  const [totp, setTotp] = useState('');
  const [needTotp, setNeedTotp] = useState(false);
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  const submit = async (e) => {
    e.preventDefault();
    setBusy(true);
    const body = { email, password };
    if (needTotp) body.totp = totp;
    const r = await api.post('/api/session', body);
    setBusy(false);
    if (r.ok) {
      await reload();
      navigate(r.data.user.status === 'pending' ? '/pending' : '/referrals', true);
      return;
    }
    if (r.error.field === 'totp' && !needTotp) {
      setNeedTotp(true);
      setError(null);
      return;
    }
    setError(r.error);
  };
  return html`<main id="main" class="narrow">
    <h1>Log in to Patient Pass</h1>
    <p>Secure referrals between hospital teams. Use the email you registered with.</p>
    <${ErrorSummary} error=${error} />
    <form onSubmit=${submit} novalidate>
      <${Field} id="email" label="Email" error=${error}>
        <input id="email" name="email" type="email" autocomplete="username" required value=${email}
          aria-describedby=${describedBy('email', error)} onInput=${(e) => setEmail(e.target.value)} />
      </${Field}>
      <${Field} id="password" label="Password" error=${error}>
        <input id="password" name="password" type="password" autocomplete="current-password" required value=${password}
          aria-describedby=${describedBy('password', error)} onInput=${(e) => setPassword(e.target.value)} />
      </${Field}>
      ${needTotp ? html`<${Field} id="totp" label="Code from your authenticator app" error=${error} hint="Six digits, or a recovery code">
        <input id="totp" name="totp" inputmode="numeric" autocomplete="one-time-code" required value=${totp} autofocus
          aria-describedby=${describedBy('totp', error, true)} onInput=${(e) => setTotp(e.target.value)} />
      </${Field}>` : ''}
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Logging in…' : 'Log in'}</button>
    </form>
    <p>New to Patient Pass? <a href="/register">Register</a> with your GMC, NMC or HCPC number.</p>
  </main>`;
}

export function Register() {
  useTitle('Register');
  const [f, setF] = useState({ name: '', email: '', password: '', professional_body: 'GMC', registration_number: '', organisation: '', role: 'clinician' });
  const [error, setError] = useState(null);
  const [done, setDone] = useState(false);
  const set = (k) => (e) => setF({ ...f, [k]: e.target.value });
  const submit = async (e) => {
    e.preventDefault();
    const r = await api.post('/api/register', f);
    if (r.ok) { setDone(true); return; }
    setError(r.error);
  };
  if (done) return html`<main id="main" class="narrow"><h1>Thank you</h1>
    <p>Your account is waiting for an administrator of your organisation to check your professional registration. You will be able to log in once it is approved.</p>
    <p><a href="/login">Back to log in</a></p></main>`;
  const input = (id, label, type = 'text', extra = {}) => html`<${Field} id=${id} label=${label} error=${error} required=${true} hint=${extra.hint}>
    <input id=${id} type=${type} required value=${f[id]} onInput=${set(id)} autocomplete=${extra.autocomplete}
      aria-describedby=${describedBy(id, error, extra.hint)} />
  </${Field}>`;
  return html`<main id="main" class="narrow">
    <h1>Register</h1>
    <${ErrorSummary} error=${error} fields=${Object.keys(f)} />
    <form onSubmit=${submit} novalidate>
      ${input('name', 'Full name', 'text', { autocomplete: 'name' })}
      ${input('email', 'Work email', 'email', { autocomplete: 'email' })}
      ${input('password', 'Password', 'password', { autocomplete: 'new-password', hint: 'At least 12 characters' })}
      <${Field} id="professional_body" label="Professional body" error=${error} required=${true}>
        <select id="professional_body" value=${f.professional_body} onChange=${set('professional_body')}>
          <option value="GMC">GMC (doctors)</option><option value="NMC">NMC (nurses)</option><option value="HCPC">HCPC</option>
        </select>
      </${Field}>
      ${input('registration_number', 'Registration number', 'text', { hint: 'GMC: 7 digits. NMC PIN: such as 12A3456B.' })}
      ${input('organisation', 'Organisation ODS code', 'text', { hint: 'Such as RJR for the Countess of Chester' })}
      <${Field} id="role" label="Role" error=${error} required=${true}>
        <select id="role" value=${f.role} onChange=${set('role')}>
          <option value="clinician">Referring clinician</option><option value="specialist">Specialist</option>
          <option value="coordinator">Triage coordinator</option><option value="bed_manager">Bed manager</option>
        </select>
      </${Field}>
      <button type="submit" class="primary">Register</button>
    </form>
    <p><a href="/login">I already have an account</a></p>
  </main>`;
}

export function Pending() {
  useTitle('Waiting for approval');
  return html`<main id="main" class="narrow"><h1>Waiting for approval</h1>
    <p>An administrator of your organisation checks your professional registration before you can use Patient Pass. Try again later.</p>
    <p><a href="/login">Back to log in</a></p></main>`;
}
