// DOM building without HTML strings: the console's Content-Security-Policy
// requires Trusted Types, so innerHTML and friends would throw. Every value
// from the API reaches the page as text.

const SVG = 'http://www.w3.org/2000/svg';

function build(el, attrs, children) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'style') throw new Error('inline styles are refused by the CSP: use a class');
    if (k.startsWith('on') && typeof v === 'function') {
      el.addEventListener(k.slice(2), v);
    } else if (k === 'class') {
      el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    } else if (k === 'value' && 'value' in el) {
      // The attribute too, so that a form's reset comes back to it.
      if (el instanceof HTMLInputElement) el.setAttribute('value', String(v));
      el.value = v;
    } else if (k === 'checked' || k === 'selected' || k === 'disabled') {
      el.setAttribute(k, '');
      el[k] = true;
    } else {
      el.setAttribute(k, v === true ? '' : String(v));
    }
  }
  append(el, children);
  return el;
}

// append adds children (nodes, strings, numbers, nested arrays; null and
// false are skipped) to el.
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

// h makes an HTML element: h('a', {href: '#/jobs', class: 'x'}, 'Jobs').
export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

// s makes an SVG element.
export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

// clear empties el and returns it.
export function clear(el) {
  el.replaceChildren();
  return el;
}

// --- formatting -----------------------------------------------------------

const pad = (n) => String(n).padStart(2, '0');

// fmtTime shows an RFC 3339 time in the browser's zone: 2026-03-01 14:02:11.
export function fmtTime(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime()) || d.getUTCFullYear() < 2) return '—';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

// ago says how long ago an RFC 3339 time was: "12 s ago", "3 min ago".
export function ago(iso, now = Date.now()) {
  if (!iso) return 'never';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t) || new Date(iso).getUTCFullYear() < 2) return 'never';
  const sec = Math.max(0, Math.round((now - t) / 1000));
  if (sec < 60) return `${sec} s ago`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ago`;
  if (sec < 86400) return `${Math.floor(sec / 3600)} h ago`;
  return `${Math.floor(sec / 86400)} d ago`;
}

// fmtDur shows seconds as "850 ms", "12.4 s", "3 min 5 s".
export function fmtDur(sec) {
  if (sec === undefined || sec === null || Number.isNaN(sec)) return '—';
  if (sec < 1) return `${Math.round(sec * 1000)} ms`;
  if (sec < 60) return `${sec.toFixed(1)} s`;
  if (sec < 3600) return `${Math.floor(sec / 60)} min ${Math.round(sec % 60)} s`;
  return `${Math.floor(sec / 3600)} h ${Math.round((sec % 3600) / 60)} min`;
}

export function fmtNum(n) {
  return n === undefined || n === null ? '—' : Number(n).toLocaleString('en');
}

export function fmtBytes(n) {
  if (n === undefined || n === null) return '—';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = Number(n);
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

export function fmtMetric(v) {
  return v === undefined || v === null ? '—' : Number(v).toFixed(3);
}

// badge is a small colored label, e.g. a job's state.
export function badge(text, kind) {
  return h('span', {class: ['badge', kind && `badge-${kind}`]}, text);
}

// section is a titled card.
export function section(title, attrs, ...children) {
  return h('section', {class: 'card', ...attrs}, h('h2', {}, title), ...children);
}

// kv is a definition list of [label, value] pairs.
export function kv(pairs) {
  return h('dl', {class: 'kv'}, pairs.filter(Boolean).flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// table makes a table from column headers and rows of cells.
export function table(headers, rows, attrs = {}) {
  return h('table', {class: 'grid', ...attrs},
    h('thead', {}, h('tr', {}, headers.map((t) => h('th', {scope: 'col'}, t)))),
    h('tbody', {}, rows));
}

export function note(...children) {
  return h('p', {class: 'note'}, ...children);
}

// add appends children to el as append does, skipping null, undefined and
// false (Element.append would write them as text) and flattening arrays.
export function add(el, ...children) {
  return append(el, children);
}
