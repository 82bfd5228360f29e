// The audit log (GET /v1/audit, admins): every API call and refusal,
// sign-in, token event, agent connection and job state change of the
// tenant, newest first, filtered by actor, action (a prefix), outcome and
// time. The filters live in the page's address, so a filtered view can be
// shared.
import {h, add, fmtTime, badge, table} from '../dom.js';

const FIELDS = ['actor', 'action', 'outcome', 'since', 'until', 'limit'];

// toLocalInput turns an RFC 3339 time into a datetime-local value.
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function outcomeBadge(o) {
  return badge(o, o === 'success' ? 'ok' : o === 'denied' ? 'denied' : 'failed');
}

export default {
  path: '/audit',
  title: 'Audit log',
  nav: true,
  navLabel: 'Audit',
  role: 'admin',
  async render(ctx) {
    const q = ctx.query;
    const form = h('form', {class: 'card filters', id: 'audit-filters'},
      h('label', {}, 'Actor', h('input', {name: 'actor', value: q.get('actor') || '', placeholder: 'user or agent ID'})),
      h('label', {}, 'Action', h('input', {name: 'action', value: q.get('action') || '', placeholder: 'e.g. job. or auth.signin'})),
      h('label', {}, 'Outcome', h('select', {name: 'outcome'}, ['', 'success', 'denied', 'failed'].map((o) =>
        h('option', {value: o, selected: (q.get('outcome') || '') === o}, o || 'any')))),
      h('label', {}, 'Since', h('input', {name: 'since', type: 'datetime-local', value: toLocalInput(q.get('since'))})),
      h('label', {}, 'Until', h('input', {name: 'until', type: 'datetime-local', value: toLocalInput(q.get('until'))})),
      h('label', {}, 'Limit', h('input', {name: 'limit', type: 'number', min: 1, max: 1000, value: q.get('limit') || '100'})),
      h('div', {class: 'buttons'},
        h('button', {type: 'submit', class: 'button primary', id: 'audit-apply'}, 'Apply'),
        h('a', {class: 'button', href: '#/audit'}, 'Clear')));
    form.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const next = new URLSearchParams();
      for (const f of FIELDS) {
        let v = form.elements[f].value.trim();
        if ((f === 'since' || f === 'until') && v) v = new Date(v).toISOString();
        if (v) next.set(f, v);
      }
      ctx.go('/audit' + (next.toString() ? '?' + next.toString() : ''));
    });
    const api = new URLSearchParams();
    for (const f of FIELDS) if (q.get(f)) api.set(f, q.get(f));
    add(ctx.main, h('h1', {}, 'Audit log'), form);
    const entries = await ctx.api.get(ctx.api.paths.audit + (api.toString() ? '?' + api.toString() : ''));
    const rows = (entries || []).map((e) => h('tr', {'data-seq': e.Seq, 'data-action': e.Action, 'data-outcome': e.Outcome},
      h('td', {class: 'num'}, String(e.Seq)),
      h('td', {}, fmtTime(e.At)),
      h('td', {}, e.ActorKind),
      h('td', {class: 'mono'}, e.Redacted ? h('em', {}, 'redacted') : e.Actor),
      h('td', {class: 'mono'}, e.Action),
      h('td', {class: 'mono'}, e.Target || ''),
      h('td', {}, outcomeBadge(e.Outcome)),
      h('td', {class: 'mono'}, e.Remote || ''),
      h('td', {class: 'small'}, Object.entries(e.Details || {}).map(([k, v]) => `${k}=${v}`).join(' '))));
    add(ctx.main, 
      h('p', {class: 'muted small', id: 'audit-count'}, `${rows.length} entries, newest first${rows.length >= Number(q.get('limit') || 100) ? ' (the limit: narrow the filters or raise it, up to 1000)' : ''}.`),
      table(['#', 'Time', 'Kind', 'Actor', 'Action', 'Target', 'Outcome', 'From', 'Details'], rows, {id: 'audit'}));
    if (rows.length === 0) add(ctx.main, h('p', {class: 'muted'}, 'No entry matches.'));
  },
};
