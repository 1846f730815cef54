// JSON over fetch, with the API's error shape: every call resolves to
// {ok, status, data, error} — error is {code, message, field} when the
// server refused, so a form can show the message at the field it names.

async function call(method, path, body) {
  const opts = { method, headers: {}, credentials: 'same-origin' };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, opts);
  } catch (e) {
    return { ok: false, status: 0, data: null, error: { code: 'network', message: 'Cannot reach Patient Pass; check your connection and try again.' } };
  }
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (e) { data = null; }
  }
  if (res.ok) return { ok: true, status: res.status, data, error: null };
  const error = (data && data.error) || { code: 'internal', message: 'Something went wrong (' + res.status + ').' };
  if (res.status === 401 && onUnauthenticated && path !== '/api/session') onUnauthenticated();
  return { ok: false, status: res.status, data, error };
}

let onUnauthenticated = null;

// whenLoggedOut registers what to do when the session has ended.
export function whenLoggedOut(fn) { onUnauthenticated = fn; }

export const api = {
  get: (path) => call('GET', path),
  post: (path, body) => call('POST', path, body === undefined ? {} : body),
  put: (path, body) => call('PUT', path, body),
  del: (path) => call('DELETE', path),
};

// newRef is a command's client-generated ref: repeating a command with the
// same ref is safe, so a retry after a dropped connection reuses it.
export function newRef() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}
