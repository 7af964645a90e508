// Modal dialogs (confirmations, small forms) and the box that shows a secret
// once with a copy button. Native <dialog>: focus is trapped, Escape cancels.
import { t } from './i18n.js';
import { h } from './dom.js';

let seq = 0;

/**
 * Open a modal form. `content`: nodes between the title and the buttons;
 * `submit`: async () → result, run on OK (Enter too); what it throws is shown
 * in the dialog, which stays open. Resolves to the result, or null when
 * cancelled. `testid` names the dialog and its parts (`-ok`, `-cancel`,
 * `-error`).
 */
export function openDialog({ title, content = [], ok = t('dlg.ok'), cancel = t('dlg.cancel'), danger = false, testid = 'dialog', submit, focusCancel = false }) {
  return new Promise((resolve) => {
    const id = `dlg-title-${++seq}`;
    const error = h('p', { class: 'form-error', role: 'alert', 'data-testid': `${testid}-error`, hidden: true });
    const okBtn = h('button', { type: 'submit', class: `btn ${danger ? 'danger' : 'primary'}`, 'data-testid': `${testid}-ok`, text: ok });
    const cancelBtn = h('button', { type: 'button', class: 'btn', 'data-testid': `${testid}-cancel`, text: cancel });
    const dlg = h('dialog', { class: 'dlg', 'data-testid': testid, 'aria-labelledby': id });
    const form = h('form', { method: 'dialog', novalidate: true },
      h('h2', { id, text: title }), ...content, error,
      h('div', { class: 'dialog-buttons' }, cancelBtn, okBtn));
    let result = null;
    cancelBtn.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      if (!submit) { result = true; dlg.close(); return; }
      okBtn.disabled = true;
      error.hidden = true;
      try {
        const r = await submit();
        result = r === undefined ? true : r;
        dlg.close();
      } catch (err) {
        error.textContent = err.message;
        error.hidden = false;
        okBtn.disabled = false;
      }
    });
    dlg.append(form);
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
    const first = form.querySelector('input:not([disabled]):not([readonly]), select, textarea');
    (focusCancel ? cancelBtn : first || okBtn).focus();
  });
}

/** Ask before doing something; resolves true (go ahead) or false. */
export async function confirmDialog({ title, text, ok, danger = true, testid = 'confirm' }) {
  // A destructive action is not one Enter press away: focus starts on Cancel.
  const r = await openDialog({ title, content: [h('p', { class: 'dlg-text', text })], ok, danger, testid, focusCancel: danger });
  return r === true;
}

/** Copy text to the clipboard (the API needs a secure context; else the old way). */
async function copyText(text, input) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch (_) { /* fall back */ }
  input.focus();
  input.select();
  try { return document.execCommand('copy'); } catch (_) { return false; }
}

/**
 * A secret shown once: read-only field (selected on focus) and a copy
 * button that says whether it worked.
 */
export function secretBox(label, value, testid) {
  const id = `secret-${++seq}`;
  const input = h('input', { type: 'text', id, readonly: true, class: 'secret', value, spellcheck: 'false', autocomplete: 'off', 'data-testid': testid });
  const status = h('span', { class: 'copy-status', role: 'status', 'data-testid': `${testid}-copied` });
  const btn = h('button', {
    type: 'button', class: 'btn', 'data-testid': `${testid}-copy`, text: t('secret.copy'),
    onclick: async () => { status.textContent = (await copyText(value, input)) ? t('secret.copied') : t('secret.copyFailed'); },
  });
  input.addEventListener('focus', () => input.select());
  return h('div', { class: 'secret-box' }, h('label', { for: id, text: label }), h('div', { class: 'secret-line' }, input, btn, status));
}
