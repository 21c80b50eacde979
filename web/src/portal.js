// The tenant portal: plan and status, quotas with grants, usage by day or hour (grouped by a dimension or
// entity), running cost, invoice preview, spend cap, open reservations and recent events of one tenant, read
// with a portal token (read-only, minted by the operator or the tenant's admin) or an API key (an admin key
// may also change the spend cap). A token minted for one entity opens that entity's view instead.
import { Api, ApiError, platformBase } from "./api.js";
import { renderUsageChart } from "./chart.js";
import { byId, clear, el, stackTable } from "./dom.js";
import { amount, day, exactMoney, groupDigits, humanize, moment, money, ratio, relative, toMinor } from "./format.js";
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

const RANGES = {
  day: [["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"]],
  hour: [["24", "Last 24 hours"], ["48", "Last 48 hours"], ["168", "Last 7 days"]],
};
const DEFAULT_RANGE = { day: "30", hour: "48" };
const STEP_MS = { day: 86400000, hour: 3600000 };

// The last `count` whole UTC days or hours, the current one included, as the series route takes them.
function lastBuckets(granularity, count, now = Date.now()) {
  const step = STEP_MS[granularity];
  const end = Math.floor(now / step) * step + step;
  const iso = (ms) => new Date(ms).toISOString().replace(".000Z", "Z");
  return { start: iso(end - count * step), end: iso(end) };
}

function fillRanges(granularity, range) {
  clear(range);
  for (const [value, text] of RANGES[granularity]) range.append(el("option", { value, text }));
  range.value = DEFAULT_RANGE[granularity];
}

// The groupings the read model answers for this resource: its declared dimensions, and entity.
function fillGroups(group, dimensions) {
  const keep = group.value;
  const options = [["", "Not grouped"], ...dimensions.map((d) => [d, `By ${humanize(d)}`]), ["entity", "By entity"]];
  clear(group);
  for (const [value, text] of options) group.append(el("option", { value, text }));
  group.value = options.some(([value]) => value === keep) ? keep : "";
}

function usageSummary(answer, entity) {
  const box = byId("usage-total");
  const unit = answer.granularity === "hour" ? "hours" : "days";
  box.replaceChildren(`Total over ${answer.points.length} ${unit}: `, amount(el, answer.total));
  if (entity) box.append(` for ${entity}`);
  else if (answer.group_by) {
    box.append(
      " · other values: ",
      el("span", { "data-field": "other" }, amount(el, answer.other)),
      ` · without ${answer.group_by === "entity" ? "an entity" : `a ${humanize(answer.group_by).toLowerCase()}`}: `,
      el("span", { "data-field": "ungrouped" }, amount(el, answer.ungrouped)),
    );
    box.append(
      el(
        "dl",
        { class: "figures group-totals" },
        answer.groups.map((g) => el("div", { dataset: { group: g.value } }, el("dt", { text: g.value }), el("dd", {}, amount(el, g.total)))),
      ),
    );
  }
}

