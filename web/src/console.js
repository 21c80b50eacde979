// The operator console: pipeline freshness (the alarms' figures and thresholds), the tenant directory with
// plans and status, top consumers of the month, and a tenant's audit log and meter marks. Signed in with the
// local stack's operator token, or with AWS credentials whose SigV4 signature the deployed API's IAM
// authorization checks on the operator routes (the local stack checks it too, for `local-operator`).
import { Api, ApiError, platformBase } from "./api.js";
import { sign } from "./sigv4.js";
import { byId, clear, el, stackTable } from "./dom.js";
import { amount, day, humanize, moment, relative } from "./format.js";
import * as session from "./session.js";

const SESSION_KEY = "billing-console";
const REFRESH_MS = 10_000;
const enc = encodeURIComponent;
let timer = null;

function signIn(message) {
  session.forget(SESSION_KEY);
  if (timer) clearInterval(timer);
  byId("app").hidden = true;
  byId("sign-in").hidden = false;
  byId("sign-in-message").textContent = message || "Paste the operator token (`make dev` prints it).";
  document.body.dataset.state = "signed-out";
}

function seconds(value) {
  if (value === null || value === undefined) return "no data";
  if (value < 120) return `${value.toFixed(1)} s`;
  if (value < 7200) return `${(value / 60).toFixed(1)} min`;
  return `${(value / 3600).toFixed(1)} h`;
}

const LEVEL_TEXT = { ok: "OK", late: "Late", unknown: "No data" };
const LEVEL_KIND = { ok: "ok", late: "bad", unknown: "muted" };

function stat(id, title, figure, shownValue, hint) {
  const level = figure ? figure.level : "ok";
  return el(
    "article",
    { class: `card stat stat-${LEVEL_KIND[level] === "muted" ? "none" : LEVEL_KIND[level]}`, id, dataset: { level } },
    el("div", { class: "card-head" }, el("h3", { text: title }), el("span", { class: `badge badge-${LEVEL_KIND[level]}`, text: LEVEL_TEXT[level] })),
    el("div", { class: "value", "data-field": "value", dataset: { value: figure?.value ?? "" } }, shownValue),
    el("p", { class: "hint" }, hint),
  );
}

function renderFreshness(f) {
  const box = clear(byId("freshness"));
  const run = f.meter_reporter_last_run;
  box.append(
    stat("fresh-queue-age", "Oldest unprocessed usage message", f.usage_queue_oldest_message_age, seconds(f.usage_queue_oldest_message_age.value), `Alarm at ${seconds(f.usage_queue_oldest_message_age.threshold)} · ${f.usage_queue_visible} waiting, ${f.usage_queue_in_flight} in flight`),
    stat("fresh-aggregator", "Stream aggregator lag", f.aggregator_iterator_age, seconds(f.aggregator_iterator_age.value), `Alarm at ${seconds(f.aggregator_iterator_age.threshold)} · Lambda IteratorAge, last 5 min`),
    stat("fresh-meter", "Stripe meter reporting lag", f.meter_reporter_lag, seconds(f.meter_reporter_lag.value), run.started_at ? `Last run ${moment(run.started_at)} · ${run.events_sent} sent, ${run.events_failed} failed` : "The reporter has not run yet"),
    stat("fresh-usage-dlq", "Usage dead-letter queue", f.usage_dlq_depth, String(f.usage_dlq_depth.value ?? "no data"), "Messages the consumer gave up on (billing-admin dlq redrive)"),
    stat("fresh-webhook-dlq", "Webhook dead-letter queue", f.webhook_dlq_depth, String(f.webhook_dlq_depth.value ?? "no data"), "Tenant webhook deliveries that failed for good"),
  );
  byId("updated").textContent = `Updated ${moment(f.at)}`;
}

const STATUS_KIND = { active: "ok", trialing: "ok", past_due: "warn", suspended: "bad", canceled: "muted" };

function renderTenants(api, page) {
  const box = clear(byId("tenants-body"));
  if (!page.items.length) {
    box.append(el("p", { class: "muted", text: "No tenants yet: a tenant appears with its first API key or billing customer." }));
    return;
  }
  box.append(
    stackTable({
      id: "tenants-table",
      caption: "Tenants",
      columns: [{ label: "Tenant" }, { label: "Plan" }, { label: "Status" }, { label: "Period ends" }],
      rows: page.items.map((t) => {
        const open = el("button", { type: "button", class: "link-button", text: t.tenant_id });
        open.addEventListener("click", () => selectTenant(api, t.tenant_id).catch(failed));
        return {
          data: { tenantId: t.tenant_id },
          attrs: [{}, { "data-field": "plan" }, { "data-field": "status" }],
          cells: [open, t.plan_id, el("span", { class: `badge badge-${STATUS_KIND[t.status] || "muted"}`, text: t.status }), day(t.period_end)],
        };
      }),
    }),
  );
  if (page.next_cursor) box.append(el("p", { class: "muted small", text: "Showing the first 100 tenants." }));
}

