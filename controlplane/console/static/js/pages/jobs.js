// Jobs: every job with its state, refreshed every 2 s (GET /v1/jobs), and
// the count of jobs in each state.
import {h, add, clear, ago, fmtTime, badge} from '../dom.js';
import {STATES, TERMINAL, stacked, legend} from '../charts.js';

// The stages a running job goes through, for its progress steps.
const STEPS = ['queued', 'assigned', 'reading', 'training', 'writing', 'succeeded'];

export function stateBadge(state) {
  return badge(state, `st-${state}`);
}

// progress draws a job's place among STEPS: done, current, to do.
export function progress(state) {
  const at = STEPS.indexOf(state);
  const failed = state === 'failed' || state === 'cancelled';
  return h('ol', {class: ['steps', failed && 'steps-stopped'], 'aria-label': `progress: ${state}`},
    STEPS.slice(0, -1).map((st, i) => h('li', {
      class: [state === 'succeeded' || i < at ? 'done' : null, i === at && !TERMINAL.has(state) ? 'current' : null],
      title: st,
    })));
}

export default {
  path: '/jobs',
  title: 'Jobs',
  nav: true,
  role: 'viewer',
  async render(ctx) {
    const submitted = ctx.query.get('submitted');
    const summary = h('div', {class: 'summary', id: 'job-summary'});
    const status = h('p', {class: 'muted small', id: 'jobs-updated'}, 'Loading…');
    const body = h('tbody', {});
    const err = h('div', {});
    add(ctx.main, 
      h('div', {class: 'page-head'}, h('h1', {}, 'Jobs'),
        ctx.allows(ctx.me.role, 'editor') ? h('a', {class: 'button primary', href: '#/submit', id: 'new-job'}, 'Submit a query') : null),
      submitted ? h('div', {class: 'alert alert-ok', role: 'status', id: 'submitted'}, 'Job ', h('a', {href: `#/jobs/${submitted}`}, submitted), ' was submitted. Its state updates below.') : null,
      summary, err,
      h('table', {class: 'grid', id: 'jobs'},
        h('thead', {}, h('tr', {}, ['Job', 'State', 'Progress', 'Query', 'Output table', 'Agent', 'Created', 'Updated'].map((t) => h('th', {scope: 'col'}, t)))),
        body),
      status);
    ctx.every(2000, async () => {
      let list;
      try {
        list = await ctx.api.get(ctx.api.paths.jobs + '?limit=200');
      } catch (e) {
        add(clear(err), ctx.errorBox(e));
        return;
      }
      clear(err);
      const jobs = list.jobs || [];
      const counts = Object.fromEntries(STATES.map((st) => [st, 0]));
      for (const j of jobs) counts[j.state] = (counts[j.state] || 0) + 1;
      const parts = STATES.map((st) => ({label: st, value: counts[st], cls: `st-${st}`}));
      add(clear(summary), stacked(parts, {width: 760}), legend(parts));
      add(clear(body), ...jobs.map((j) => h('tr', {'data-job': j.id, 'data-state': j.state, class: j.id === submitted ? 'highlight' : null},
        h('td', {}, h('a', {href: `#/jobs/${j.id}`, class: 'mono'}, j.id)),
        h('td', {class: 'state'}, stateBadge(j.state)),
        h('td', {}, progress(j.state)),
        h('td', {class: 'query', title: j.query}, j.unreadable && !j.query ? h('em', {}, 'sealed') : j.query),
        h('td', {class: 'mono'}, j.output_table),
        h('td', {class: 'mono'}, j.agent_id || '—'),
        h('td', {title: fmtTime(j.created_at)}, ago(j.created_at)),
        h('td', {title: fmtTime(j.updated_at)}, ago(j.updated_at)))));
      if (jobs.length === 0) add(body, h('tr', {}, h('td', {colspan: 8, class: 'muted'}, 'No jobs yet.')));
      status.textContent = `${jobs.length} jobs · updated ${fmtTime(new Date().toISOString())} · refreshes every 2 s`;
    });
  },
};
