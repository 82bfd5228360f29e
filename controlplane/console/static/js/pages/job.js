// A job (GET /v1/jobs/{id}): state history, table statistics, model
// metrics against the baselines with the test split's ROC curve or residual
// histogram, feature importances, the engine's purge
// attestation and the write report; refreshed every 2 s until it ends.
import {h, add, clear, fmtTime, fmtDur, fmtNum, fmtBytes, fmtMetric, kv, section, table, note} from '../dom.js';
import {TERMINAL, bars, timeline, roc, histogram} from '../charts.js';
import {stateBadge, progress} from './jobs.js';

// The metrics the API reports, how to read them, and which way is better.
const METRICS = [
  {key: 'auroc', label: 'AUROC', unit: true, better: 'higher'},
  {key: 'average_precision', label: 'Average precision', unit: true, better: 'higher'},
  {key: 'accuracy', label: 'Accuracy', unit: true, better: 'higher'},
  {key: 'map_at_k', label: 'MAP@K', unit: true, better: 'higher'},
  {key: 'mae', label: 'MAE', better: 'lower'},
  {key: 'rmse', label: 'RMSE', better: 'lower'},
];

function header(d, ctx, onCancel) {
  const opts = d.options && Object.keys(d.options).length ? JSON.stringify(d.options) : 'defaults';
  const canCancel = ctx.allows(ctx.me.role, 'editor') && !TERMINAL.has(d.state);
  return h('div', {class: 'card', id: 'job-head'},
    h('div', {class: 'page-head'},
      h('h1', {}, 'Job ', h('span', {class: 'mono'}, d.id)),
      h('span', {id: 'job-state', 'data-state': d.state}, stateBadge(d.state)),
      progress(d.state),
      canCancel ? h('button', {type: 'button', class: 'button danger', id: 'cancel', onclick: onCancel}, 'Cancel') : null),
    h('pre', {class: 'query', id: 'job-query'}, d.query || '(sealed)'),
    kv([
      ['Output table', h('span', {class: 'mono'}, d.output_table)],
      ['Tables read', (d.tables || []).join(', ') || '—'],
      ['Agent', d.agent_id || '—'],
      ['Created', fmtTime(d.created_at)],
      ['Updated', fmtTime(d.updated_at)],
      ['Options', h('span', {class: 'mono'}, opts)],
    ]),
    d.error ? h('div', {class: 'alert', role: 'alert', id: 'job-error'}, h('strong', {}, `Failed at ${d.error.stage}: `), d.error.message) : null,
    d.unreadable ? h('div', {class: 'alert', role: 'alert'}, `Some fields are sealed and cannot be opened (${d.unreadable.reason}): ${d.unreadable.fields.join(', ')}.`) : null);
}

function history(d) {
  const rows = (d.history || []).map((c, i, all) => {
    const next = all[i + 1];
    const secs = next ? (new Date(next.at) - new Date(c.at)) / 1000 : null;
    return h('tr', {}, h('td', {}, stateBadge(c.state)), h('td', {}, fmtTime(c.at)), h('td', {}, secs === null ? (TERMINAL.has(c.state) ? '—' : 'now') : fmtDur(secs)), h('td', {}, c.note || ''));
  });
  return section('State history', {id: 'timeline'}, timeline(d.history), table(['State', 'Since', 'For', 'Note'], rows));
}

function tableStats(d) {
  const stats = d.table_stats || [];
  if (stats.length === 0) return section('Tables read', {id: 'tables'}, h('p', {class: 'muted'}, 'No table has been read yet.'));
  return section('Tables read', {id: 'tables'}, table(['Table', 'Rows', 'Bytes', 'Batches', 'Columns', 'Read in'], stats.map((t) =>
    h('tr', {'data-table': t.table}, h('td', {class: 'mono'}, t.table), h('td', {class: 'num'}, fmtNum(t.rows)), h('td', {class: 'num'}, fmtBytes(t.bytes)),
      h('td', {class: 'num'}, fmtNum(t.batches)),
      h('td', {}, h('details', {class: 'cols'}, h('summary', {}, `${(t.columns || []).length} columns`), columnStats(t))),
      h('td', {class: 'num'}, fmtDur(t.seconds))))));
}