async function renderTop(api) {
  const resource = byId("top-resource").value;
  const top = await api.get("v1/usage/top", { resource_type: resource, limit: 10 });
  const box = clear(byId("top-body"));
  if (!top.items.length) {
    box.append(el("p", { class: "muted", text: `No ${humanize(resource)} used this month.` }));
    return;
  }
  box.append(
    stackTable({
      id: "top-table",
      caption: `Top consumers of ${resource}`,
      columns: [{ label: "#" }, { label: "Tenant" }, { label: humanize(resource), num: true }],
      rows: top.items.map((t, i) => ({
        data: { tenantId: t.tenant_id },
        attrs: [{}, {}, { "data-field": "quantity" }],
        cells: [String(i + 1), t.tenant_id, amount(el, t.quantity)],
      })),
    }),
  );
}

async function selectTenant(api, tenantId) {
  for (const row of document.querySelectorAll("#tenants-table tbody tr")) row.classList.toggle("selected", row.dataset.tenantId === tenantId);
  const [audit, fresh] = await Promise.all([
    api.get(`v1/tenants/${enc(tenantId)}/audit`, { limit: 25 }),
    api.get("v1/ops/freshness", { tenant_id: tenantId }),
  ]);
  byId("tenant-detail").hidden = false;
  byId("detail-title").textContent = `Tenant ${tenantId}`;
  const meters = clear(byId("tenant-meters"));
  meters.append(
    stackTable({
      id: "meters-table",
      caption: "Last hours reported to Stripe",
      columns: [{ label: "Metered resource" }, { label: "Last hour reported to Stripe" }, { label: "Units of that hour", num: true }],
      rows: fresh.tenant.meters.map((m) => ({
        data: { resource: m.resource_type },
        cells: [humanize(m.resource_type), m.last_reported_hour ? `${m.last_reported_hour}:00 UTC` : "Nothing reported yet", m.reported === null ? "—" : amount(el, m.reported)],
      })),
    }),
  );
  const box = clear(byId("audit-body"));
  if (!audit.items.length) {
    box.append(el("p", { class: "muted", text: "No audit entries." }));
    return;
  }
  box.append(
    stackTable({
      id: "audit-table",
      caption: "Audit log",
      columns: [{ label: "When" }, { label: "Actor" }, { label: "Action" }, { label: "Target" }],
      rows: audit.items.map((a) => ({
        data: { entryId: a.id },
        attrs: [{}, { class: "mono" }, {}, { class: "mono" }],
        cells: [`${moment(a.at)} (${relative(a.at)})`, a.actor, a.action, a.target],
      })),
    }),
  );
}

function failed(error) {
  if (error instanceof ApiError && error.signedOut) {
    signIn("Those credentials were refused. Paste the operator token, or AWS credentials allowed to call the API.");
    return;
  }
  const box = byId("problem");
  box.textContent = `The console could not load (${error.message}).`;
  box.hidden = false;
}

function apiFor(credential) {
  if (!credential.aws) return new Api(platformBase(), credential.token);
  return new Api(platformBase(), null, (request) => sign({ ...request, credentials: credential.aws }));
}

// A deployed API's host names its region (<id>.execute-api.<region>.amazonaws.com); the local stack's is us-east-1.
function regionOfHost() {
  const match = /\.execute-api\.([a-z0-9-]+)\.amazonaws\.com$/.exec(window.location.hostname);
  return match ? match[1] : "us-east-1";
}

async function open(credential) {
  const api = apiFor(credential);
  let fresh;
  try {
    fresh = await api.get("v1/ops/freshness");
  } catch (error) {
    failed(error);
    return;
  }
  session.save(SESSION_KEY, credential);
  byId("sign-in").hidden = true;
  byId("app").hidden = false;
  renderFreshness(fresh);
  const tenants = await api.get("v1/tenants", { limit: 100 });
  renderTenants(api, tenants);
  byId("top-resource").onchange = () => renderTop(api).catch(failed);
  await renderTop(api);
  document.body.dataset.state = "ready";
  timer = setInterval(() => api.get("v1/ops/freshness").then(renderFreshness).catch(failed), REFRESH_MS);
}

function start() {
  byId("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId("sign-in-token").value.trim();
    if (token) open({ token }).catch(failed);
  });
  byId("aws-region").value = regionOfHost();
  byId("aws-sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = (id) => byId(id).value.trim();
    const aws = { accessKeyId: value("aws-key-id"), secretAccessKey: value("aws-secret"), region: value("aws-region") };
    if (value("aws-session-token")) aws.sessionToken = value("aws-session-token");
    open({ aws }).catch(failed);
  });
  byId("sign-out").addEventListener("click", () => signIn("You are signed out."));
  const credential = session.takeFromFragment(["token"]) || session.load(SESSION_KEY);
  if (!credential) {
    signIn();
    return;
  }
  open(credential)
    .catch(failed)
    .finally(() => {
      if (!document.body.dataset.state) document.body.dataset.state = byId("app").hidden ? "signed-out" : "ready";
    });
}

start();
