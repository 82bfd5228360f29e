// The schema graph (GET /v1/graph): the tables the latest agent reported,
// drawn as boxes with their key columns (primary key, foreign keys, time
// column), and an arrow from each foreign key to the table it references.
// Referenced tables stand left of the tables that reference them.
import {h, add, s, clear, section} from '../dom.js';

const BOX_W = 250;
const HEAD = 28;
const ROW = 20;
const COL_GAP = 120;
const ROW_GAP = 28;
const MARGIN = 24;

// levels places each table one column right of the rightmost table it
// references (cycles and self-references are ignored for placement).
function levels(tables) {
  const byName = new Map(tables.map((t) => [t.name, t]));
  const memo = new Map();
  const visiting = new Set();
  const level = (name) => {
    if (memo.has(name)) return memo.get(name);
    if (visiting.has(name)) return 0;
    visiting.add(name);
    let l = 0;
    for (const fk of byName.get(name).foreign_keys || []) {
      if (fk.ref_table !== name && byName.has(fk.ref_table)) l = Math.max(l, level(fk.ref_table) + 1);
    }
    visiting.delete(name);
    memo.set(name, l);
    return l;
  };
  for (const t of tables) level(t.name);
  return memo;
}

function shownColumns(t, all) {
  const pk = new Set(t.primary_key || []);
  const fk = new Set((t.foreign_keys || []).flatMap((f) => f.columns));
  const cols = (t.columns || []).map((c) => ({...c, pk: pk.has(c.name), fk: fk.has(c.name), time: t.time_column === c.name}));
  return all ? cols : cols.filter((c) => c.pk || c.fk || c.time);
}

function clip(text, n) {
  return text.length > n ? text.slice(0, n - 1) + '…' : text;
}

