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
