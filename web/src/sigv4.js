// AWS Signature Version 4 for the console on a deployed API, whose operator routes use IAM authorization:
// the operator signs in with AWS credentials (best a short-lived session from `aws sts get-session-token`
// or `aws configure export-credentials`), kept in this tab only, and each request is signed here with
// WebCrypto, as botocore signs it (tests/unit/portal/test_console_sigv4.py compares the two).
const encoder = new TextEncoder();

function hex(buffer) {
  return [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(text) {
  return hex(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
}

async function hmac(key, text) {
  const raw = typeof key === "string" ? encoder.encode(key) : key;
  const imported = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", imported, encoder.encode(text));
}

// RFC 3986 encoding as SigV4 wants it: unreserved characters kept, every other byte %XX in upper case.
export function uriEncode(text) {
  return encodeURIComponent(text).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

// The URL with its query in canonical form (sorted, RFC 3986), so what is sent is exactly what was signed.
export function canonicalUrl(url) {
  const parsed = new URL(url);
  const pairs = [...parsed.searchParams.entries()].map(([k, v]) => [uriEncode(k), uriEncode(v)]);
  pairs.sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0));
  const query = pairs.map(([k, v]) => `${k}=${v}`).join("&");
  return { parsed, query, href: `${parsed.origin}${parsed.pathname}${query ? `?${query}` : ""}` };
}

// credentials: { accessKeyId, secretAccessKey, sessionToken?, region }. Returns the URL to fetch and the
// headers to add (Authorization, X-Amz-Date, X-Amz-Security-Token); the browser sets Host itself.
export async function sign({ method, url, credentials, body = "", service = "execute-api", now = new Date() }) {
  const { parsed, query, href } = canonicalUrl(url);
  const amzDate = now.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = amzDate.slice(0, 8);
  const headers = { host: parsed.host, "x-amz-date": amzDate };
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  const names = Object.keys(headers).sort();
  const canonicalHeaders = names.map((n) => `${n}:${headers[n].trim()}\n`).join("");
  const signedHeaders = names.join(";");
  // API Gateway encodes the (already encoded) path once more, as botocore does for every service but S3.
  const path = parsed.pathname.split("/").map(uriEncode).join("/") || "/";
  const request = [method.toUpperCase(), path, query, canonicalHeaders, signedHeaders, await sha256(body)].join("\n");
  const scope = `${day}/${credentials.region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", amzDate, scope, await sha256(request)].join("\n");
  let key = await hmac(`AWS4${credentials.secretAccessKey}`, day);
  for (const part of [credentials.region, service, "aws4_request"]) key = await hmac(key, part);
  const signature = hex(await hmac(key, toSign));
  const out = {
    Authorization: `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, SignedHeaders=${signedHeaders}, Signature=${signature}`,
    "X-Amz-Date": amzDate,
  };
  if (credentials.sessionToken) out["X-Amz-Security-Token"] = credentials.sessionToken;
  return { url: href, headers: out };
}
