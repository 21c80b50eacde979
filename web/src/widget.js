// <billing-usage>: a SaaS's customers see their quotas inside the SaaS's own page. A standard custom
// element (no framework), shadow DOM, styled through CSS custom properties:
//   --billing-usage-accent, --billing-usage-bg, --billing-usage-text, --billing-usage-muted,
//   --billing-usage-border, --billing-usage-radius, --billing-usage-font
// Attributes: api-url (the platform's API), tenant, token (a portal token the SaaS's backend minted),
// resource (optional: one quota only, with its last 14 days as bars). A refused token empties the view,
// says so, and fires `billing-usage:unauthorized` so the host page can fetch a new token.
import { Api, ApiError } from "./api.js";
import { el } from "./dom.js";
import { groupDigits, humanize, ratio } from "./format.js";

const CSS = `
:host { display: block; font-family: var(--billing-usage-font, system-ui, -apple-system, "Segoe UI", Roboto, sans-serif);
  color: var(--billing-usage-text, #1b2430); }
.box { background: var(--billing-usage-bg, #fff); border: 1px solid var(--billing-usage-border, #dde2ea);
  border-radius: var(--billing-usage-radius, 10px); padding: 14px 16px; }
.title { font-weight: 600; margin: 0 0 10px; font-size: 0.95rem; display: flex; justify-content: space-between; gap: 8px; }
.plan { color: var(--billing-usage-muted, #5a6676); font-weight: 500; }
.quota { margin: 10px 0 0; }
.row { display: flex; justify-content: space-between; gap: 8px; font-size: 0.85rem; }
.name { font-weight: 600; }
.figures { color: var(--billing-usage-muted, #5a6676); font-variant-numeric: tabular-nums; white-space: nowrap; }
.bar { height: 8px; border-radius: 999px; background: color-mix(in srgb, var(--billing-usage-muted, #5a6676) 18%, transparent);
  overflow: hidden; margin-top: 5px; }
.fill { height: 100%; width: 0; background: var(--billing-usage-accent, #2f6fed); border-radius: 999px; }
.fill.full { background: #b42318; }
.spark { display: block; width: 100%; height: 40px; margin-top: 8px; }
.spark rect { fill: var(--billing-usage-accent, #2f6fed); }
.message { font-size: 0.88rem; color: var(--billing-usage-muted, #5a6676); margin: 0; }
.hidden-text { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
`;

let sheet = null;
function styles() {
  if (!sheet && typeof CSSStyleSheet === "function" && "replaceSync" in CSSStyleSheet.prototype) {
    sheet = new CSSStyleSheet();
    sheet.replaceSync(CSS);
  }
  return sheet;
}

const SVG = "http://www.w3.org/2000/svg";

function sparkline(points, label) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("class", "spark");
  svg.setAttribute("viewBox", `0 0 ${points.length * 10} 40`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const max = Math.max(1, ...points.map((p) => Number(p.quantity)));
  const title = document.createElementNS(SVG, "title");
  title.textContent = `${label}, last ${points.length} days: ${points.map((p) => `${p.date} ${p.quantity}`).join(", ")}`;
  svg.append(title);
  points.forEach((p, i) => {
    const h = (Number(p.quantity) / max) * 38;
    const rect = document.createElementNS(SVG, "rect");
    rect.setAttribute("x", String(i * 10 + 1));
    rect.setAttribute("width", "8");
    rect.setAttribute("y", String(40 - h));
    rect.setAttribute("height", String(h));
    rect.dataset.value = p.quantity;
    svg.append(rect);
  });
  return svg;
}

class BillingUsage extends HTMLElement {
  static get observedAttributes() {
    return ["api-url", "tenant", "token", "resource"];
  }

  constructor() {
    super();
    this.root = this.attachShadow({ mode: "open" });
    const css = styles();
    if (css) this.root.adoptedStyleSheets = [css];
    this.box = el("div", { class: "box", part: "box" });
    this.root.append(this.box);
    this.generation = 0;
  }

  connectedCallback() {
    this.refresh();
  }

  attributeChangedCallback() {
    if (this.isConnected) this.refresh();
  }

  show(...nodes) {
    this.box.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined));
  }

  async refresh() {
    const base = this.getAttribute("api-url");
    const tenant = this.getAttribute("tenant");
    const token = this.getAttribute("token");
    const generation = ++this.generation;
    if (!base || !tenant || !token) {
      this.show(el("p", { class: "message", text: "Usage is not available: api-url, tenant and token are needed." }));
      return;
    }
    this.setAttribute("aria-busy", "true");
    const api = new Api(base, token);
    try {
      const ent = await api.get(`v1/tenants/${encodeURIComponent(tenant)}/entitlements`);
      const only = this.getAttribute("resource");
      const quotas = only ? ent.quotas.filter((q) => q.resource_type === only) : ent.quotas;
      const trend = only ? await api.get(`v1/tenants/${encodeURIComponent(tenant)}/usage`, { resource_type: only, days: 14 }) : null;
      if (generation !== this.generation) return;
      this.show(
        el("p", { class: "title" }, el("span", { text: "Usage this period" }), el("span", { class: "plan", text: `${ent.plan_id} plan` })),
        ...quotas.map((q) => this.quota(q)),
        trend ? sparkline(trend.points, humanize(trend.resource_type)) : null,
      );
      this.dataset.state = "ready";
    } catch (error) {
      if (generation !== this.generation) return;
      const refused = error instanceof ApiError && error.signedOut;
      this.show(el("p", { class: "message", text: refused ? "This usage view has expired. Reload the page to see it again." : "Usage could not be loaded right now." }));
      this.dataset.state = refused ? "signed-out" : "error";
      if (refused) this.dispatchEvent(new CustomEvent("billing-usage:unauthorized", { bubbles: true, composed: true }));
    } finally {
      this.removeAttribute("aria-busy");
    }
  }

  quota(q) {
    const share = ratio(q.used, q.limit);
    const fill = el("div", { class: share >= 1 ? "fill full" : "fill" });
    fill.style.width = `${(share * 100).toFixed(1)}%`;
    const limit = q.limit === null ? "unlimited" : groupDigits(q.limit);
    return el(
      "div",
      { class: "quota", dataset: { resource: q.resource_type, used: q.used, limit: q.limit ?? "", remaining: q.remaining ?? "" } },
      el("div", { class: "row" }, el("span", { class: "name", text: humanize(q.resource_type) }), el("span", { class: "figures", text: `${groupDigits(q.used)} / ${limit}` })),
      el("div", { class: "bar", role: "progressbar", "aria-label": `${humanize(q.resource_type)} used`, "aria-valuemin": "0", "aria-valuemax": "100", "aria-valuenow": String(Math.round(share * 100)), "aria-valuetext": `${groupDigits(q.used)} of ${limit}` }, fill),
    );
  }
}

if (!customElements.get("billing-usage")) customElements.define("billing-usage", BillingUsage);
