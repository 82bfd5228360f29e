// The console's shell: who is signed in, the navigation, and a router from
// the location's hash (#/jobs/j-1?x=y) to a page module.
//
// A page module exports {path, title, role, nav, navLabel, render(ctx)}: path
// may hold :params, role is the least role that may open it (the API's own
// rule for what the page calls; the API still enforces it), nav puts it in
// the menu (as navLabel, else title).
// A new page slots in by adding its module to the pages list below.

import {h, add, clear} from './dom.js';
import * as api from './api.js';
import jobs from './pages/jobs.js';
import job from './pages/job.js';
import submit from './pages/submit.js';
import agents from './pages/agents.js';
import graph from './pages/graph.js';
import audit from './pages/audit.js';
import tokens from './pages/tokens.js';
import support from './pages/support.js';
import connections from './pages/connections.js';
import queries from './pages/queries.js';
import signin from './pages/signin.js';

const pages = [jobs, job, submit, queries, agents, connections, graph, audit, support, tokens, signin];

const RANK = {viewer: 1, editor: 2, admin: 3};

// allows reports whether role may do what needs the role need.
export function allows(role, need) {
  return (RANK[role] || 0) >= (RANK[need] || 0);
}

const state = {me: null, cleanups: [], seq: 0};

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/jobs';
  const [p, q] = raw.split('?');
  return {path: p || '/jobs', query: new URLSearchParams(q || ''), raw};
}

function match(pattern, path) {
  const a = pattern.split('/');
  const b = path.split('/');
  if (a.length !== b.length) return null;
  const params = {};
  for (let i = 0; i < a.length; i++) {
    if (a[i].startsWith(':')) params[a[i].slice(1)] = decodeURIComponent(b[i]);
    else if (a[i] !== b[i]) return null;
  }
  return params;
}

// go navigates to a console path such as '/jobs/j-1'.
export function go(path) {
  location.hash = '#' + path;
}

function cleanup() {
  for (const fn of state.cleanups.splice(0)) {
    try {
      fn();
    } catch (e) {
      console.error(e);
    }
  }
}

async function loadMe() {
  try {
    state.me = await api.get(api.paths.me);
  } catch (e) {
    if (e.status !== 401) throw e;
    state.me = null;
  }
  return state.me;
}

function renderWho() {
  const who = clear(document.getElementById('who'));
  if (!state.me) return;
  const me = state.me;
  add(who, 
    h('span', {class: 'user', id: 'who-user'}, me.email || me.user_id),
    h('span', {class: `role role-${me.role}`, id: 'who-role', title: `tenant ${me.tenant}`}, me.role),
    h('button', {type: 'button', class: 'link', id: 'signout', onclick: signOut}, 'Sign out'));
}

function renderNav(current) {
  const nav = clear(document.getElementById('nav'));
  if (!state.me) return;
  for (const p of pages) {
    if (!p.nav || !allows(state.me.role, p.role)) continue;
    const active = current && current.path === p.path;
    add(nav, h('a', {href: '#' + p.path, class: active ? 'active' : null, 'aria-current': active ? 'page' : null, 'data-nav': p.path.slice(1)}, p.navLabel || p.title));
  }
}

async function signOut() {
  try {
    await api.post(api.paths.logout);
  } catch (e) {
    console.warn('sign-out:', e.message);
  }
  state.me = null;
  go('/signin?signed_out=1');
}

// errorBox turns an error into what the user reads: a 403 says the role is
// not enough, anything else what failed.
export function errorBox(e) {
  if (e.status === 403) {
    return h('div', {class: 'alert alert-denied', role: 'alert', 'data-status': '403'},
      h('strong', {}, 'Not allowed. '), e.message,
      state.me ? ` (you are signed in as ${state.me.role})` : '');
  }
  return h('div', {class: 'alert', role: 'alert', 'data-status': String(e.status ?? '')},
    h('strong', {}, e.status ? `Error ${e.status}. ` : 'Error. '), e.message);
}

async function route() {
  cleanup();
  const seq = ++state.seq;
  const loc = parseHash();
  let page = null;
  let params = null;
  for (const p of pages) {
    params = match(p.path, loc.path);
    if (params) {
      page = p;
      break;
    }
  }
  const main = document.getElementById('main');
  if (!page) {
    renderNav(null);
    add(clear(main), h('h1', {}, 'Not found'), h('p', {}, 'No such page: ', h('code', {}, loc.path), '. ', h('a', {href: '#/jobs'}, 'Jobs')));
    return;
  }
  if (!page.public && !state.me) {
    try {
      await loadMe();
    } catch (e) {
      add(clear(main), errorBox(e));
      return;
    }
    if (seq !== state.seq) return;
    if (!state.me) {
      go('/signin?next=' + encodeURIComponent(loc.raw));
      return;
    }
  }
  renderWho();
  renderNav(page);
  document.title = `${page.title} · Ferry console`;
  clear(main);
  main.dataset.page = page.path;
  if (!page.public && !allows(state.me.role, page.role)) {
    add(main, h('h1', {}, page.title), h('div', {class: 'alert alert-denied', role: 'alert', id: 'role-refused'},
      `This page needs the ${page.role} role; you are signed in as ${state.me.role}.`));
    return;
  }
  const ctx = {
    main, params, query: loc.query, me: state.me, api, go, allows, errorBox,
    setMe(me) {
      state.me = me;
    },
    onCleanup(fn) {
      state.cleanups.push(fn);
    },
    // every runs fn now and then ms after each run ends, while the page is
    // shown and the tab visible.
    every(ms, fn) {
      let timer = null;
      let stopped = false;
      const tick = async () => {
        timer = null;
        if (stopped) return;
        if (!document.hidden) {
          try {
            await fn();
          } catch (e) {
            console.error(e);
          }
        }
        if (!stopped) timer = setTimeout(tick, ms);
      };
      state.cleanups.push(() => {
        stopped = true;
        if (timer) clearTimeout(timer);
      });
      tick();
      return () => {
        stopped = true;
      };
    },
  };
  try {
    await page.render(ctx);
  } catch (e) {
    if (seq === state.seq) add(main, errorBox(e));
  }
}

window.addEventListener('ferry:unauthorized', () => {
  if (!state.me) return;
  state.me = null;
  const loc = parseHash();
  if (loc.path !== '/signin') go('/signin?expired=1&next=' + encodeURIComponent(loc.raw));
});
window.addEventListener('hashchange', route);
route();
