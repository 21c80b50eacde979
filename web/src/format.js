// Numbers arrive from the API as exact decimal strings; they are shown digit for digit (grouped by
// thousands, never rounded), so what the page says equals what the API said.

export function groupDigits(decimal) {
  if (decimal === null || decimal === undefined) return "—";
  const text = String(decimal);
  const match = /^(-?)(\d+)(\.\d+)?$/.exec(text);
  if (!match) return text;
  const [, sign, whole, fraction = ""] = match;
  return sign + whole.replace(/\B(?=(\d{3})+(?!\d))/g, ",") + fraction;
}

// A number cell: the exact API string in data-value, grouped digits as text.
export function amount(el, decimal, cls = "num") {
  return el("span", { class: cls, dataset: { value: decimal ?? "" }, text: groupDigits(decimal) });
}

export function ratio(used, limit) {
  const u = Number(used);
  const l = Number(limit);
  if (!Number.isFinite(u) || !Number.isFinite(l) || l <= 0) return 0;
  return Math.max(0, Math.min(1, u / l));
}

const DATE = new Intl.DateTimeFormat("en", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
const DATETIME = new Intl.DateTimeFormat("en", {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZone: "UTC",
  hourCycle: "h23",
});

export function day(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : DATE.format(d);
}

export function moment(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : `${DATETIME.format(d)} UTC`;
}

export function relative(iso, now = Date.now()) {
  if (!iso) return "";
  const seconds = Math.round((new Date(iso).getTime() - now) / 1000);
  const abs = Math.abs(seconds);
  const [value, unit] =
    abs < 90 ? [seconds, "second"] : abs < 5400 ? [Math.round(seconds / 60), "minute"]
      : abs < 172800 ? [Math.round(seconds / 3600), "hour"] : [Math.round(seconds / 86400), "day"];
  return new Intl.RelativeTimeFormat("en", { numeric: "auto" }).format(value, unit);
}

const ACRONYMS = new Set(["api", "mb", "gb", "kb", "sso", "id", "url"]);

// `api_calls` -> "API calls", `storage_mb` -> "Storage MB": a label only; the raw name stays beside it.
export function humanize(name) {
  const words = String(name ?? "").split("_").filter(Boolean);
  return words
    .map((w, i) => (ACRONYMS.has(w) ? w.toUpperCase() : i === 0 ? w.charAt(0).toUpperCase() + w.slice(1) : w))
    .join(" ");
}

// Money arrives in minor units (integers); shown in the currency's own major unit, exactly.
export function money(minor, currency) {
  if (minor === null || minor === undefined) return "—";
  if (!currency) return groupDigits(String(minor));
  const format = new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() });
  const digits = format.resolvedOptions().maximumFractionDigits;
  const negative = minor < 0;
  const text = String(Math.abs(minor)).padStart(digits + 1, "0");
  const major = digits ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  const symbol = format.formatToParts(0).find((p) => p.type === "currency")?.value ?? currency.toUpperCase();
  return `${negative ? "−" : ""}${symbol}${groupDigits(major)}`;
}

// The currency's minor-unit digits (2 for usd, 0 for jpy).
export function minorDigits(currency) {
  return new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() }).resolvedOptions().maximumFractionDigits;
}

// An exact decimal amount of minor units (a spend: "1234.5") in the major unit, digit for digit ("$12.345").
export function exactMoney(minorDecimal, currency) {
  if (minorDecimal === null || minorDecimal === undefined) return "—";
  if (!currency) return groupDigits(String(minorDecimal));
  const match = /^(-?)(\d+)(?:\.(\d+))?$/.exec(String(minorDecimal));
  if (!match) return String(minorDecimal);
  const [, sign, whole, fraction = ""] = match;
  const digits = minorDigits(currency);
  const padded = whole.padStart(digits + 1, "0");
  const major = digits ? `${padded.slice(0, -digits)}.${padded.slice(-digits)}${fraction}` : `${padded}${fraction ? `.${fraction}` : ""}`;
  const symbol = new Intl.NumberFormat("en", { style: "currency", currency: currency.toUpperCase() }).formatToParts(0).find((p) => p.type === "currency")?.value ?? currency.toUpperCase();
  return `${sign ? "−" : ""}${symbol}${groupDigits(major)}`;
}

// "12.50" in the major unit -> 1250 minor units, exactly; null when it is not such an amount.
export function toMinor(text, currency) {
  const digits = minorDigits(currency);
  const match = /^(\d{1,12})(?:\.(\d+))?$/.exec(String(text).trim());
  if (!match || (match[2] || "").length > digits) return null;
  return Number(`${match[1]}${(match[2] || "").padEnd(digits, "0")}`);
}
