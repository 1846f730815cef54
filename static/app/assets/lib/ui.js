// Small shared pieces: a field with its label and the API's error for it,
// an error summary, page titles.
import { html, useEffect } from '../vendor/htm-preact.js';

// Field renders a labelled input; error is the API error (shown when its
// field is this one), hint is help text.
export function Field({ id, label, error, hint, required, children }) {
  const mine = error && error.field === id ? error.message : '';
  return html`<div class=${'field' + (mine ? ' has-error' : '')}>
    <label for=${id}>${label}${required ? html` <span class="req" aria-hidden="true">*</span>` : ''}</label>
    ${hint ? html`<p class="hint" id=${id + '-hint'}>${hint}</p>` : ''}
    ${mine ? html`<p class="error-text" id=${id + '-error'} role="alert">${mine}</p>` : ''}
    ${children}
  </div>`;
}

// describedBy is the aria-describedby of a field's input.
export function describedBy(id, error, hint) {
  const ids = [];
  if (hint) ids.push(id + '-hint');
  if (error && error.field === id) ids.push(id + '-error');
  return ids.join(' ') || undefined;
}

// ErrorSummary shows an error that names no field (or all of them).
export function ErrorSummary({ error, fields = [] }) {
  if (!error) return '';
  const atField = error.field && fields.includes(error.field);
  return html`<div class="error-summary" role="alert">
    ${atField ? html`There is a problem: <a href=${'#' + error.field}>${error.message}</a>` : error.message}
  </div>`;
}

export function useTitle(t) {
  useEffect(() => { document.title = t ? t + ' · Patient Pass' : 'Patient Pass'; }, [t]);
}
