// Inline SVG charts of an entity's history: a sparkline per overview row (updated in place,
// so 1,000 rows redraw cheaply) and a larger chart with axes on the entity page.

import { count, h, rate, svg } from "./dom.js";

const SPARK_WIDTH = 120;
const SPARK_HEIGHT = 24;

/** A sparkline element to be filled by `drawSpark`. */
export function sparkline() {
  const element = svg("svg", {
    class: "spark", width: SPARK_WIDTH, height: SPARK_HEIGHT, viewBox: `0 0 ${SPARK_WIDTH} ${SPARK_HEIGHT}`,
    "aria-hidden": "true",
  });
  element.append(
    svg("path", { class: "active-fill" }),
    svg("line", { class: "axis", x1: 0, x2: SPARK_WIDTH, y1: SPARK_HEIGHT - 0.5, y2: SPARK_HEIGHT - 0.5 }),
    svg("path", { class: "active" }),
    svg("path", { class: "dead" }),
    svg("title"),
  );
  return element;
}

/** Redraws a sparkline with active (filled) and dead-lettered counts over `points`. */
export function drawSpark(element, points) {
  const [fill, , active, dead, title] = element.children;
  if (points.length < 2) {
    for (const path of [fill, active, dead]) path.setAttribute("d", "");
    title.textContent = "not enough samples yet";
    return;
  }
  const scale = scaler(points, ["active", "dead_letter"], SPARK_WIDTH, SPARK_HEIGHT, 1);
  const line = scale.line("active");
  active.setAttribute("d", line);
  fill.setAttribute("d", `${line}L${SPARK_WIDTH},${SPARK_HEIGHT}L${scale.x(points[0])},${SPARK_HEIGHT}Z`);
  dead.setAttribute("d", points.some((p) => p.dead_letter > 0) ? scale.line("dead_letter") : "");
  const last = points[points.length - 1];
  title.textContent = `active ${count(last.active)} (max ${count(scale.max)}), dead-letter ${count(last.dead_letter)}`;
}

function scaler(points, keys, width, height, pad) {
  const t0 = points[0].t_ms;
  const span = Math.max(1, points[points.length - 1].t_ms - t0);
  let max = 1;
  for (const point of points) for (const key of keys) max = Math.max(max, point[key] ?? 0);
  const x = (point) => ((point.t_ms - t0) / span * width).toFixed(1);
  const y = (value) => (height - pad - (value / max) * (height - 2 * pad)).toFixed(1);
  const line = (key) => points.map((point, i) => `${i ? "L" : "M"}${x(point)},${y(point[key] ?? 0)}`).join("");
  return { x, y, line, max };
}

const clock = (ms) => new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

/** Per-second rates between successive samples of a cumulative total. */
function ratesOf(points, key) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const seconds = (points[i].t_ms - points[i - 1].t_ms) / 1000;
    const delta = (points[i][key] ?? 0) - (points[i - 1][key] ?? 0);
    out.push({ t_ms: points[i].t_ms, value: seconds > 0 ? Math.max(0, delta) / seconds : 0 });
  }
  return out;
}

/**
 * A chart with a caption and legend: messages held (active, dead-letter) or, with
 * `throughput`, incoming and outgoing per second from the cumulative totals.
 */
export function bigChart(points, { throughput = false } = {}) {
  const width = 560;
  const height = 80;
  const wrap = h("div", { class: "big-chart" });
  let series;
  if (throughput) {
    const incoming = ratesOf(points, "incoming_total");
    const outgoing = ratesOf(points, "outgoing_total");
    const merged = incoming.map((p, i) => ({ t_ms: p.t_ms, incoming: p.value, outgoing: outgoing[i]?.value ?? 0 }));
    series = { points: merged, keys: [["incoming", "active", "incoming /s"], ["outgoing", "out", "outgoing /s"]], format: rate };
  } else {
    series = { points, keys: [["active", "active", "active"], ["dead_letter", "dead", "dead-letter"]], format: count };
  }
  if (series.points.length >= 2 && series.points.some((p) => p[series.keys[0][0]] !== undefined)) {
    const chart = svg("svg", { class: "spark big", width: "100%", height, viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none" });
    const scale = scaler(series.points, series.keys.map(([key]) => key), width, height, 4);
    chart.append(svg("line", { class: "axis", x1: 0, x2: width, y1: height - 0.5, y2: height - 0.5 }));
    for (const [key, className] of series.keys) chart.append(svg("path", { class: className, d: scale.line(key) }));
    const last = series.points[series.points.length - 1];
    wrap.append(
      h("div", { class: "chart-legend" },
        series.keys.map(([key, className, label]) => h("span", { class: `legend ${className}` },
          `${label} ${series.format(last[key])}`)),
        h("span", { class: "muted" }, `max ${series.format(scale.max)} · since ${clock(series.points[0].t_ms)}`)),
      chart,
    );
  } else {
    wrap.append(h("div", { class: "chart-legend muted" }, "collecting samples…"));
  }
  return wrap;
}
