// The platform's API, from a page served on its own origin (or, for the widget, the URL it is given).
// The token travels only in the Authorization header; nothing is logged or stored beyond the tab.

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.code = code;
  }

  get signedOut() {
    return this.status === 401 || this.status === 403;
  }
}

export class Api {
  // `token`: a bearer credential; or `signer` (console on a deployed API): async ({method, url, body}) ->
  // {url, headers} adding an AWS SigV4 signature instead.
  constructor(base, token, signer = null) {
    this.base = base.endsWith("/") ? base : `${base}/`;
    this.token = token;
    this.signer = signer;
  }

  async get(path, query = {}) {
    return this.send("GET", path, { query });
  }

  // A write (PUT / DELETE) with a JSON body: only credentials that may write get past the API.
  async send(method, path, { query = {}, body: payload } = {}) {
    const url = new URL(path.replace(/^\//, ""), this.base);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const text = payload === undefined ? undefined : JSON.stringify(payload);
    let target = url.toString();
    let headers = { Accept: "application/json" };
    if (this.signer) {
      const signed = await this.signer({ method, url: target, body: text ?? "" });
      target = signed.url;
      headers = { ...headers, ...signed.headers };
    } else headers.Authorization = `Bearer ${this.token}`;
    if (payload !== undefined) headers["Content-Type"] = "application/json";
    const response = await fetch(target, {
      method,
      headers,
      body: text,
      credentials: "omit",
      cache: "no-store",
    });
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    if (!response.ok) throw new ApiError(response.status, body?.code, body?.message);
    return body;
  }

  // A route this deployment may not have (API Gateway: 403 for an unknown path, or outside the token's policy;
  // 404/405 locally): null, so the page leaves its section out; any other failure is thrown.
  async optional(path, query) {
    try {
      return await this.get(path, query);
    } catch (error) {
      if (error instanceof ApiError && [403, 404, 405].includes(error.status)) return null;
      throw error;
    }
  }
}

// The API's base URL for a page served by the platform: the folder the page is in (the stage's root on
// API Gateway, `/` locally), so `v1/...` resolves under the same stage as the page.
export function platformBase() {
  return new URL(".", window.location.href).toString();
}