// columnStats lists a table's columns with what the agent measured of each
// as it read them: the share of nulls, the range of a numeric non-key
// column (the agent reports none for text, time or key columns) and an
// estimate of the distinct values.
function columnStats(t) {
  const num = (v) => v === undefined || v === null ? '—' :
    Number(v).toLocaleString('en', Number.isInteger(v) ? {} : {maximumSignificantDigits: 6});
  const pct = (f) => f === undefined || f === null ? '—' : f > 0 && f < 0.001 ? '<0.1%' : `${(100 * f).toFixed(1)}%`;
  return table(['Column', 'Type', 'Null %', 'Min', 'Max', 'Distinct ≈'], (t.columns || []).map((c) => {
    const s = c.stats || {};
    return h('tr', {'data-column': c.name},
      h('td', {class: 'mono'}, c.name), h('td', {class: 'muted'}, c.type + (c.nullable ? ', nullable' : '')),
      h('td', {class: 'num null-frac'}, c.stats ? pct(s.null_fraction) : '—'),
      h('td', {class: 'num min'}, num(s.min)), h('td', {class: 'num max'}, num(s.max)),
      h('td', {class: 'num distinct'}, c.stats ? `≈ ${fmtNum(s.distinct_estimate)}` : '—'));
  }), {class: 'grid colstats'});
}

function metrics(m) {
  const shown = METRICS.filter((mt) => [m.test, m.validation].some((x) => x && x[mt.key]));
  const charts = shown.map((mt) => {
    const items = [
      m.test && {label: 'model · test', value: m.test[mt.key], cls: 'model'},
      m.validation && {label: 'model · validation', value: m.validation[mt.key], cls: 'model-val'},
      m.baseline_label_rate && m.baseline_label_rate[mt.key] !== undefined && {label: 'baseline · label rate', value: m.baseline_label_rate[mt.key], cls: 'baseline'},
      m.baseline_recent_count && m.baseline_recent_count[mt.key] !== undefined && {label: 'baseline · recent count', value: m.baseline_recent_count[mt.key], cls: 'baseline'},
    ].filter(Boolean).map((it) => ({...it, text: fmtMetric(it.value)}));
    return h('figure', {class: 'metric', 'data-metric': mt.key},
      h('figcaption', {}, h('strong', {}, mt.label), ` (${mt.better} is better)`),
      bars(items, {max: mt.unit ? 1 : undefined, title: mt.label}));
  });
  return section('Model metrics', {id: 'metrics'},
    kv([
      ['Task', m.task_type],
      ['Model', h('span', {class: 'mono'}, m.model_id)],
      m.classes ? ['Classes', fmtNum(m.classes)] : null,
      m.top_k ? ['Top K', fmtNum(m.top_k)] : null,
      ['Rows (train / validation / test)', `${fmtNum(m.train_rows)} / ${fmtNum(m.validation_rows)} / ${fmtNum(m.test_rows)}`],
      m.task_type === 'binary_classification' ? ['Test positive rate', `${(100 * (m.test_positive_rate || 0)).toFixed(1)} %`] : null,
      ['Features', fmtNum(m.num_features)],
      ['Anchors', fmtNum(m.anchors)],
      ['Best iteration', fmtNum(m.best_iteration)],
      m.parameter_sets ? ['Parameter sets tried', fmtNum(m.parameter_sets)] : null,
      ['Predictions', fmtNum(m.prediction_rows)],
      m.scoring_anchor ? ['Scoring anchor', fmtTime(m.scoring_anchor)] : null,
      ['Time (features / training / scoring)', `${fmtDur(m.feature_seconds)} / ${fmtDur(m.train_seconds)} / ${fmtDur(m.score_seconds)}`],
    ]),
    h('div', {class: 'metrics'}, charts.length ? charts : h('p', {class: 'muted'}, 'No metric reported.')),
    plot(m));
}

// plot draws the test split's ROC curve (binary classification) or
// residual histogram (regression); the engine draws neither from fewer than
// 50 test rows, nor for other tasks.
function plot(m) {
  const few = 'The engine draws it only from a test split of 50 rows or more, so that no point stands for one row.';
  if (m.task_type === 'binary_classification') {
    const pts = m.roc || [];
    if (pts.length < 2) return note('No ROC curve was reported (both classes must be in the test split). ', few);
    const title = `ROC curve · test AUROC ${fmtMetric(m.test && m.test.auroc)}`;
    return h('div', {class: 'plots'}, h('figure', {class: 'plot', id: 'roc', 'data-points': String(pts.length)},
      h('figcaption', {}, h('strong', {}, title), ` — the test split's true against false positive rate as the threshold falls (${pts.length} points); the dashed diagonal is a random ranking.`),
      roc(pts, {title})));
  }
  if (m.task_type === 'regression') {
    const bins = m.residuals || [];
    if (bins.length === 0) return note('No residual histogram was reported. ', few);
    const n = bins.reduce((a, b) => a + b.count, 0);
    const title = `Residuals · test MAE ${fmtMetric(m.test && m.test.mae)}`;
    return h('div', {class: 'plots'}, h('figure', {class: 'plot', id: 'residuals', 'data-bins': String(bins.length)},
      h('figcaption', {}, h('strong', {}, title), ` — prediction minus actual for the ${fmtNum(n)} test rows in ${bins.length} equal-width bins; the end bins also count the residuals beyond them.`),
      histogram(bins, {title})));
  }
  return null;
}

