import { html } from '../vendor/htm-preact.js';

export function NewReferral() {
  return html`<main id="main"><h1>New referral</h1><p>Coming soon.</p></main>`;
}
