// HTTP to the collector's API: JSON in and out, the session's CSRF token on
// every change, and the one place that notices a session has ended (401).
// URLs are relative to the page so a reverse proxy may serve the dashboard
// under a prefix.

/** An API answer that is not 2xx: `message` is the server's sentence for a person. */
export class ApiError extends Error {
  constructor(status, message, retryAfter = null, data = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.retryAfter = retryAfter; // seconds, from Retry-After (429)
    this.data = data; // the answer's JSON (409 current_version, 422 problems)
  }
}

let csrf = null;
// Bumped on every login and logout: a 401 answering a request sent under an
// earlier session must not end the new one.
let epoch = 0;
let sessionEnded = null;

/** The session now in use (its CSRF token), or null when logged out. */
export function useSession(me) {
  csrf = me?.csrf_token || null;
  epoch += 1;
}

/** fn(message) runs when an API call answers 401 (session expired, revoked, logged out elsewhere). */
export function onSessionEnded(fn) { sessionEnded = fn; }

export function apiUrl(path) { return new URL(path, document.baseURI).href; }

/**
 * One API call. `auth: false` for the login endpoints, whose 401 means a
 * wrong password rather than an ended session. Resolves to the answer's JSON
 * (null for 204); rejects with an ApiError (or the fetch's own error).
 */
export async function request(method, path, { body, signal, auth = true, next = false } = {}) {
  const headers = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  // The cookie alone must not be enough to change anything (CSRF).
  if (method !== 'GET' && csrf) headers['x-csrf-token'] = csrf;
  const sentIn = epoch;
  const res = await fetch(apiUrl(path), {
    method,
    signal,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: 'no-store',
    credentials: 'same-origin',
  });
  let data = null;
  if (res.status !== 204) {
    try { data = await res.json(); } catch (_) { /* not JSON */ }
  }
  if (!res.ok) {
    const retry = Number(res.headers.get('retry-after'));
    const err = new ApiError(res.status, (data && data.error) || `HTTP ${res.status}`, Number.isFinite(retry) && retry > 0 ? retry : null, data);
    if (res.status === 401 && auth && sentIn === epoch) sessionEnded?.(err.message);
    throw err;
  }
  // A paged answer: the next page's cursor travels in a header.
  return next ? { data, next: res.headers.get('x-next-cursor') } : data;
}

export const getJSON = (path, opts) => request('GET', path, opts);
/** A GET that pages: { data, next } (next: the cursor of the next page, or null). */
export const getPage = (path, opts) => request('GET', path, { ...opts, next: true });
export const postJSON = (path, body, opts) => request('POST', path, { ...opts, body });
export const patchJSON = (path, body, opts) => request('PATCH', path, { ...opts, body });
export const deleteJSON = (path, opts) => request('DELETE', path, opts);

/**
 * Send a file as the body (a list upload) with progress: onProgress(sent,
 * total) while it goes up. Same answers and errors as `request`.
 */
export function upload(method, path, file, { contentType, onProgress } = {}) {
  const sentIn = epoch;
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open(method, apiUrl(path));
    xhr.withCredentials = true;
    xhr.setRequestHeader('accept', 'application/json');
    if (contentType) xhr.setRequestHeader('content-type', contentType);
    if (csrf) xhr.setRequestHeader('x-csrf-token', csrf);
    if (onProgress) xhr.upload.addEventListener('progress', (e) => onProgress(e.loaded, e.lengthComputable ? e.total : file.size));
    xhr.addEventListener('error', () => reject(new Error('network error')));
    xhr.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
    xhr.addEventListener('load', () => {
      let data = null;
      try { data = JSON.parse(xhr.responseText); } catch (_) { /* not JSON */ }
      if (xhr.status >= 200 && xhr.status < 300) { resolve(data); return; }
      const err = new ApiError(xhr.status, (data && data.error) || `HTTP ${xhr.status}`, null, data);
      if (xhr.status === 401 && sentIn === epoch) sessionEnded?.(err.message);
      reject(err);
    });
    xhr.send(file);
  });
}
