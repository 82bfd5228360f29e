// Support access (/v1/support/requests): the provider's support staff ask
// for time-bounded, read-only access to a customer's tenant, with a
// reason; an admin of that tenant approves or denies it, and can end a
// grant early. Every step is in the tenant's audit log.
import {h, add, clear, fmtTime, badge, section} from '../dom.js';

const DURATIONS = [['15 minutes', '15m'], ['1 hour', '1h'], ['4 hours', '4h'], ['8 hours', '8h']];
const STATE_KIND = {pending: 'denied', approved: 'ok', denied: 'failed', revoked: 'off', expired: 'off'};

function requestForm(ctx) {
  const out = h('div', {});
  const form = h('form', {class: 'inline-form', id: 'support-form'},
    h('label', {for: 'support-tenant'}, 'Tenant'), h('input', {id: 'support-tenant', name: 'tenant', required: true, placeholder: 'the customer\'s tenant'}),
    h('label', {for: 'support-reason'}, 'Reason'), h('input', {id: 'support-reason', name: 'reason', required: true, placeholder: 'ticket and what you need to see'}),
    h('label', {for: 'support-duration'}, 'For'), h('select', {id: 'support-duration', name: 'duration'},
      DURATIONS.map(([label, v]) => h('option', {value: v, selected: v === '1h'}, label))),
    h('button', {type: 'submit', class: 'button primary'}, 'Ask for access'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      const r = await ctx.api.post(ctx.api.paths.support, {
        tenant: form.elements.tenant.value.trim(), reason: form.elements.reason.value.trim(), duration: form.elements.duration.value});
      add(out, h('div', {class: 'alert alert-ok', role: 'status', id: 'support-requested', 'data-request': r.id},
        `Request ${r.id} for tenant ${r.tenant} is ${r.state}: an admin of that tenant decides it.`));
      form.reset();
    } catch (e) {
      add(out, ctx.errorBox(e));
    }
  });
  return section('Ask for access', {id: 'support-ask'},
    h('p', {class: 'muted'}, 'For the provider\'s support staff: read-only access to a customer\'s tenant, for a limited time, once one of its admins approves.'),
    form, out);
}

function decisions(ctx) {
  const body = h('tbody', {});
  const err = h('div', {});
  const decide = async (r, what) => {
    clear(err);
    try {
      await ctx.api.post(ctx.api.paths.supportDecision(r.id, what));
      await load();
    } catch (e) {
      add(err, ctx.errorBox(e));
    }
  };
  const load = async () => {
    const list = (await ctx.api.get(ctx.api.paths.support)) || [];
    add(clear(body), list.map((r) => h('tr', {'data-request': r.id, 'data-state': r.state},
      h('td', {}, fmtTime(r.created)),
      h('td', {class: 'mono'}, r.requester),
      h('td', {}, r.reason),
      h('td', {}, r.duration),
      h('td', {}, badge(r.state, STATE_KIND[r.state])),
      h('td', {class: 'mono'}, r.approver || '—'),
      h('td', {}, r.state === 'approved' ? fmtTime(r.expires) : '—'),
      h('td', {class: 'actions'},
        r.state === 'pending' ? [
          h('button', {type: 'button', class: 'button primary', 'data-action': 'approve', onclick: () => decide(r, 'approve')}, 'Approve'), ' ',
          h('button', {type: 'button', class: 'button', 'data-action': 'deny', onclick: () => decide(r, 'deny')}, 'Deny')] : null,
        r.state === 'approved' ? h('button', {type: 'button', class: 'button danger', 'data-action': 'revoke', onclick: () => decide(r, 'revoke')}, 'End now') : null))));
    if (list.length === 0) add(body, h('tr', {}, h('td', {colspan: 8, class: 'muted'}, 'No support-access request for your tenant.')));
  };
  const node = section('Requests for your tenant', {id: 'support-requests'},
    h('p', {class: 'muted'}, 'Approve only what a support ticket needs; a grant gives viewer access and ends by itself.'),
    err,
    h('table', {class: 'grid', id: 'support'},
      h('thead', {}, h('tr', {}, ['Asked', 'By', 'Reason', 'For', 'State', 'Decided by', 'Until', ''].map((t) => h('th', {scope: 'col'}, t)))),
      body));
  return {node, load};
}

export default {
  path: '/support',
  title: 'Support access',
  nav: true,
  navLabel: 'Support',
  role: 'viewer',
  async render(ctx) {
    add(ctx.main, h('h1', {}, 'Support access'));
    if (ctx.allows(ctx.me.role, 'admin')) {
      const d = decisions(ctx);
      add(ctx.main, d.node);
      await d.load();
    }
    add(ctx.main, requestForm(ctx));
  },
};
