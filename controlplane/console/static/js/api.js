// The user API, called with the browser's session cookie. Calls that change
// state carry the CSRF token: the __Host-ferry_csrf cookie's value in
// X-Ferry-CSRF (the API refuses them without it). A 401 anywhere means the
// session is gone: the app sends the user to sign in.

export const CSRF_COOKIE = '__Host-ferry_csrf';
export const CSRF_HEADER = 'X-Ferry-CSRF';

// APIError is a refused or failed call: status and the API's message.
export class APIError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === CSRF_COOKIE) return decodeURIComponent(v.join('='));
  }
  return '';
}

// call sends one request and returns the decoded JSON body (null for an
// empty one); it throws APIError for any status of 400 or more.
export async function call(method, path, body) {
  const headers = {Accept: 'application/json'};
  if (method !== 'GET' && method !== 'HEAD') headers[CSRF_HEADER] = csrfToken();
  const init = {method, headers, credentials: 'same-origin', cache: 'no-store', redirect: 'error'};
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new APIError(0, `the control plane did not answer (${e.message})`);
  }
  const text = await resp.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = {error: text.slice(0, 200)};
    }
  }
  if (!resp.ok) {
    const msg = (data && data.error) || resp.statusText || `HTTP ${resp.status}`;
    if (resp.status === 401) window.dispatchEvent(new CustomEvent('ferry:unauthorized', {detail: msg}));
    throw new APIError(resp.status, msg);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const post = (path, body) => call('POST', path, body === undefined ? {} : body);
export const del = (path) => call('DELETE', path);

// Paths of the user API the console uses.
export const paths = {
  me: '/auth/me',
  login: '/auth/login',
  logout: '/auth/logout',
  jobs: '/v1/jobs',
  job: (id) => `/v1/jobs/${encodeURIComponent(id)}`,
  cancel: (id) => `/v1/jobs/${encodeURIComponent(id)}/cancel`,
  agents: '/v1/agents',
  enrollments: '/v1/agents/enrollments',
  revoke: (id) => `/v1/agents/${encodeURIComponent(id)}/revoke`,
  graph: '/v1/graph',
  audit: '/v1/audit',
  connections: '/v1/connections',
  connection: (id) => `/v1/connections/${encodeURIComponent(id)}`,
  queries: '/v1/queries',
  query: (id) => `/v1/queries/${encodeURIComponent(id)}`,
  support: '/v1/support/requests',
  supportDecision: (id, what) => `/v1/support/requests/${encodeURIComponent(id)}/${what}`,
  tokens: '/v1/tokens',
  token: (id) => `/v1/tokens/${encodeURIComponent(id)}`,
};
