import { html } from '../vendor/htm-preact.js';

export function Board() {
  return html`<main id="main"><h1>Triage board</h1><p>Coming soon.</p></main>`;
}
