// Saved queries (/v1/queries): the tenant's predictive queries by name,
// checked by the planner against the reported schema when saved. Editors
// save, run (POST /v1/jobs) and remove them.
import {h, add, clear, fmtTime, section} from '../dom.js';

function saveForm(ctx, connections, reload) {
  const out = h('div', {});
  const form = h('form', {class: 'form', id: 'query-form'},
    h('label', {for: 'q-name'}, 'Name'), h('input', {id: 'q-name', name: 'name', required: true, placeholder: 'churn next 30 days'}),
    h('label', {for: 'q-pql'}, 'Predictive query'),
    h('textarea', {id: 'q-pql', name: 'pql', rows: 3, required: true, spellcheck: 'false',
      placeholder: 'PREDICT COUNT(orders.*, 0, 30, days) = 0 FOR EACH customers.customer_id'}),
    h('label', {for: 'q-output'}, 'Output table'), h('input', {id: 'q-output', name: 'output_table', required: true, placeholder: 'churn_predictions'}),
    h('label', {for: 'q-connection'}, 'Connection'),
    h('select', {id: 'q-connection', name: 'connection'}, h('option', {value: ''}, '(the agent\'s)'), connections.map((c) => h('option', {value: c.name}, c.name))),
    out,
    h('button', {type: 'submit', class: 'button primary'}, 'Save'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    clear(out);
    const f = form.elements;
    const body = {name: f.name.value.trim(), pql: f.pql.value.trim(), output_table: f.output_table.value.trim()};
    if (f.connection.value) body.connection = f.connection.value;
    try {
      await ctx.api.post(ctx.api.paths.queries, body);
      form.reset();
      await reload();
    } catch (e) {
      add(out, ctx.errorBox(e));
    }
  });
  return section('Save a query', {id: 'query-save'}, form);
}

export default {
  path: '/queries',
  title: 'Saved queries',
  nav: true,
  navLabel: 'Queries',
  role: 'viewer',
  async render(ctx) {
    const editor = ctx.allows(ctx.me.role, 'editor');
    const body = h('tbody', {});
    const err = h('div', {});
    const run = async (q) => {
      clear(err);
      try {
        const job = await ctx.api.post(ctx.api.paths.jobs, {query: q.pql, output_table: q.output_table});
        ctx.go(`/jobs?submitted=${encodeURIComponent(job.id)}`);
      } catch (e) {
        add(err, ctx.errorBox(e));
      }
    };
    const remove = async (q) => {
      if (!confirm(`Remove the saved query ${q.name}?`)) return;
      clear(err);
      try {
        await ctx.api.del(ctx.api.paths.query(q.id));
        await load();
      } catch (e) {
        add(err, ctx.errorBox(e));
      }
    };
    const load = async () => {
      const list = (await ctx.api.get(ctx.api.paths.queries)) || [];
      add(clear(body), list.map((q) => h('tr', {'data-query': q.name},
        h('td', {}, q.name),
        h('td', {class: 'query', title: q.pql}, q.pql),
        h('td', {class: 'mono'}, q.output_table),
        h('td', {}, q.connection || '—'),
        h('td', {}, fmtTime(q.updated)),
        editor ? h('td', {class: 'actions'},
          h('button', {type: 'button', class: 'button primary', 'data-action': 'run', onclick: () => run(q)}, 'Run'), ' ',
          h('button', {type: 'button', class: 'link danger', onclick: () => remove(q)}, 'Remove')) : null)));
      if (list.length === 0) add(body, h('tr', {}, h('td', {colspan: 6, class: 'muted'}, 'No saved query yet.')));
    };
    let form = null;
    if (editor) {
      let connections = [];
      try {
        connections = (await ctx.api.get(ctx.api.paths.connections)) || [];
      } catch (e) {
        add(err, ctx.errorBox(e));
      }
      form = saveForm(ctx, connections, load);
    }
    add(ctx.main, h('h1', {}, 'Saved queries'), err,
      section('Queries', {},
        h('table', {class: 'grid', id: 'queries'},
          h('thead', {}, h('tr', {}, ['Name', 'Query', 'Output table', 'Connection', 'Saved', editor ? '' : null].filter((x) => x !== null).map((t) => h('th', {scope: 'col'}, t)))),
          body)),
      form);
    await load();
  },
};
