// The tenant portal: plan and status, quotas with grants, usage by day, open reservations and recent
// events of one tenant, read with a portal token (read-only, minted by the operator or the tenant's admin).
import { Api, ApiError, platformBase } from "./api.js";
import { renderUsageChart } from "./chart.js";
import { byId, clear, el, stackTable } from "./dom.js";
import { amount, day, groupDigits, humanize, moment, money, ratio, relative } from "./format.js";
import * as session from "./session.js";

const SESSION_KEY = "billing-portal";
const enc = encodeURIComponent;

function show(id, visible) {
  byId(id).hidden = !visible;
}

function signIn(message) {
  session.forget(SESSION_KEY);
  show("app", false);
  show("sign-in", true);
  byId("sign-in-message").textContent = message || "Open the link your provider gave you, or paste a portal token.";
  byId("session-info").textContent = "";
}

function badge(text, kind) {
  return el("span", { class: `badge badge-${kind}`, text });
}

const STATUS_KIND = { active: "ok", trialing: "ok", past_due: "warn", suspended: "bad", canceled: "muted" };

function renderPlan(ent) {
  const box = clear(byId("plan"));
  box.append(
    el("div", { class: "plan-name" }, el("span", { class: "label", text: "Plan" }), el("strong", { id: "plan-id", text: ent.plan_id })),
    el("div", {}, el("span", { class: "label", text: "Status" }), badge(ent.status, STATUS_KIND[ent.status] || "muted")),
    el(
      "div",
      {},
      el("span", { class: "label", text: "Period" }),
      el("span", { id: "period", dataset: { start: ent.period_start, end: ent.period_end } }, `${day(ent.period_start)} – ${day(ent.period_end)}`),
    ),
  );
  byId("tenant-name").textContent = ent.tenant_id;
}

function grantRows(grants) {
  if (!grants.length) return el("p", { class: "muted small", text: "No credit grants." });
  return stackTable({
    caption: "Credit grants",
    cls: "grants",
    columns: [{ label: "Grant" }, { label: "Remaining", num: true }, { label: "Amount", num: true }, { label: "Expires" }],
    rows: grants.map((g) => ({
      data: { grantId: g.grant_id },
      attrs: [{}, { "data-field": "grant-remaining" }, { "data-field": "grant-amount" }, { "data-field": "grant-expires", "data-value": g.expires_at || "" }],
      cells: [
        [el("span", { class: "grant-reason", text: g.reason || g.source || g.grant_id }), " ", badge(g.status, g.status === "active" ? "ok" : "muted")],
        amount(el, g.remaining),
        amount(el, g.amount),
        g.expires_at ? moment(g.expires_at) : "Never",
      ],
    })),
  });
}

function renderQuotas(ent) {
  const box = clear(byId("quotas"));
  if (!ent.quotas.length) {
    box.append(el("p", { class: "muted", text: "This plan has no quotas." }));
    return;
  }
  for (const q of ent.quotas) {
    const share = ratio(q.used, q.limit);
    const level = share >= 1 ? "bad" : share >= 0.8 ? "warn" : "ok";
    const fill = el("div", { class: `bar-fill bar-${level}` });
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    const title = humanize(q.resource_type);
    box.append(
      el(
        "article",
        { class: "card quota", dataset: { resource: q.resource_type } },
        el("header", { class: "card-head" }, el("h3", { text: title }), q.policy ? badge(q.policy, "muted") : null),
        el(
          "div",
          {
            class: "bar",
            role: "progressbar",
            "aria-label": `${title} used`,
            "aria-valuemin": "0",
            "aria-valuemax": "100",
            "aria-valuenow": String(Math.round(share * 100)),
            "aria-valuetext": `${groupDigits(q.used)} of ${q.limit === null ? "unlimited" : groupDigits(q.limit)}`,
          },
          fill,
        ),
        el(
          "dl",
          { class: "figures" },
          el("div", {}, el("dt", { text: "Used" }), el("dd", { "data-field": "used" }, amount(el, q.used))),
          el("div", {}, el("dt", { text: "Limit" }), el("dd", { "data-field": "limit" }, q.limit === null ? "Unlimited" : amount(el, q.limit))),
          el("div", {}, el("dt", { text: "Remaining" }), el("dd", { "data-field": "remaining" }, amount(el, q.remaining))),
          el("div", {}, el("dt", { text: "From grants" }), el("dd", { "data-field": "from-grants" }, amount(el, q.grant_remaining ?? "0"))),
        ),
        el("p", { class: "muted small" }, q.period_end ? `Resets ${day(q.period_end)} (${relative(q.period_end)})` : ""),
        grantRows(q.grants || []),
      ),
    );
  }
}