export function diagram(g, {all = false} = {}) {
  const tables = g.tables || [];
  const lv = levels(tables);
  const cols = [];
  const boxes = new Map();
  for (const t of tables) {
    const l = lv.get(t.name) || 0;
    (cols[l] = cols[l] || []).push(t);
  }
  let height = 0;
  cols.forEach((list, l) => {
    let y = MARGIN;
    for (const t of list) {
      const rows = shownColumns(t, all);
      const hidden = (t.columns || []).length - rows.length;
      const hgt = HEAD + Math.max(1, rows.length + (hidden > 0 ? 1 : 0)) * ROW + 6;
      boxes.set(t.name, {t, x: MARGIN + l * (BOX_W + COL_GAP), y, h: hgt, rows, hidden});
      y += hgt + ROW_GAP;
    }
    height = Math.max(height, y - ROW_GAP + MARGIN);
  });
  const width = MARGIN * 2 + cols.length * BOX_W + Math.max(0, cols.length - 1) * COL_GAP + 60;
  const svg = s('svg', {class: 'chart schema-graph', id: 'graph-svg', viewBox: `0 0 ${width} ${height}`, width, height, role: 'img',
    'aria-label': `schema: ${tables.length} tables`});
  add(svg, s('defs', {}, s('marker', {id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 8, markerHeight: 8, orient: 'auto-start-reverse'},
    s('path', {d: 'M0,0 L10,5 L0,10 z', class: 'arrowhead'}))));
  const rowY = (b, col) => {
    const i = b.rows.findIndex((r) => r.name === col);
    return i < 0 ? b.y + HEAD / 2 : b.y + HEAD + i * ROW + ROW / 2 + 2;
  };
  const edges = s('g', {class: 'edges'});
  const nodes = s('g', {class: 'nodes'});
  for (const b of boxes.values()) {
    const node = s('g', {class: 'table-node', 'data-table': b.t.name},
      s('rect', {x: b.x, y: b.y, width: BOX_W, height: b.h, rx: 6, class: 'box'}),
      s('rect', {x: b.x, y: b.y, width: BOX_W, height: HEAD, rx: 6, class: 'box-head'}),
      s('text', {x: b.x + 10, y: b.y + 19, class: 'table-name'}, clip(b.t.name, 28)),
      s('title', {}, `${b.t.name}: ${(b.t.columns || []).length} columns`));
    b.rows.forEach((c, i) => {
      const y = b.y + HEAD + i * ROW + ROW / 2 + 6;
      const tag = c.pk ? 'PK' : c.fk ? 'FK' : c.time ? 'T' : '';
      add(node, 
        s('text', {x: b.x + 10, y, class: ['tag', c.pk && 'tag-pk', !c.pk && c.fk && 'tag-fk', !c.pk && !c.fk && c.time && 'tag-time']}, tag),
        s('text', {x: b.x + 36, y, class: ['col', (c.pk || c.fk) && 'key']}, clip(c.name, 20), s('title', {}, `${c.name} ${c.type}${c.nullable ? ' (nullable)' : ''}`)),
        s('text', {x: b.x + BOX_W - 10, y, 'text-anchor': 'end', class: 'type'}, clip(c.type, 14)));
    });
    if (b.rows.length === 0 && b.hidden === 0) add(node, s('text', {x: b.x + 10, y: b.y + HEAD + 15, class: 'type'}, 'no columns'));
    if (b.hidden > 0) {
      add(node, s('text', {x: b.x + 10, y: b.y + HEAD + b.rows.length * ROW + 15, class: 'type'}, `+ ${b.hidden} more column${b.hidden === 1 ? '' : 's'}`));
    }
    add(nodes, node);
    for (const fk of b.t.foreign_keys || []) {
      const to = boxes.get(fk.ref_table);
      if (!to) continue;
      const sy = rowY(b, fk.columns[0]);
      const ey = rowY(to, (fk.ref_columns || [])[0]);
      let d;
      if (to === b) {
        const x = b.x + BOX_W;
        d = `M${x},${sy} C${x + 45},${sy} ${x + 45},${ey} ${x + 2},${ey}`;
      } else if (to.x < b.x) {
        const sx = b.x;
        const ex = to.x + BOX_W;
        const mid = (sx - ex) / 2;
        d = `M${sx},${sy} C${sx - mid},${sy} ${ex + mid},${ey} ${ex + 2},${ey}`;
      } else {
        const sx = b.x + BOX_W;
        const ex = to.x + BOX_W;
        const out = Math.max(sx, ex) + 50;
        d = `M${sx},${sy} C${out},${sy} ${out},${ey} ${ex + 2},${ey}`;
      }
      add(edges, s('path', {d, class: 'fk-edge', 'marker-end': 'url(#arrow)', 'data-from': b.t.name, 'data-to': fk.ref_table},
        s('title', {}, `${b.t.name}(${fk.columns.join(', ')}) → ${fk.ref_table}(${(fk.ref_columns || []).join(', ')})`)));
    }
  }
  add(svg, edges, nodes);
  return svg;
}

export default {
  path: '/graph',
  title: 'Graph',
  nav: true,
  role: 'viewer',
  async render(ctx) {
    let g;
    add(ctx.main, h('h1', {}, 'Schema graph'));
    try {
      g = await ctx.api.get(ctx.api.paths.graph);
    } catch (e) {
      if (e.status === 404) {
        add(ctx.main, h('p', {class: 'muted'}, 'No agent has reported a schema yet. Start ferry-agent: it reports its tables when it connects.'));
        return;
      }
      throw e;
    }
    const tables = g.tables || [];
    const fks = tables.reduce((n, t) => n + (t.foreign_keys || []).length, 0);
    const holder = h('div', {class: 'diagram'});
    const all = h('input', {type: 'checkbox', id: 'all-columns', onchange: () => add(clear(holder), diagram(g, {all: all.checked}))});
    add(holder, diagram(g));
    add(ctx.main, 
      h('p', {class: 'muted'}, `${tables.length} table${tables.length === 1 ? '' : 's'} and ${fks} foreign key${fks === 1 ? '' : 's'}, as agent ${g.agent_id} last reported them; queries are planned against this schema.`),
      h('p', {}, h('label', {class: 'check'}, all, ' Show every column')),
      section('Tables and keys', {id: 'graph'}, holder,
        h('p', {class: 'legend-line'}, h('span', {class: 'tag tag-pk'}, 'PK'), ' primary key ', h('span', {class: 'tag tag-fk'}, 'FK'), ' foreign key (arrow to the table it references) ',
          h('span', {class: 'tag tag-time'}, 'T'), ' time column')));
  },
};
