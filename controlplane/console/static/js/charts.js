// Charts drawn as SVG from metadata: horizontal bars, a stacked bar of
// counts and a timeline of states. Colors come from classes in console.css.
import {s, add, h} from './dom.js';

// The states of a job, in the order a successful job passes them.
export const STATES = ['queued', 'assigned', 'reading', 'training', 'writing', 'succeeded', 'failed', 'cancelled'];
export const TERMINAL = new Set(['succeeded', 'failed', 'cancelled']);

// bars draws labelled horizontal bars. items: [{label, value, cls, text}];
// max is the scale's end (default the largest value).
export function bars(items, {max, width = 560, label = 200, row = 22, title = ''} = {}) {
  const top = Math.max(1e-12, max ?? Math.max(...items.map((i) => i.value || 0)));
  const plot = width - label - 70;
  const height = items.length * row + 6;
  const svg = s('svg', {class: 'chart bars', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': title});
  items.forEach((it, i) => {
    const y = i * row + 3;
    const w = Math.max(1, (Math.max(0, it.value || 0) / top) * plot);
    add(svg, 
      s('text', {x: label - 8, y: y + row / 2 + 4, 'text-anchor': 'end', class: 'label'}, it.label),
      s('rect', {x: label, y: y + 3, width: w, height: row - 8, rx: 2, class: ['bar', it.cls]}, s('title', {}, `${it.label}: ${it.text ?? it.value}`)),
      s('text', {x: label + w + 6, y: y + row / 2 + 4, class: 'value'}, it.text ?? String(it.value)));
  });
  return svg;
}

// stacked draws one bar split by count, with a legend: [{label, value, cls}].
export function stacked(parts, {width = 560, height = 18} = {}) {
  const total = parts.reduce((a, p) => a + p.value, 0);
  const svg = s('svg', {class: 'chart stacked', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': parts.map((p) => `${p.label} ${p.value}`).join(', ')});
  if (total === 0) {
    add(svg, s('rect', {x: 0, y: 0, width, height, rx: 3, class: 'empty'}));
    return svg;
  }
  let x = 0;
  for (const p of parts) {
    if (!p.value) continue;
    const w = (p.value / total) * width;
    add(svg, s('rect', {x, y: 0, width: w, height, class: ['seg', p.cls]}, s('title', {}, `${p.label}: ${p.value}`)));
    x += w;
  }
  return svg;
}

// legend lists [{label, value, cls}] as colored chips.
export function legend(parts) {
  return h('ul', {class: 'legend'}, parts.map((p) =>
    h('li', {'data-state': p.label}, h('span', {class: ['swatch', p.cls]}), `${p.label} `, h('strong', {}, String(p.value)))));
}

// timeline draws a job's state history as consecutive segments, each as
// long as the job stayed in that state; a job still running extends to now.
export function timeline(history, {width = 760, now = Date.now()} = {}) {
  if (!history || history.length === 0) return h('p', {class: 'muted'}, 'No history yet.');
  const times = history.map((c) => new Date(c.at).getTime());
  const last = history[history.length - 1];
  const end = TERMINAL.has(last.state) ? times[times.length - 1] : Math.max(now, times[times.length - 1]);
  const span = Math.max(1, end - times[0]);
  const height = 46;
  const svg = s('svg', {class: 'chart timeline', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': 'state timeline'});
  const minW = 3;
  history.forEach((c, i) => {
    const t0 = times[i];
    const t1 = i + 1 < times.length ? times[i + 1] : end;
    const x = ((t0 - times[0]) / span) * (width - minW);
    const w = Math.max(minW, ((t1 - t0) / span) * (width - minW));
    const secs = (t1 - t0) / 1000;
    add(svg, s('rect', {x, y: 4, width: w, height: 20, class: ['seg', `st-${c.state}`]},
      s('title', {}, `${c.state}: ${secs.toFixed(2)} s${c.note ? ' — ' + c.note : ''}`)));
    if (w > 54) add(svg, s('text', {x: x + 4, y: 18, class: 'seg-label'}, c.state));
  });
  add(svg, 
    s('text', {x: 0, y: 40, class: 'axis'}, '0 s'),
    s('text', {x: width, y: 40, 'text-anchor': 'end', class: 'axis'}, `${(span / 1000).toFixed(1)} s`));
  return svg;
}

// ticks are the axis marks of a unit scale.
const UNIT_TICKS = [0, 0.25, 0.5, 0.75, 1];

// roc draws a ROC curve from the API's points ({false_positive_rate,
// true_positive_rate, threshold}, from (0,0) to (1,1)) on a unit square,
// with the diagonal a random ranking would give. Each point's threshold
// shows on hover.
export function roc(points, {size = 300, title = 'ROC curve'} = {}) {
  const left = 46, top = 10, bottom = 40;
  const width = left + size + 14, height = top + size + bottom;
  const x = (f) => left + f * size;
  const y = (t) => top + (1 - t) * size;
  const svg = s('svg', {class: 'chart roc', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': title});
  add(svg, s('title', {}, title));
  for (const v of UNIT_TICKS) {
    add(svg,
      s('line', {x1: x(v), y1: y(0), x2: x(v), y2: y(1), class: 'grid'}),
      s('line', {x1: x(0), y1: y(v), x2: x(1), y2: y(v), class: 'grid'}),
      s('text', {x: x(v), y: y(0) + 15, 'text-anchor': 'middle', class: 'axis'}, String(v)),
      s('text', {x: x(0) - 6, y: y(v) + 4, 'text-anchor': 'end', class: 'axis'}, String(v)));
  }
  add(svg,
    s('rect', {x: x(0), y: y(1), width: size, height: size, class: 'frame'}),
    s('line', {x1: x(0), y1: y(0), x2: x(1), y2: y(1), class: 'diagonal'}, s('title', {}, 'random ranking (AUROC 0.5)')),
    s('polyline', {class: 'curve', points: points.map((p) => `${x(p.false_positive_rate).toFixed(1)},${y(p.true_positive_rate).toFixed(1)}`).join(' ')}),
    points.map((p) => s('circle', {cx: x(p.false_positive_rate).toFixed(1), cy: y(p.true_positive_rate).toFixed(1), r: 2.2, class: 'pt'},
      s('title', {}, `threshold ${p.threshold.toFixed(3)}: false positive rate ${p.false_positive_rate.toFixed(3)}, true positive rate ${p.true_positive_rate.toFixed(3)}`))),
    s('text', {x: x(0.5), y: height - 6, 'text-anchor': 'middle', class: 'label'}, 'False positive rate'),
    s('text', {x: 12, y: y(0.5), 'text-anchor': 'middle', class: 'label', transform: `rotate(-90 12 ${y(0.5)})`}, 'True positive rate'));
  return svg;
}

// histogram draws the API's equal-width bins ({lower, upper, count}) as
// columns, with a mark at zero when it lies within them.
export function histogram(bins, {width = 560, height = 240, title = 'histogram'} = {}) {
  const left = 46, right = 14, top = 10, bottom = 40;
  const plotW = width - left - right, plotH = height - top - bottom;
  const lo = bins[0].lower, hi = bins[bins.length - 1].upper;
  const span = hi - lo || 1;
  const most = Math.max(1, ...bins.map((b) => b.count));
  const x = (v) => left + ((v - lo) / span) * plotW;
  const y = (c) => top + (1 - c / most) * plotH;
  const fmt = (v) => Math.abs(v) >= 1000 || (v !== 0 && Math.abs(v) < 0.01) ? v.toExponential(1) : Number(v.toFixed(2)).toString();
  const svg = s('svg', {class: 'chart histogram', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img', 'aria-label': title});
  add(svg, s('title', {}, title));
  for (const f of [0, 0.5, 1]) {
    add(svg,
      s('line', {x1: left, y1: y(f * most), x2: left + plotW, y2: y(f * most), class: 'grid'}),
      s('text', {x: left - 6, y: y(f * most) + 4, 'text-anchor': 'end', class: 'axis'}, fmtCount(f * most)));
  }
  bins.forEach((b) => {
    const x0 = hi > lo ? x(b.lower) : left;
    const w = hi > lo ? Math.max(1, x(b.upper) - x(b.lower) - 1) : plotW;
    add(svg, s('rect', {x: x0, y: y(b.count), width: w, height: plotH - (y(b.count) - top), class: 'bin'},
      s('title', {}, `${fmt(b.lower)} to ${fmt(b.upper)}: ${b.count} rows`)));
  });
  if (lo < 0 && hi > 0) add(svg, s('line', {x1: x(0), y1: top, x2: x(0), y2: top + plotH, class: 'zero'}, s('title', {}, 'zero: prediction equals actual')));
  add(svg,
    s('line', {x1: left, y1: top + plotH, x2: left + plotW, y2: top + plotH, class: 'baseline-axis'}),
    s('text', {x: left, y: top + plotH + 15, 'text-anchor': 'start', class: 'axis'}, fmt(lo)),
    s('text', {x: left + plotW, y: top + plotH + 15, 'text-anchor': 'end', class: 'axis'}, fmt(hi)),
    lo < 0 && hi > 0 ? s('text', {x: x(0), y: top + plotH + 15, 'text-anchor': 'middle', class: 'axis'}, '0') : null,
    s('text', {x: left + plotW / 2, y: height - 6, 'text-anchor': 'middle', class: 'label'}, 'Residual (prediction − actual)'));
  return svg;
}

// fmtCount shows a count axis mark: whole numbers only.
function fmtCount(c) {
  return Number.isInteger(c) ? c.toLocaleString('en') : '';
}