// `entity`: an entity's portal view (the API answers that entity's usage only; no other grouping).
async function renderUsage(api, tenant, resources, entity = null) {
  const select = byId("usage-resource");
  const granularity = byId("usage-granularity");
  const range = byId("usage-range");
  const group = byId("usage-group");
  clear(select);
  for (const r of resources) select.append(el("option", { value: r, text: humanize(r) }));
  fillRanges(granularity.value, range);
  group.hidden = Boolean(entity);
  show("usage", resources.length > 0);
  let generation = 0;
  const draw = async () => {
    if (!select.value) return;
    const asked = ++generation;
    const { start, end } = lastBuckets(granularity.value, Number(range.value));
    const chosen = [select.value, granularity.value, entity ? "" : group.value, range.value];
    const answer = await api.get(`v1/tenants/${enc(tenant)}/usage/series`, {
      resource_type: select.value,
      granularity: granularity.value,
      start,
      end,
      group_by: entity ? undefined : group.value || undefined,
      limit: 10,
    });
    if (asked !== generation) return; // a later choice is being drawn: this answer is stale
    if (!entity) fillGroups(group, answer.dimensions || []);
    const title = humanize(answer.resource_type);
    const grouped = Boolean(answer.group_by) && !entity && answer.groups.length > 0;
    const series = grouped
      ? answer.groups.map((g) => ({ label: g.value, key: `group:${g.value}`, points: g.points }))
      : [{ label: title, key: "total", points: answer.points }];
    usageSummary(answer, entity);
    renderUsageChart(byId("usage-chart"), { title, series, total: grouped ? answer.points : null, granularity: answer.granularity });
    document.body.dataset.usage = chosen.join(" ");
  };
  const redraw = () => draw().catch(failed);
  select.onchange = redraw;
  granularity.onchange = () => {
    fillRanges(granularity.value, range);
    redraw();
  };
  range.onchange = redraw;
  group.onchange = redraw;
  await draw();
}

function renderEntity(entity, limits) {
  show("entity", true);
  byId("entity-name").textContent = entity.name || entity.id;
  byId("entity-kind").textContent = [entity.kind, entity.id].filter(Boolean).join(" · ");
  const box = clear(byId("entity-limits"));
  if (!limits.items.length) {
    box.append(el("p", { class: "muted", text: "No limits are set for this entity." }));
    return;
  }
  box.append(
    stackTable({
      id: "entity-limits-table",
      caption: "Limits of this entity",
      columns: [{ label: "Resource" }, { label: "Limit", num: true }, { label: "Used", num: true }, { label: "Remaining", num: true }, { label: "Resets" }],
      rows: limits.items.map((l) => ({
        data: { resource: l.resource_type },
        attrs: [{}, { "data-field": "limit" }, { "data-field": "used" }, { "data-field": "remaining" }],
        cells: [humanize(l.resource_type), amount(el, String(l.limit)), amount(el, String(l.used)), amount(el, String(l.remaining)), l.period_end ? day(l.period_end) : "—"],
      })),
    }),
  );
}