async function renderUsage(api, tenant, resources) {
  const select = byId("usage-resource");
  const days = byId("usage-days");
  clear(select);
  for (const r of resources) select.append(el("option", { value: r, text: humanize(r) }));
  show("usage", resources.length > 0);
  const draw = async () => {
    if (!select.value) return;
    const trend = await api.get(`v1/tenants/${enc(tenant)}/usage`, { resource_type: select.value, days: days.value });
    const title = humanize(trend.resource_type);
    byId("usage-total").replaceChildren("Total over ", String(trend.days), " days: ", amount(el, trend.total));
    renderUsageChart(byId("usage-chart"), { title, series: [{ label: title, points: trend.points }] });
  };
  select.onchange = () => draw().catch(failed);
  days.onchange = () => draw().catch(failed);
  await draw();
}

function renderReservations(answer) {
  const box = clear(byId("reservations-body"));
  if (!answer.items.length) {
    box.append(el("p", { class: "muted", text: "No open reservations." }));
    return;
  }
  box.append(
    stackTable({
      id: "reservations-table",
      caption: "Open reservations",
      columns: [{ label: "Reservation" }, { label: "Resource" }, { label: "Held", num: true }, { label: "Reserved" }, { label: "Expires" }],
      rows: answer.items.map((r) => ({
        data: { reservationId: r.reservation_id },
        attrs: [{ class: "mono" }, {}, { "data-field": "estimate", class: "num" }],
        cells: [r.reservation_id.slice(0, 12), humanize(r.resource_type), amount(el, r.estimate), moment(r.reserved_at), `${moment(r.expires_at)} (${relative(r.expires_at)})`],
      })),
    }),
  );
  if (answer.truncated) box.append(el("p", { class: "muted small", text: "Showing the first 100." }));
}

const EVENT_NAMES = {
  "billing.quota.threshold_crossed": "Threshold crossed",
  "billing.grant.depleted": "Grant used up",
  "billing.grant.expired": "Grant expired",
};

function renderEvents(answer) {
  const box = clear(byId("events-body"));
  if (!answer.items.length) {
    box.append(el("p", { class: "muted", text: "No threshold events this period." }));
    return;
  }
  box.append(
    stackTable({
      id: "events-table",
      caption: "Recent events",
      columns: [{ label: "When" }, { label: "Event" }, { label: "Resource" }, { label: "Detail" }],
      rows: answer.items.map((e) => ({
        data: { eventId: e.event_id },
        cells: [
          moment(e.occurred_at),
          EVENT_NAMES[e.type] || e.type,
          humanize(e.resource_type),
          e.threshold_percent !== null
            ? [el("strong", { "data-field": "percent", text: `${e.threshold_percent}%` }), " · ", amount(el, e.used), " of ", amount(el, e.limit)]
            : e.grant_id || "",
        ],
      })),
    }),
  );
}

function cash(minor, currency, field) {
  return el("span", { class: "num", "data-field": field, dataset: { value: String(minor) }, text: money(minor, currency) });
}

