// API tokens (GET/POST /v1/tokens, DELETE /v1/tokens/{id}): your tokens,
// a new one (its role at most yours; its secret shown once) and
// revocation.
import {h, add, clear, fmtTime, ago, badge, section} from '../dom.js';

const ROLES = ['viewer', 'editor', 'admin'];
const TTLS = [['1 day', '24h'], ['7 days', '168h'], ['30 days', '720h'], ['90 days', '2160h'], ['1 year', '8760h']];

function status(t) {
  if (t.revoked_at) return badge('revoked', 'off');
  if (new Date(t.expires_at) < new Date()) return badge('expired', 'off');
  return badge('active', 'ok');
}

export default {
  path: '/tokens',
  title: 'API tokens',
  nav: true,
  navLabel: 'Tokens',
  role: 'viewer',
  async render(ctx) {
    const err = h('div', {});
    const created = h('div', {id: 'token-created'});
    const body = h('tbody', {});
    const form = h('form', {class: 'inline-form', id: 'token-form'},
      h('label', {for: 'token-name'}, 'Name'), h('input', {id: 'token-name', name: 'name', required: true, placeholder: 'what it is for'}),
      h('label', {for: 'token-role'}, 'Role'), h('select', {id: 'token-role', name: 'role'},
        ROLES.filter((r) => ctx.allows(ctx.me.role, r)).map((r) => h('option', {value: r, selected: r === 'viewer'}, r))),
      h('label', {for: 'token-ttl'}, 'Expires in'), h('select', {id: 'token-ttl', name: 'ttl'},
        TTLS.map(([label, v]) => h('option', {value: v, selected: v === '720h'}, label))),
      h('button', {type: 'submit', class: 'button primary'}, 'Create token'));
    const load = async () => {
      const toks = (await ctx.api.get(ctx.api.paths.tokens)) || [];
      add(clear(body), ...toks.map((t) => h('tr', {'data-token': t.id},
        h('td', {}, t.name), h('td', {}, t.role), h('td', {}, status(t)),
        h('td', {}, fmtTime(t.created_at)), h('td', {}, fmtTime(t.expires_at)),
        h('td', {title: fmtTime(t.last_used_at)}, t.last_used_at ? ago(t.last_used_at) : 'never'),
        h('td', {}, !t.revoked_at ? h('button', {type: 'button', class: 'link danger', onclick: () => revoke(t)}, 'Revoke') : null))));
      if (toks.length === 0) add(body, h('tr', {}, h('td', {colspan: 7, class: 'muted'}, 'No tokens yet.')));
    };
    const revoke = async (t) => {
      if (!confirm(`Revoke the token "${t.name}"? Anything using it is refused at once.`)) return;
      clear(err);
      try {
        await ctx.api.del(ctx.api.paths.token(t.id));
        await load();
      } catch (e) {
        add(err, ctx.errorBox(e));
      }
    };
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(err);
      clear(created);
      try {
        const ct = await ctx.api.post(ctx.api.paths.tokens, {name: form.elements.name.value.trim(), role: form.elements.role.value, ttl: form.elements.ttl.value});
        const secret = h('pre', {class: 'secret', id: 'token-secret'}, ct.secret);
        add(created, h('div', {class: 'alert alert-ok', role: 'status'},
          'Your new token. Copy it now: it is shown this once, and Ferry keeps only its hash. Use it as ', h('code', {}, 'Authorization: Bearer …'), '.',
          secret,
          h('button', {type: 'button', class: 'button', onclick: () => navigator.clipboard.writeText(ct.secret)}, 'Copy')));
        form.reset();
        await load();
      } catch (e) {
        add(err, ctx.errorBox(e));
      }
    });
    add(ctx.main, h('h1', {}, 'API tokens'),
      h('p', {class: 'muted'}, 'Tokens let scripts and the CLI call the API as you, with a role no higher than yours (and never higher than yours is later).'),
      section('New token', {}, form, created), err,
      h('table', {class: 'grid', id: 'tokens'},
        h('thead', {}, h('tr', {}, ['Name', 'Role', 'Status', 'Created', 'Expires', 'Last used', ''].map((t) => h('th', {scope: 'col'}, t)))),
        body));
    await load();
  },
};
