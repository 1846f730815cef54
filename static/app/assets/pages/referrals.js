import { html } from '../vendor/htm-preact.js';

export function Referrals() {
  return html`<main id="main"><h1>Referrals</h1><p>Coming soon.</p></main>`;
}
