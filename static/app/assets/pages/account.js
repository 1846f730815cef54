import { html } from '../vendor/htm-preact.js';

export function Account() {
  return html`<main id="main"><h1>Your account</h1><p>Coming soon.</p></main>`;
}
