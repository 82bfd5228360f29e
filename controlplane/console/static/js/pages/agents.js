// Agents (GET /v1/agents): connected or not, version, warehouse, last seen,
// the job running now and the tables reported; refreshed every 5 s. Admins
// can issue an enrollment token and revoke an agent.
import {h, add, clear, ago, fmtTime, badge, section} from '../dom.js';

function health(a) {
  if (a.connected) return badge('connected', 'ok');
  return badge('disconnected', 'off');
}

function enrollForm(ctx) {
  const out = h('div', {});
  const form = h('form', {class: 'inline-form', id: 'enroll-form'},
    h('label', {for: 'enroll-agent'}, 'Agent ID'), h('input', {id: 'enroll-agent', name: 'agent', required: true, placeholder: 'acme-prod-1'}),
    h('label', {for: 'enroll-tenant'}, 'Tenant'), h('input', {id: 'enroll-tenant', name: 'tenant', value: ctx.me.tenant}),
    h('button', {type: 'submit', class: 'button'}, 'Create enrollment token'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      const e = await ctx.api.post(ctx.api.paths.enrollments, {agent_id: form.elements.agent.value.trim(), tenant: form.elements.tenant.value.trim()});
      add(out, h('div', {class: 'alert alert-ok', role: 'status'},
        'One-time enrollment token for ', h('strong', {}, e.agent_id), ' (shown once, valid until ', fmtTime(e.expires_at), '):',
        h('pre', {class: 'secret'}, e.token)));
    } catch (e) {
      add(out, ctx.errorBox(e));
    }
  });
  return section('Enroll an agent', {id: 'enroll'}, form, out);
}

export default {
  path: '/agents',
  title: 'Agents',
  nav: true,
  role: 'viewer',
  async render(ctx) {
    const admin = ctx.allows(ctx.me.role, 'admin');
    const body = h('tbody', {});
    const err = h('div', {});
    const status = h('p', {class: 'muted small'});
    add(ctx.main, h('h1', {}, 'Agents'), err,
      h('table', {class: 'grid', id: 'agents'},
        h('thead', {}, h('tr', {}, ['Agent', 'Health', 'Version', 'Warehouse', 'Last seen', 'Connected since', 'Running', 'Tables', admin ? '' : null].filter((x) => x !== null).map((t) => h('th', {scope: 'col'}, t)))),
        body),
      status,
      admin ? enrollForm(ctx) : null);
    const revoke = async (id) => {
      const reason = prompt(`Revoke agent ${id}? Its certificates are refused from its next connection, and it cannot enroll again. Reason:`);
      if (reason === null) return;
      try {
        await ctx.api.post(ctx.api.paths.revoke(id), {reason});
      } catch (e) {
        add(clear(err), ctx.errorBox(e));
      }
    };
    ctx.every(5000, async () => {
      let list;
      try {
        list = await ctx.api.get(ctx.api.paths.agents);
      } catch (e) {
        add(clear(err), ctx.errorBox(e));
        return;
      }
      clear(err);
      const agents = list.agents || [];
      add(clear(body), ...agents.map((a) => h('tr', {'data-agent': a.id},
        h('td', {class: 'mono'}, a.id),
        h('td', {}, health(a)),
        h('td', {class: 'mono'}, a.version || '—'),
        h('td', {}, a.warehouse_kind || '—'),
        h('td', {title: fmtTime(a.last_seen)}, ago(a.last_seen)),
        h('td', {}, a.connected ? fmtTime(a.connected_at) : '—'),
        h('td', {}, a.running_job ? h('a', {href: `#/jobs/${a.running_job}`, class: 'mono'}, a.running_job) : '—'),
        h('td', {}, a.unreadable ? h('em', {}, `sealed (${a.unreadable.reason})`) : (a.tables || []).join(', ') || '—'),
        admin ? h('td', {}, h('button', {type: 'button', class: 'link danger', onclick: () => revoke(a.id)}, 'Revoke')) : null)));
      if (agents.length === 0) add(body, h('tr', {}, h('td', {colspan: 9, class: 'muted'}, 'No agent has connected yet.')));
      status.textContent = `${agents.length} agents · updated ${fmtTime(new Date().toISOString())}`;
    });
  },
};

