// Sign-in: a link to the control plane's OpenID Connect login, which sends
// the browser to the tenant's identity provider and back to the console.
import {h, add} from '../dom.js';

const TENANT_KEY = 'ferry.tenant';

function loginHref(tenant, next) {
  const q = new URLSearchParams();
  if (tenant) q.set('tenant', tenant);
  q.set('return_to', '/console/' + (next ? '#' + next : ''));
  return '/auth/login?' + q.toString();
}

export default {
  path: '/signin',
  title: 'Sign in',
  public: true,
  async render(ctx) {
    let me = null;
    try {
      me = await ctx.api.get(ctx.api.paths.me);
    } catch (e) {
      if (e.status !== 401) throw e;
    }
    const next = ctx.query.get('next') || '/jobs';
    if (me) {
      ctx.setMe(me);
      ctx.go(next);
      return;
    }
    const fromURL = new URLSearchParams(location.search).get('tenant');
    let tenant = fromURL || localStorage.getItem(TENANT_KEY) || '';
    const link = h('a', {class: 'button primary', id: 'signin', href: loginHref(tenant, next)}, 'Sign in with single sign-on');
    const input = h('input', {id: 'tenant', name: 'tenant', value: tenant, autocomplete: 'organization', placeholder: 'e.g. acme',
      oninput: () => {
        tenant = input.value.trim();
        link.href = loginHref(tenant, next);
      }});
    link.addEventListener('click', () => {
      if (tenant) localStorage.setItem(TENANT_KEY, tenant);
      else localStorage.removeItem(TENANT_KEY);
    });
    let msg = null;
    if (ctx.query.get('expired')) msg = h('div', {class: 'alert', role: 'status'}, 'Your session has ended. Sign in again.');
    if (ctx.query.get('signed_out')) msg = h('div', {class: 'alert alert-ok', role: 'status'}, 'You are signed out.');
    add(ctx.main, h('div', {class: 'signin card'},
      h('h1', {}, 'Sign in to Ferry'),
      msg,
      h('p', {}, 'Ferry signs you in through your organisation\'s identity provider. Your role (viewer, editor or admin) comes from your groups there.'),
      h('label', {for: 'tenant'}, 'Tenant'),
      input,
      h('p', {class: 'hint'}, 'Leave it empty when this control plane has a single identity provider.'),
      link));
  },
};
