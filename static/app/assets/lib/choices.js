// Radio groups and checkboxes, shown like ui.Field: a legend or label, help
// text, and the API's error when it names this field (as <id>-error). The
// first radio carries the field's id, so an error summary's link to the
// field lands on the group.
import { html } from '../vendor/htm-preact.js';
import { describedBy } from './ui.js';

// RadioGroup offers options [[value, label, hint?]]; value is the chosen
// one or undefined (none is chosen until the user answers).
export function RadioGroup({ id, legend, hint, error, required, options, value, onChange, inline }) {
  const mine = error && error.field === id ? error.message : '';
  const described = describedBy(id, error, hint);
  return html`<div class=${'field' + (mine ? ' has-error' : '')}>
    <fieldset class=${'choices' + (inline ? ' inline' : '')} aria-describedby=${described}>
      <legend>${legend}${required ? html` <span class="req" aria-hidden="true">*</span>` : ''}</legend>
      ${hint ? html`<p class="hint" id=${id + '-hint'}>${hint}</p>` : ''}
      ${mine ? html`<p class="error-text" id=${id + '-error'} role="alert">${mine}</p>` : ''}
      ${options.map(([v, label, optionHint], i) => {
        const optionId = i === 0 ? id : id + '-' + v;
        return html`<div class="choice">
          <input type="radio" id=${optionId} name=${id} value=${String(v)} checked=${value === v}
            aria-describedby=${optionHint ? optionId + '-hint' : undefined}
            onChange=${() => onChange(v)} />
          <label for=${optionId}>${label}${optionHint ? html`<span class="hint" id=${optionId + '-hint'}>${optionHint}</span>` : ''}</label>
        </div>`;
      })}
    </fieldset>
  </div>`;
}

// YesNo is a RadioGroup for a true/false question with no default answer.
export function YesNo(props) {
  return html`<${RadioGroup} ...${props} inline=${true} options=${[[true, 'Yes'], [false, 'No']]} />`;
}

// Checkbox is a single statement the user confirms.
export function Checkbox({ id, label, hint, error, required, checked, onChange }) {
  const mine = error && error.field === id ? error.message : '';
  return html`<div class=${'field checkbox' + (mine ? ' has-error' : '')}>
    ${mine ? html`<p class="error-text" id=${id + '-error'} role="alert">${mine}</p>` : ''}
    <div class="choice">
      <input type="checkbox" id=${id} checked=${!!checked} required=${required}
        aria-describedby=${describedBy(id, error, hint)} onChange=${(e) => onChange(e.target.checked)} />
      <label for=${id}>${label}${required ? html` <span class="req" aria-hidden="true">*</span>` : ''}</label>
    </div>
    ${hint ? html`<p class="hint" id=${id + '-hint'}>${hint}</p>` : ''}
  </div>`;
}
