// Connections (/v1/connections): the tenant's warehouses — kind, the
// settings that are not secret, and the Vault path where the agent finds
// the credentials. Viewers read; admins add, change and remove. A setting
// named or shaped like a credential is refused by the API.
import {h, add, clear, fmtTime, section} from '../dom.js';

const KINDS = ['duckdb', 'postgres', 'redshift', 'snowflake', 'databricks', 'bigquery', 's3', 'parquet'];

// parseSettings reads "key = value" lines.
function parseSettings(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t || t.startsWith('#')) continue;
    const i = t.indexOf('=');
    if (i < 0) throw new Error(`settings: "${t}" is not key = value`);
    out[t.slice(0, i).trim()] = t.slice(i + 1).trim();
  }
  return out;
}

function settingsText(settings) {
  return Object.entries(settings || {}).map(([k, v]) => `${k} = ${v}`).join('\n');
}

function editor(ctx, reload) {
  let editing = null;
  const out = h('div', {});
  const title = h('h2', {}, 'Add a connection');
  const form = h('form', {class: 'form', id: 'connection-form'},
    h('label', {for: 'conn-name'}, 'Name'), h('input', {id: 'conn-name', name: 'name', required: true, placeholder: 'warehouse'}),
    h('label', {for: 'conn-kind'}, 'Kind'), h('select', {id: 'conn-kind', name: 'kind'}, KINDS.map((k) => h('option', {value: k}, k))),
    h('label', {for: 'conn-settings'}, 'Settings'),
    h('textarea', {id: 'conn-settings', name: 'settings', rows: 4, spellcheck: 'false', placeholder: 'host = db.internal\ndatabase = analytics'}),
    h('p', {class: 'hint'}, 'One "key = value" a line; no credentials: the API refuses them.'),
    h('label', {for: 'conn-vault'}, 'Vault path of the credentials'),
    h('input', {id: 'conn-vault', name: 'vault_path', placeholder: 'database/creds/ferry-agent'}),
    h('p', {class: 'hint'}, 'The agent reads short-lived credentials there, in your Vault; Ferry never sees them.'),
    out,
    h('div', {class: 'buttons'},
      h('button', {type: 'submit', class: 'button primary', id: 'conn-save'}, 'Save'),
      h('button', {type: 'button', class: 'button', onclick: () => edit(null)}, 'New')));
  const edit = (c) => {
    editing = c;
    clear(out);
    title.textContent = c ? `Change ${c.name}` : 'Add a connection';
    form.elements.name.value = c ? c.name : '';
    form.elements.kind.value = c ? c.kind : KINDS[0];
    form.elements.settings.value = c ? settingsText(c.settings) : '';
    form.elements.vault_path.value = c ? c.vault_path || '' : '';
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    try {
      const body = {name: form.elements.name.value.trim(), kind: form.elements.kind.value,
        settings: parseSettings(form.elements.settings.value), vault_path: form.elements.vault_path.value.trim()};
      if (editing) await ctx.api.call('PUT', ctx.api.paths.connection(editing.id), body);
      else await ctx.api.post(ctx.api.paths.connections, body);
      edit(null);
      await reload();
    } catch (e) {
      add(out, ctx.errorBox(e));
    }
  });
  return {node: h('section', {class: 'card', id: 'connection-editor'}, title, form), edit};
}

export default {
  path: '/connections',
  title: 'Connections',
  nav: true,
  role: 'viewer',
  async render(ctx) {
    const admin = ctx.allows(ctx.me.role, 'admin');
    const body = h('tbody', {});
    const err = h('div', {});
    let ed = null;
    const remove = async (c) => {
      if (!confirm(`Remove the connection ${c.name}?`)) return;
      clear(err);
      try {
        await ctx.api.del(ctx.api.paths.connection(c.id));
        await load();
      } catch (e) {
        add(err, ctx.errorBox(e));
      }
    };
    const load = async () => {
      const list = (await ctx.api.get(ctx.api.paths.connections)) || [];
      add(clear(body), list.map((c) => h('tr', {'data-connection': c.name},
        h('td', {}, c.name),
        h('td', {}, c.kind),
        h('td', {class: 'mono small pre'}, settingsText(c.settings) || '—'),
        h('td', {class: 'mono'}, c.vault_path || '—'),
        h('td', {}, fmtTime(c.updated)),
        admin ? h('td', {class: 'actions'},
          h('button', {type: 'button', class: 'link', onclick: () => ed.edit(c)}, 'Change'), ' · ',
          h('button', {type: 'button', class: 'link danger', onclick: () => remove(c)}, 'Remove')) : null)));
      if (list.length === 0) add(body, h('tr', {}, h('td', {colspan: 6, class: 'muted'}, 'No connection yet.')));
    };
    if (admin) ed = editor(ctx, load);
    add(ctx.main, h('h1', {}, 'Connections'),
      h('p', {class: 'muted'}, 'Where the agent reads from and writes predictions to. Credentials stay in your Vault.'),
      err,
      section('Connections', {},
        h('table', {class: 'grid', id: 'connections'},
          h('thead', {}, h('tr', {}, ['Name', 'Kind', 'Settings', 'Vault path', 'Changed', admin ? '' : null].filter((x) => x !== null).map((t) => h('th', {scope: 'col'}, t)))),
          body)),
      ed ? ed.node : null);
    await load();
  },
};