function importances(m) {
  const entries = Object.entries(m.feature_importance || {}).sort((a, b) => b[1] - a[1]);
  if (entries.length === 0) return section('Feature importances', {id: 'importance'}, h('p', {class: 'muted'}, 'None reported.'));
  const total = entries.reduce((a, [, v]) => a + Math.max(0, v), 0) || 1;
  const top = entries.slice(0, 25);
  return section('Feature importances', {id: 'importance'},
    bars(top.map(([name, v]) => ({label: name, value: v, cls: 'importance', text: `${((100 * v) / total).toFixed(1)} %`})), {label: 260, width: 700, title: 'feature importances'}),
    entries.length > top.length ? note(`The ${top.length} most important of ${entries.length} features.`) : null);
}

function purge(p) {
  if (!p) return section('Purge attestation', {id: 'purge'}, h('p', {class: 'muted'}, 'The engine has not attested the purge yet (it does when the job ends).'));
  const clean = p.files_written === 0 && (p.storage_write_bytes || 0) === 0 && p.bytes_purged >= p.bytes_received;
  return section('Purge attestation', {id: 'purge'},
    h('div', {class: ['alert', clean ? 'alert-ok' : 'alert-denied'], id: 'purge-verdict', 'data-clean': String(clean)},
      clean ? 'Attested: every byte the engine received was purged from memory, and nothing was written to storage.' :
        'The attestation does not show a clean purge: see the figures below.'),
    kv([
      ['Reason', p.reason],
      ['Bytes received', `${fmtBytes(p.bytes_received)} (${fmtNum(p.bytes_received)} B)`],
      ['Bytes purged', `${fmtBytes(p.bytes_purged)} (${fmtNum(p.bytes_purged)} B)`],
      ['Files written', h('span', {id: 'purge-files'}, fmtNum(p.files_written))],
      ['Storage bytes written', fmtNum(p.storage_write_bytes || 0)],
      ['Purged at', fmtTime(p.purged_at)],
    ]));
}

function write(w) {
  if (!w) return section('Predictions written', {id: 'write'}, h('p', {class: 'muted'}, 'Nothing written yet.'));
  return section('Predictions written', {id: 'write'}, kv([
    ['Table', h('span', {class: 'mono'}, w.table)], ['Rows', fmtNum(w.rows)], ['Written in', fmtDur(w.seconds)]]));
}

export default {
  path: '/jobs/:id',
  title: 'Job',
  role: 'viewer',
  async render(ctx) {
    const id = ctx.params.id;
    const view = h('div', {id: 'job'});
    const err = h('div', {});
    add(ctx.main, h('p', {}, h('a', {href: '#/jobs'}, '← Jobs')), err, view);
    const cancel = async () => {
      if (!confirm(`Cancel job ${id}?`)) return;
      try {
        await ctx.api.post(ctx.api.paths.cancel(id));
      } catch (e) {
        add(clear(err), ctx.errorBox(e));
      }
    };
    let stop = null;
    let first = true;
    stop = ctx.every(2000, async () => {
      let d;
      try {
        d = await ctx.api.get(ctx.api.paths.job(id));
      } catch (e) {
        add(clear(err), ctx.errorBox(e));
        if (first || e.status === 404 || e.status === 403) stop();
        return;
      }
      first = false;
      clear(err);
      document.title = `Job ${d.id} (${d.state}) · Ferry console`;
      add(clear(view), 
        header(d, ctx, cancel),
        history(d),
        tableStats(d),
        d.model ? metrics(d.model) : section('Model metrics', {id: 'metrics'}, h('p', {class: 'muted'}, 'No model yet.')),
        d.model ? importances(d.model) : null,
        purge(d.purge),
        write(d.write));
      if (TERMINAL.has(d.state)) stop();
    });
  },
};
