// Incidents as the wall and #/incidents show them: alarms (an unreachable
// node under the outage that cut it off), and the acknowledge cell.
import { t, fmtTime, fmtDateTime } from './i18n.js';
import { postJSON } from './api.js';
import * as paths from './paths.js';
import { h } from './dom.js';
import { can } from './session.js';
import { errorText } from './errors.js';

export const INCIDENTS_REFRESH_MS = 5000; // incidents are polled (the live feed carries the overview only)
export const SEVERITIES = ['critical', 'major', 'minor', 'info'];
export const OUTAGE_KINDS = new Set(['down', 'group_down', 'unreachable', 'flapping']);
const SEV_RANK = { critical: 0, major: 1, minor: 2, info: 3 };

/**
 * Open incidents as alarms (copies, each with `under`: the nodes cut off by
 * it). An unreachable node is not an alarm of its own: it is listed under
 * its root's open incident (the root's `children` and the unreachable
 * incidents naming it as `root_cause`); only when the root has no open
 * incident does it stand alone. Unacknowledged first, then by severity,
 * then newest.
 */
export function alarms(list) {
  const open = list.filter((i) => i.resolved_ms == null);
  const roots = new Map(open.filter((i) => i.kind !== 'unreachable').map((i) => [i.node_id, i]));
  const under = new Map();
  const top = [];
  for (const i of open) {
    const root = i.kind === 'unreachable' && i.root_cause ? roots.get(i.root_cause) : null;
    if (root) {
      if (!under.has(root.id)) under.set(root.id, []);
      under.get(root.id).push(i.node_id);
    } else top.push({ ...i });
  }
  for (const i of top) i.under = [...new Set([...(i.children || []), ...(under.get(i.id) || [])])].sort();
  return top.sort((a, b) => (a.acked_ms == null ? 0 : 1) - (b.acked_ms == null ? 0 : 1)
    || (SEV_RANK[a.severity] ?? 9) - (SEV_RANK[b.severity] ?? 9)
    || b.started_ms - a.started_ms || b.id - a.id);
}

/**
 * The "acknowledged" cell of an incident: who and when, or (open and not
 * acknowledged) the button that POSTs the acknowledgement (the server
 * records the logged-in account's display name) and shows its answer;
 * `onDone(incident)` after. Roles that may not acknowledge see
 * "belum diterima" instead of the button.
 */
export function ackCell(inc, onDone) {
  const cell = h('span', { class: 'ack-cell' });
  const show = (i) => {
    if (i.acked_ms != null) {
      cell.replaceChildren(h('span', {
        class: 'acked', 'data-testid': `acked-${i.id}`, 'data-by': i.acked_by, title: fmtDateTime(i.acked_ms),
        text: t('ack.by', { by: i.acked_by, t: fmtTime(i.acked_ms) }),
      }));
    } else if (i.resolved_ms == null && !can.operate()) {
      cell.replaceChildren(h('span', { class: 'unacked', 'data-testid': `unacked-${i.id}`, text: t('ack.none') }));
    } else if (i.resolved_ms == null) {
      const btn = h('button', {
        type: 'button', class: 'btn ack', 'data-testid': `ack-${i.id}`, 'aria-label': t('ack.button.label', { node: i.node_id }), text: t('ack.button'),
      });
      const err = h('span', { class: 'form-error', role: 'alert', 'data-testid': `ack-error-${i.id}`, hidden: true });
      btn.addEventListener('click', async () => {
        btn.disabled = true;
        err.hidden = true;
        try {
          const updated = await postJSON(paths.incidentAck(i.id), undefined);
          show(updated);
          onDone?.(updated);
        } catch (e) {
          btn.disabled = false;
          err.textContent = t('ack.error', { e: errorText(e) });
          err.hidden = false;
        }
      });
      cell.replaceChildren(btn, err);
    } else {
      cell.replaceChildren('—');
    }
  };
  show(inc);
  return cell;
}
