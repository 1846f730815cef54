import { html } from '../vendor/htm-preact.js';

export function Admin() {
  return html`<main id="main"><h1>Admin</h1><p>Coming soon.</p></main>`;
}
