// Where a page keeps its credential: this tab only (sessionStorage), taken from the link's fragment
// (`#tenant=...&token=...`, never sent to a server or written to its logs) and then removed from the URL.

export function takeFromFragment(names, optional = []) {
  const hash = window.location.hash.replace(/^#/, "");
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const found = Object.fromEntries(names.map((n) => [n, params.get(n)]));
  if (!names.every((n) => found[n])) return null;
  for (const name of optional) if (params.get(name)) found[name] = params.get(name);
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  return found;
}

export function load(key) {
  try {
    const raw = window.sessionStorage.getItem(key);
    return raw ? JSON.parse(raw) : null;
  } catch {
    return null;
  }
}

export function save(key, value) {
  window.sessionStorage.setItem(key, JSON.stringify(value));
}

export function forget(key) {
  window.sessionStorage.removeItem(key);
}