// The spend cap and this period's spend; the edit form only for a credential that may change it (an
// admin API key: the API refuses the write to anything else, a portal token included).
function renderSpendCap(api, tenant, cap, currency, canEdit) {
  show("spend-cap", Boolean(cap));
  if (!cap) return;
  const cur = cap.currency || currency;
  const box = clear(byId("spend-cap-body"));
  const figure = (label, field, value, text) =>
    el("div", {}, el("span", { class: "label", text: label }), " ", el("strong", { class: "num", "data-field": field, dataset: { value: String(value ?? "") }, text }));
  box.append(
    el(
      "div",
      { class: "cap-figures" },
      figure("Spent this period", "cap-spend", cap.spend, exactMoney(cap.spend, cur)),
      cap.capped ? figure("Cap", "cap-amount", cap.amount, money(cap.amount, cur)) : el("span", { "data-field": "cap-amount", dataset: { value: "" }, text: "No spend cap" }),
      cap.capped ? badge(cap.kind, cap.kind === "hard" ? "warn" : "muted") : null,
    ),
  );
  if (cap.capped) {
    const share = ratio(cap.spend, cap.amount);
    const fill = el("div", { class: `bar-fill bar-${share >= 1 ? "bad" : share >= 0.8 ? "warn" : "ok"}` });
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    box.append(
      el("div", { class: "bar", role: "progressbar", "aria-label": "Spend against the cap", "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(share * 100)) }, fill),
    );
  }
  box.append(el("p", { class: "muted small", text: `Counted until ${day(cap.period_end)}.` }));
  const form = byId("spend-cap-form");
  form.hidden = !(canEdit && cur);
  if (form.hidden) return;
  byId("spend-cap-currency").textContent = cur.toUpperCase();
  byId("spend-cap-amount").value = cap.capped ? exactMoney(cap.amount, cur).replace(/[^\d.]/g, "") : "";
  byId("spend-cap-kind").value = cap.kind || "hard";
  byId("spend-cap-remove").hidden = !cap.capped;
  const status = byId("spend-cap-status");
  const saved = (answer, text) => {
    renderSpendCap(api, tenant, answer, cur, canEdit);
    byId("spend-cap-status").textContent = text;
  };
  form.onsubmit = (event) => {
    event.preventDefault();
    const minor = toMinor(byId("spend-cap-amount").value, cur);
    if (!minor) {
      status.textContent = `Enter an amount in ${cur.toUpperCase()}, e.g. 25.00.`;
      return;
    }
    // A PUT replaces the cap: the per resource and per entity caps and the thresholds (not edited here) are sent
    // back as they are, so changing the total never drops them.
    const body = { currency: cur, amount: minor, kind: byId("spend-cap-kind").value };
    if (cap.capped) Object.assign(body, { resources: cap.resources, entities: cap.entities || {}, thresholds: cap.thresholds });
    api
      .send("PUT", `v1/tenants/${enc(tenant)}/spend-cap`, { body })
      .then((answer) => saved(answer, "Cap saved."))
      .catch((error) => {
        status.textContent = `Not saved: ${error.message}`;
      });
  };
  byId("spend-cap-remove").onclick = () => {
    api
      .send("DELETE", `v1/tenants/${enc(tenant)}/spend-cap`)
      .then((answer) => saved(answer, "Cap removed."))
      .catch((error) => {
        status.textContent = `Not removed: ${error.message}`;
      });
  };
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

const PORTAL_TOKEN_PREFIX = "bpt_";

// An entity's view: that entity, its limits and its own usage (an entity-scoped portal token reads no more).
async function openEntity(api, credential) {
  const path = `v1/entities/${enc(credential.entity)}`;
  let entity;
  try {
    entity = await api.get(path);
  } catch (error) {
    failed(error);
    return;
  }
  session.save(SESSION_KEY, credential);
  show("sign-in", false);
  show("app", true);
  for (const id of ["plan", "quotas-section", "activity"]) show(id, false);
  byId("session-info").textContent = `Signed in to ${credential.tenant} · ${credential.entity}`;
  byId("tenant-name").textContent = entity.name || entity.id;
  const limits = await api.get(`${path}/limits`);
  renderEntity(entity, limits);
  const resources = [...new Set(limits.items.map((l) => l.resource_type))];
  await renderUsage(api, credential.tenant, resources, entity.id);
  document.body.dataset.state = "ready";
}

async function open(credential) {
  const api = new Api(platformBase(), credential.token);
  if (credential.entity) return openEntity(api, credential);
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
  const portal = credential.token.startsWith(PORTAL_TOKEN_PREFIX);
  const [reservations, events, cost, preview, cap, adminProbe] = await Promise.all([
    api.get(`v1/tenants/${enc(tenant)}/reservations`),
    api.get(`v1/tenants/${enc(tenant)}/events`, { limit: 20 }),
    // Deployments without the cost routes answer 403/404 for them: the sections then stay hidden.
    api.optional(`v1/tenants/${enc(tenant)}/cost`),
    api.optional(`v1/tenants/${enc(tenant)}/invoice-preview`),
    api.optional(`v1/tenants/${enc(tenant)}/spend-cap`),
    // An API key may change the cap only with the admin scope: the route listing portal tokens needs it too.
    portal ? null : api.optional("v1/portal-tokens", { limit: 1 }),
  ]);
  renderReservations(reservations);
  renderEvents(events);
  renderMoney(cost, preview);
  renderSpendCap(api, tenant, cap, cost?.currency, adminProbe !== null);
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
  const credential = session.takeFromFragment(["tenant", "token"], ["entity"]) || session.load(SESSION_KEY);
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
