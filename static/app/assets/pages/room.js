import { html } from '../vendor/htm-preact.js';

export function Room() {
  return html`<main id="main"><h1>Referral</h1><p>Coming soon.</p></main>`;
}
