// Usage over time: a uPlot bar chart (canvas, ~50 KB) drawn for sighted users, and the same points as a
// data table for screen readers and keyboard users (the canvas itself is aria-hidden). uPlot sets sizes
// through the CSSOM (element.style), which a strict style-src allows; it injects no <style> element.
import uPlot from "uplot";
import { clear, el } from "./dom.js";
import { day, groupDigits } from "./format.js";

const PALETTE = ["#2f6fed", "#e8833a", "#2a9d6f", "#b04bc8", "#d1495b", "#5c6b7a"];

function cssVar(node, name, fallback) {
  const value = getComputedStyle(node).getPropertyValue(name).trim();
  return value || fallback;
}

// series: [{label, points: [{date, quantity}]}] sharing the same dates.
export function renderUsageChart(container, { title, series, unit }) {
  clear(container);
  const dates = series.length ? series[0].points.map((p) => p.date) : [];
  const xs = dates.map((d) => Date.parse(`${d}T00:00:00Z`) / 1000);
  const figure = el("figure", { class: "chart" });
  const canvasBox = el("div", { class: "chart-canvas", "aria-hidden": "true" });
  figure.append(canvasBox);
  const table = el(
    "table",
    { class: "data-table" },
    el("caption", { text: `${title} by day` }),
    el(
      "thead",
      {},
      el("tr", {}, el("th", { scope: "col", text: "Day" }), series.map((s) => el("th", { scope: "col", text: s.label }))),
    ),
    el(
      "tbody",
      {},
      dates.map((date, i) =>
        el(
          "tr",
          {},
          el("th", { scope: "row", text: day(date) }),
          series.map((s) =>
            el("td", { class: "num", dataset: { value: s.points[i].quantity }, text: groupDigits(s.points[i].quantity) }),
          ),
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
  const bars = uPlot.paths.bars({ size: [0.7, 48], gap: 2 });
  const opts = {
    width: width(),
    height: 220,
    legend: { show: series.length > 1 },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: (_u, min, max) => [min - 43200, max + 43200] }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
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
        stroke: i === 0 ? accent : PALETTE[i % PALETTE.length],
        fill: `${i === 0 ? accent : PALETTE[i % PALETTE.length]}cc`,
        width: 1,
        paths: bars,
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
