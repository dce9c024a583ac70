// Calls to the scootfleet API with the operator's token; problems become thrown errors
// carrying the problem document's `code` and `detail`.

const TOKEN_KEY = 'scootfleet.operator.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || `The server answered ${status}.`);
    this.status = status;
    this.code = problem?.code || 'error';
    // For refused forms: [{field, detail}], each shown next to its field.
    this.errors = problem?.errors || [];
  }
}

export async function call(method, path, body, { raw = false } = {}) {
  const headers = {};
  if (token()) headers.Authorization = `Bearer ${token()}`;
  let payload;
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = raw ? body : JSON.stringify(body);
  }
  const response = await fetch(path, { method, headers, body: payload });
  const text = await response.text();
  const data = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401) setToken(null);
    throw new ApiError(response.status, data);
  }
  return data;
}

export const get = (path) => call('GET', path);
export const put = (path, body, options) => call('PUT', path, body, options);
export const post = (path, body) => call('POST', path, body);

// Every page of a cursor-paged list (`?after=` … `next`).
export async function getAllPages(path, key) {
  const items = [];
  let after = null;
  for (;;) {
    const separator = path.includes('?') ? '&' : '?';
    const page = await get(after ? `${path}${separator}after=${encodeURIComponent(after)}` : path);
    items.push(...(page[key] || []));
    if (!page.next) return items;
    after = page.next;
  }
}