function renderMoney(cost, preview) {
  show("money", Boolean(cost || preview));
  show("cost", Boolean(cost));
  show("invoice", Boolean(preview));
  if (cost) {
    const box = clear(byId("cost-body"));
    box.append(el("p", { class: "big" }, cash(cost.amount, cost.currency, "cost-amount")));
    if (!cost.currency) box.append(el("p", { class: "muted", text: "Your plan has no usage prices." }));
    else if (cost.lines.length) {
      box.append(
        stackTable({
          id: "cost-table",
          caption: "Running cost by resource",
          columns: [{ label: "Resource" }, { label: "Used", num: true }, { label: "Billable", num: true }, { label: "Amount", num: true }],
          rows: cost.lines.map((l) => ({
            data: { resource: l.resource_type, value: l.value ?? "" },
            cells: [l.value ? `${humanize(l.resource_type)} · ${l.value}` : humanize(l.resource_type), amount(el, l.quantity), amount(el, l.billable), cash(l.amount, cost.currency, "line-amount")],
          })),
        }),
      );
    } else box.append(el("p", { class: "muted", text: "Nothing billable yet this period." }));
  }
  if (preview) {
    const box = clear(byId("invoice-body"));
    box.append(
      preview.lines.length ? stackTable({
        id: "invoice-table",
        caption: "Invoice preview lines",
        columns: [{ label: "Line" }, { label: "Quantity", num: true }, { label: "Amount", num: true }],
        rows: preview.lines.map((l) => ({
          data: { kind: l.kind },
          cells: [l.description, l.quantity === null ? "" : amount(el, l.quantity), cash(l.amount, preview.currency, "line-amount")],
        })),
      }) : el("p", { class: "muted", text: "No charges this period so far." }),
      el(
        "dl",
        { class: "totals" },
        el("div", {}, el("dt", { text: "Subtotal" }), el("dd", {}, cash(preview.subtotal, preview.currency, "subtotal"))),
        el("div", {}, el("dt", { text: "Credit" }), el("dd", {}, cash(-preview.credit, preview.currency, "credit"))),
        el("div", { class: "total" }, el("dt", { text: "Total if the period closed now" }), el("dd", {}, cash(preview.total, preview.currency, "total"))),
      ),
    );
  }
}

function failed(error) {
  if (error instanceof ApiError && error.signedOut) {
    signIn("Your portal link has expired or is not valid for this account. Ask for a new link.");
    return;
  }
  const box = byId("problem");
  box.textContent = `Something went wrong loading your usage (${error.message}). Try again in a moment.`;
  box.hidden = false;
}

async function open(credential) {
  const api = new Api(platformBase(), credential.token);
  const tenant = credential.tenant;
  // The entitlements answer first: a refused token stops here, so the page reads nothing else with it.
  let ent;
  try {
    ent = await api.get(`v1/tenants/${enc(tenant)}/entitlements`);
  } catch (error) {
    failed(error);
    return;
  }
  session.save(SESSION_KEY, credential);
  show("sign-in", false);
  show("app", true);
  byId("session-info").textContent = `Signed in to ${tenant}`;
  renderPlan(ent);
  renderQuotas(ent);
  const [reservations, events, cost, preview] = await Promise.all([
    api.get(`v1/tenants/${enc(tenant)}/reservations`),
    api.get(`v1/tenants/${enc(tenant)}/events`, { limit: 20 }),
    // Deployments without the cost routes answer 403/404 for them: the sections then stay hidden.
    api.optional(`v1/tenants/${enc(tenant)}/cost`),
    api.optional(`v1/tenants/${enc(tenant)}/invoice-preview`),
  ]);
  renderReservations(reservations);
  renderEvents(events);
  renderMoney(cost, preview);
  await renderUsage(api, tenant, ent.quotas.map((q) => q.resource_type));
  document.body.dataset.state = "ready";
}

function start() {
  byId("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const tenant = byId("sign-in-tenant").value.trim();
    const token = byId("sign-in-token").value.trim();
    if (tenant && token) open({ tenant, token }).catch(failed);
  });
  byId("sign-out").addEventListener("click", () => signIn("You are signed out."));
  const credential = session.takeFromFragment(["tenant", "token"]) || session.load(SESSION_KEY);
  if (!credential) {
    signIn();
    document.body.dataset.state = "signed-out";
    return;
  }
  open(credential)
    .catch(failed)
    .finally(() => {
      if (!document.body.dataset.state) document.body.dataset.state = byId("app").hidden ? "signed-out" : "ready";
    });
}

start();
