// Usage over time: a uPlot chart (canvas, ~50 KB) drawn for sighted users, and the same points as a data
// table for screen readers and keyboard users (the canvas itself is aria-hidden). uPlot sets sizes through
// the CSSOM (element.style), which a strict style-src allows; it injects no <style> element.
import uPlot from "uplot";
import { clear, el } from "./dom.js";
import { day, groupDigits, moment } from "./format.js";

const PALETTE = ["#2f6fed", "#e8833a", "#2a9d6f", "#b04bc8", "#d1495b", "#5c6b7a", "#8a6d1f", "#1f7a8a"];
const SECONDS = { hour: 3600, day: 86400, month: 2592000 };

function cssVar(node, name, fallback) {
  const value = getComputedStyle(node).getPropertyValue(name).trim();
  return value || fallback;
}

// series: [{label, key, points: [{start, quantity}]}] sharing the same buckets; `granularity` hour | day |
// month names the buckets. One series: bars; several (a grouping): one stepped line each, so no group
// hides another, and `total` (the ungrouped points) as the table's last column.
export function renderUsageChart(container, { title, series, total = null, granularity = "day", unit }) {
  clear(container);
  const starts = series.length ? series[0].points.map((p) => p.start) : [];
  const xs = starts.map((s) => Date.parse(s) / 1000);
  const label = granularity === "hour" ? moment : day;
  const grouped = series.length > 1;
  const figure = el("figure", { class: "chart" });
  const canvasBox = el("div", { class: "chart-canvas", "aria-hidden": "true" });
  figure.append(canvasBox);
  const headings = series.map((s) => el("th", { scope: "col", text: s.label }));
  const table = el(
    "table",
    { class: "data-table" },
    el("caption", { text: `${title} by ${granularity}` }),
    el(
      "thead",
      {},
      el("tr", {}, el("th", { scope: "col", text: granularity === "hour" ? "Hour" : "Day" }), headings, grouped && total ? el("th", { scope: "col", text: "Total" }) : null),
    ),
    el(
      "tbody",
      {},
      starts.map((start, i) =>
        el(
          "tr",
          { dataset: { start } },
          el("th", { scope: "row", text: label(start) }),
          series.map((s) =>
            el("td", { class: "num", dataset: { value: s.points[i].quantity, series: s.key ?? s.label }, text: groupDigits(s.points[i].quantity) }),
          ),
          grouped && total ? el("td", { class: "num", dataset: { value: total[i].quantity, series: "total" }, text: groupDigits(total[i].quantity) }) : null,
        ),
      ),
    ),
  );
  const details = el("details", { class: "chart-table" }, el("summary", { text: "Show as a table" }), table);
  figure.append(el("figcaption", { class: "visually-hidden", text: `${title}: chart; the table below lists the same values` }));
  container.append(figure, details);

  const accent = cssVar(container, "--accent", PALETTE[0]);
  const axisColor = cssVar(container, "--muted", "#5c6b7a");
  const gridColor = cssVar(container, "--grid", "#e6e9ef");
  const width = () => Math.max(240, canvasBox.clientWidth || container.clientWidth || 600);
  const half = (SECONDS[granularity] || 86400) / 2;
  const paths = grouped ? uPlot.paths.stepped({ align: 1 }) : uPlot.paths.bars({ size: [0.7, 48], gap: 2 });
  const colour = (i) => (i === 0 ? accent : PALETTE[i % PALETTE.length]);
  const opts = {
    width: width(),
    height: 220,
    legend: { show: grouped },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: (_u, min, max) => [min - half, max + half] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
    axes: [
      { stroke: axisColor, grid: { stroke: gridColor, width: 1 }, ticks: { stroke: gridColor } },
      {
        stroke: axisColor,
        grid: { stroke: gridColor, width: 1 },
        ticks: { stroke: gridColor },
        size: 64,
        values: (_u, ticks) => ticks.map((t) => groupDigits(String(t))),
        label: unit || undefined,
      },
    ],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: colour(i),
        fill: grouped ? undefined : `${colour(i)}cc`,
        width: grouped ? 2 : 1,
        paths,
        points: { show: false },
      })),
    ],
  };
  const data = [xs, ...series.map((s) => s.points.map((p) => Number(p.quantity)))];
  const plot = new uPlot(opts, data, canvasBox);
  const observer = new ResizeObserver(() => plot.setSize({ width: width(), height: 220 }));
  observer.observe(canvasBox);
  return { plot, table };
}
