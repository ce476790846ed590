// The overview: the namespace's totals and one row per queue, topic and subscription with
// counts, rates and a sparkline, live. Rows are kept by path and updated in place (text
// only where it changed), so 1,000 entities redraw every 2 s without stalling the page.

import { clear, count, countCell, h, rate, rateCell } from "./dom.js";
import * as live from "./live.js";
import { drawSpark, sparkline } from "./chart.js";
import { createEntityDialog } from "./properties.js";

const TOTALS = [
  ["queues", "Queues"], ["topics", "Topics"], ["subscriptions", "Subscriptions"],
  ["active", "Active"], ["dead_letter", "Dead-letter"], ["scheduled", "Scheduled"],
  ["deferred", "Deferred"], ["transfer", "Transfer"], ["incoming", "Incoming /s"], ["outgoing", "Outgoing /s"],
];
const COUNT_COLUMNS = ["active", "dead_letter", "scheduled", "deferred", "transfer"];

export function entityHref(entity) {
  const e = encodeURIComponent;
  if (entity.kind === "subscription") return `#/topic/${e(entity.topic)}/subscription/${e(entity.name)}`;
  return `#/${entity.kind}/${e(entity.path)}`;
}

export function overviewPage(view) {
  const totals = new Map();
  const statsBar = h("div", { class: "card stats", id: "totals" },
    TOTALS.map(([key, label]) => {
      const value = h("div", { class: "value" }, "–");
      const stat = h("div", { class: "stat", "data-total": key }, h("div", { class: "label" }, label), value);
      totals.set(key, { stat, value });
      return stat;
    }));
  const search = h("input", { type: "search", placeholder: "Filter by name…", "aria-label": "Filter by name" });
  const onlyDead = h("input", { type: "checkbox" });
  const spanNote = h("span", { class: "muted" });
  const tbody = h("tbody");
  // Fixed column widths: an update lays out only what changed, not the whole table.
  const table = h("table", { class: "grid fixed", id: "entities" },
    h("colgroup", null, h("col"), h("col", { class: "w-kind" }), COUNT_COLUMNS.map(() => h("col", { class: "w-count" })),
      h("col", { class: "w-rate" }), h("col", { class: "w-rate" }), h("col", { class: "w-chart" })),
    h("thead", null, h("tr", null,
      h("th", null, "Name"), h("th", null, "Kind"),
      h("th", { class: "num" }, "Active"), h("th", { class: "num" }, "Dead-letter"),
      h("th", { class: "num" }, "Scheduled"), h("th", { class: "num" }, "Deferred"),
      h("th", { class: "num" }, "Transfer"), h("th", { class: "num" }, "In /s"),
      h("th", { class: "num" }, "Out /s"), h("th", null, spanNote))),
    tbody);
  view.append(
    statsBar,
    h("div", { class: "toolbar" },
      search,
      h("label", { class: "check" }, onlyDead, "Only with dead letters"),
      h("span", { class: "grow" }),
      h("button", { class: "btn", type: "button", onclick: () => createEntityDialog("queue") }, "New queue"),
      h("button", { class: "btn", type: "button", onclick: () => createEntityDialog("topic") }, "New topic")),
    h("div", { class: "card table-wrap" }, table),
  );

  const rows = new Map(); // path -> {tr, cells, spark, onScreen, stale}
  let shownOrder = "";
  // Sparklines are drawn only for rows on screen (with 1,000 rows most are not); a row
  // scrolled into view is drawn then.
  const watcher = new IntersectionObserver((entries) => {
    for (const entry of entries) {
      const row = rows.get(entry.target.dataset.path);
      if (!row) continue;
      row.onScreen = entry.isIntersecting;
      if (row.onScreen && row.stale) drawRowSpark(row, entry.target.dataset.path);
    }
  });
  function drawRowSpark(row, path) {
    row.stale = false;
    drawSpark(row.spark, live.history(path));
  }

  function rowFor(entity) {
    let row = rows.get(entity.path);
    if (row) return row;
    const cells = COUNT_COLUMNS.map(() => h("td", { class: "num" }));
    const incoming = h("td", { class: "num" });
    const outgoing = h("td", { class: "num" });
    const spark = entity.kind === "topic" ? null : sparkline();
    const kindLabel = h("span", { class: `kind ${entity.kind}` }, entity.kind);
    const tr = h("tr", { class: `clickable ${entity.kind === "subscription" ? "sub" : entity.kind}`, "data-path": entity.path },
      h("td", { class: "name" }, h("a", { href: entityHref(entity) }, entity.kind === "subscription" ? entity.name : entity.path)),
      h("td", null, kindLabel),
      cells, incoming, outgoing,
      h("td", { class: "chart" }, spark));
    tr.addEventListener("click", (event) => {
      if (event.target.closest("a")) return;
      location.hash = entityHref(entity);
    });
    row = { tr, cells, incoming, outgoing, spark, kindLabel, onScreen: false, stale: true };
    rows.set(entity.path, row);
    if (spark) watcher.observe(tr);
    return row;
  }

  function visible(snapshot) {
    const needle = search.value.trim().toLowerCase();
    const deadOnly = onlyDead.checked;
    const matches = (entity) => (!needle || entity.path.toLowerCase().includes(needle)) &&
      (!deadOnly || (entity.counts.dead_letter ?? 0) > 0);
    const topicsWithMatches = new Set();
    for (const entity of snapshot.entities.values()) {
      if (entity.kind === "subscription" && matches(entity)) topicsWithMatches.add(entity.topic);
    }
    const shown = [];
    for (const path of snapshot.order) {
      const entity = snapshot.entities.get(path);
      if (entity.kind === "topic") {
        if (matches(entity) || topicsWithMatches.has(entity.name)) shown.push(path);
      } else if (entity.kind === "subscription") {
        const parent = snapshot.entities.get(entity.topic);
        if (matches(entity) || (parent && !deadOnly && matches(parent))) shown.push(path);
      } else if (matches(entity)) {
        shown.push(path);
      }
    }
    return shown;
  }

  function render(state) {
    const snapshot = state.snapshot;
    if (!snapshot) return;
    spanNote.textContent = live.historySpan() === "last hour" ? "Last hour" : "Since opened";
    spanNote.title = `Active (blue) and dead-lettered (red) messages, ${live.historySpan()}`;
    for (const [key, { stat, value }] of totals) {
      const n = snapshot.totals[key];
      value.textContent = key === "incoming" || key === "outgoing" ? rate(n) : count(n);
      stat.classList.toggle("alert", key === "dead_letter" && n > 0);
    }
    for (const [path, row] of rows) {
      if (snapshot.entities.has(path)) continue;
      watcher.unobserve(row.tr);
      rows.delete(path);
    }
    const shown = visible(snapshot);
    for (const path of shown) {
      const entity = snapshot.entities.get(path);
      const row = rowFor(entity);
      if (entity.kind === "topic") {
        for (const [i, key] of COUNT_COLUMNS.entries()) {
          if (key === "scheduled") countCell(row.cells[i], entity.counts.scheduled);
          else row.cells[i].textContent = "";
        }
        row.kindLabel.textContent = `topic · ${entity.subscriptionCount} sub${entity.subscriptionCount === 1 ? "" : "s"}`;
        continue;
      }
      for (const [i, key] of COUNT_COLUMNS.entries()) countCell(row.cells[i], entity.counts[key], key === "dead_letter");
      rateCell(row.incoming, entity.incoming);
      rateCell(row.outgoing, entity.outgoing);
      if (row.onScreen) drawRowSpark(row, path);
      else row.stale = true;
    }
    const order = shown.join("\n");
    if (order !== shownOrder) {
      shownOrder = order;
      if (shown.length) tbody.replaceChildren(...shown.map((path) => rows.get(path).tr));
      else tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 10 },
        snapshot.order.length ? "No entity matches the filter." : "No queues or topics yet. Create one with “New queue” or “New topic”.")));
    }
  }

  const rerender = () => live.state.snapshot && render(live.state);
  search.addEventListener("input", rerender);
  onlyDead.addEventListener("change", rerender);
  rerender();
  const unsubscribe = live.subscribe(render);
  return () => {
    unsubscribe();
    watcher.disconnect();
    clear(view);
  };
}
