import { html } from '../vendor/htm-preact.js';

export function WallboardPage() {
  return html`<main id="main" class="wallboard"><h1>Wallboard</h1></main>`;
}
