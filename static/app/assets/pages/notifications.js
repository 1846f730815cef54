import { html } from '../vendor/htm-preact.js';

export function Notifications() {
  return html`<main id="main"><h1>Notifications</h1></main>`;
}

export function Bell() {
  return html`<a href="/notifications" class="bell" aria-label="Notifications">🔔</a>`;
}
