// Submit a predictive query (POST /v1/jobs, editor and up). The schema it
// is planned against (GET /v1/graph) is shown beside the form.
import {h, add, clear} from '../dom.js';

const EXAMPLE = 'PREDICT COUNT(orders.*, 0, 30, days) > 0 FOR EACH customers.customer_id';

function schemaList(g) {
  return h('ul', {class: 'schema'}, (g.tables || []).map((t) => {
    const pk = new Set(t.primary_key || []);
    const fk = new Set((t.foreign_keys || []).flatMap((f) => f.columns));
    return h('li', {}, h('strong', {class: 'mono'}, t.name),
      h('ul', {}, (t.columns || []).map((c) => h('li', {class: 'mono'}, c.name, ' ',
        h('span', {class: 'muted'}, c.type),
        pk.has(c.name) ? h('span', {class: 'tag tag-pk'}, 'PK') : null,
        fk.has(c.name) ? h('span', {class: 'tag tag-fk'}, 'FK') : null,
        t.time_column === c.name ? h('span', {class: 'tag tag-time'}, 'time') : null))));
  }));
}

function num(form, name) {
  const v = form.elements[name].value.trim();
  return v === '' ? undefined : Number(v);
}

export default {
  path: '/submit',
  title: 'Submit a query',
  nav: true,
  navLabel: 'Submit',
  role: 'editor',
  async render(ctx) {
    const err = h('div', {id: 'submit-error'});
    const schema = h('div', {class: 'muted'}, 'Loading the schema…');
    const form = h('form', {id: 'submit-form', class: 'card form', novalidate: true},
      h('label', {for: 'query'}, 'Predictive query'),
      h('textarea', {id: 'query', name: 'query', rows: 5, required: true, spellcheck: 'false', placeholder: EXAMPLE}),
      h('p', {class: 'hint'}, 'PREDICT <target> FOR EACH <table>.<primary key> [WHERE <filter>]; see docs/pql.md.'),
      h('label', {for: 'output_table'}, 'Output table'),
      h('input', {id: 'output_table', name: 'output_table', required: true, pattern: '[A-Za-z_][A-Za-z0-9_]*', placeholder: 'churn_predictions', autocomplete: 'off'}),
      h('p', {class: 'hint'}, 'The warehouse table the predictions replace: letters, digits and underscores.'),
      h('details', {},
        h('summary', {}, 'Training options'),
        h('div', {class: 'options'},
          h('label', {for: 'validation_start'}, 'Validation start'), h('input', {id: 'validation_start', name: 'validation_start', type: 'date'}),
          h('label', {for: 'test_start'}, 'Test start'), h('input', {id: 'test_start', name: 'test_start', type: 'date'}),
          h('label', {for: 'anchor_step_days'}, 'Anchor step (days)'), h('input', {id: 'anchor_step_days', name: 'anchor_step_days', type: 'number', min: 0}),
          h('label', {for: 'max_eval_anchors'}, 'Evaluation anchors (max)'), h('input', {id: 'max_eval_anchors', name: 'max_eval_anchors', type: 'number', min: 0}),
          h('label', {for: 'search_budget_seconds'}, 'Search budget (s)'), h('input', {id: 'search_budget_seconds', name: 'search_budget_seconds', type: 'number', min: 0, step: 'any'}),
          h('label', {for: 'search_sets'}, 'Parameter sets (max)'), h('input', {id: 'search_sets', name: 'search_sets', type: 'number', min: 0}))),
      err,
      h('button', {type: 'submit', class: 'button primary', id: 'submit'}, 'Submit'));
    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear(err);
      const f = form.elements;
      const options = {
        validation_start: f.validation_start.value ? new Date(f.validation_start.value + 'T00:00:00Z').toISOString() : undefined,
        test_start: f.test_start.value ? new Date(f.test_start.value + 'T00:00:00Z').toISOString() : undefined,
        anchor_step_days: num(form, 'anchor_step_days'),
        max_eval_anchors: num(form, 'max_eval_anchors'),
        search_budget_seconds: num(form, 'search_budget_seconds'),
        search_sets: num(form, 'search_sets'),
      };
      for (const k of Object.keys(options)) if (options[k] === undefined) delete options[k];
      const body = {query: f.query.value.trim(), output_table: f.output_table.value.trim()};
      if (Object.keys(options).length) body.options = options;
      const button = f.submit;
      button.disabled = true;
      try {
        const job = await ctx.api.post(ctx.api.paths.jobs, body);
        ctx.go(`/jobs?submitted=${encodeURIComponent(job.id)}`);
      } catch (e) {
        add(err, ctx.errorBox(e));
      } finally {
        button.disabled = false;
      }
    });
    add(ctx.main, h('h1', {}, 'Submit a predictive query'),
      h('div', {class: 'split'}, form, h('aside', {class: 'card'}, h('h2', {}, 'Schema'), schema)));
    try {
      const g = await ctx.api.get(ctx.api.paths.graph);
      add(clear(schema), h('p', {class: 'muted small'}, `As agent ${g.agent_id} reported it. `, h('a', {href: '#/graph'}, 'Diagram')), schemaList(g));
      schema.classList.remove('muted');
    } catch (e) {
      add(clear(schema), e.status === 404 ? 'No agent has reported a schema yet.' : ctx.errorBox(e));
    }
  },
};
