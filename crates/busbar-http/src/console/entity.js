// An entity's page: its live counts and charts, then tabs for its messages, rules (a
// subscription's, or the tester across a topic's subscriptions), subscriptions (a topic's)
// and properties, with the entity-wide actions (send, purge, delete) in the header.

import { del } from "./api.js";
import { clear, count, countCell, dialog, errorLine, field, guarded, h, rate, rateCell, report, reportError } from "./dom.js";
import * as live from "./live.js";
import { bigChart } from "./chart.js";
import { createEntityDialog, entityUrl, propertiesPanel } from "./properties.js";
import { messagesPanel, purge } from "./messages.js";
import { sendDialog } from "./send.js";
import { rulesPanel, ruleTesterPanel } from "./rules.js";
import { entityHref } from "./overview.js";

const STATS = [
  ["active", "Active"], ["dead_letter", "Dead-letter"], ["scheduled", "Scheduled"], ["deferred", "Deferred"],
  ["transfer", "Transfer"], ["transfer_dead_letter", "Transfer DL"], ["locked", "Locked"],
];

export function entityPage(view, route) {
  let built = null;
  const waiting = h("p", { class: "muted" }, "Loading…");
  view.append(waiting);

  function render(state) {
    const snapshot = state.snapshot;
    if (!snapshot) return;
    const entity = snapshot.entities.get(route.path);
    if (!entity || entity.kind !== route.kind) {
      if (built) built.gone();
      else view.replaceChildren(h("div", { class: "card panel" },
        h("p", null, `There is no ${route.kind} named `, h("b", null, route.path), "."),
        h("a", { href: "#/" }, "Back to the namespace")));
      return;
    }
    if (!built) built = build(view, entity);
    built.update(entity);
  }

  const unsubscribe = live.subscribe(render);
  if (live.state.snapshot) render(live.state);
  return () => {
    unsubscribe();
    built?.leave();
    clear(view);
  };
}

function build(view, first) {
  let entity = first;
  const current = () => entity;
  const messaging = entity.kind !== "topic";
  const stats = new Map();
  const statBar = h("div", { class: "card stats", id: "entity-stats" });
  const statKeys = messaging ? STATS : [["scheduled", "Scheduled"]];
  for (const [key, label] of statKeys) {
    const value = h("div", { class: "value" });
    const stat = h("div", { class: "stat", "data-stat": key }, h("div", { class: "label" }, label), value);
    stats.set(key, { stat, value });
    statBar.append(stat);
  }
  const rates = {};
  if (messaging) {
    for (const [key, label] of [["incoming", "Incoming /s"], ["outgoing", "Outgoing /s"]]) {
      rates[key] = h("div", { class: "value" });
      statBar.append(h("div", { class: "stat" }, h("div", { class: "label" }, label), rates[key]));
    }
  } else {
    rates.subscriptions = h("div", { class: "value" });
    statBar.append(h("div", { class: "stat" }, h("div", { class: "label" }, "Subscriptions"), rates.subscriptions));
  }

  const actions = h("div", { class: "actions" });
  if (entity.kind !== "subscription") {
    actions.append(h("button", { class: "btn primary", type: "button", onclick: () => sendDialog(current()) }, "Send message"));
  }
  if (messaging) {
    actions.append(
      h("button", { class: "btn danger", type: "button", onclick: () => purge(current(), false) }, "Purge messages"),
      h("button", { class: "btn danger", type: "button", onclick: () => purge(current(), true) }, "Purge dead-letter"));
  }
  actions.append(h("button", { class: "btn danger", type: "button", onclick: () => deleteEntity(current()) }, `Delete ${entity.kind}`));

  const charts = messaging ? h("div", { class: "charts" }) : null;
  const tabBar = h("div", { class: "tabs", role: "tablist" });
  const tabBody = h("div");
  const tabs = [];
  const tabCounts = new Map();
  if (messaging) tabs.push(["messages", "Messages", () => messagesPanel(current)]);
  if (entity.kind === "subscription") tabs.push(["rules", "Rules", () => rulesPanel(current())]);
  if (entity.kind === "topic") {
    tabs.push(["subscriptions", "Subscriptions", () => subscriptionsPanel(current)]);
    tabs.push(["rule-tester", "Rule tester", () => ruleTesterPanel(current())]);
  }
  tabs.push(["properties", "Properties", () => propertiesPanel(current())]);
  let leaveTab = () => {};
  const select = (id) => {
    for (const button of tabBar.children) button.setAttribute("aria-selected", String(button.dataset.tab === id));
    leaveTab();
    const made = tabs.find(([tab]) => tab === id)[2]();
    leaveTab = made.leave ?? (() => {});
    tabBody.replaceChildren(made.element ?? made);
  };
  for (const [id, label] of tabs) {
    const badge = h("span", { class: "count" });
    tabCounts.set(id, badge);
    tabBar.append(h("button", { type: "button", role: "tab", "data-tab": id, onclick: () => select(id) }, label,
      id === "subscriptions" ? badge : null));
  }

  const subtitle = entity.kind === "subscription"
    ? h("span", { class: "muted" }, "of topic ", h("a", { href: entityHref({ kind: "topic", path: entity.topic }) }, entity.topic))
    : null;
  view.replaceChildren(...[
    h("div", { class: "page-head" },
      h("div", null, h("h1", null, entity.name, " ", h("span", { class: `kind ${entity.kind}` }, entity.kind)), subtitle),
      actions),
    statBar,
    charts,
    tabBar,
    tabBody,
  ].filter(Boolean));
  select(tabs[0][0]);

  return {
    update(next) {
      entity = next;
      for (const [key, { stat, value }] of stats) {
        value.textContent = count(next.counts[key]);
        stat.classList.toggle("alert", key.includes("dead") && next.counts[key] > 0);
      }
      if (messaging) {
        rates.incoming.textContent = rate(next.incoming);
        rates.outgoing.textContent = rate(next.outgoing);
        {
          const points = live.history(next.path);
          charts.replaceChildren(
            h("div", { class: "card" }, h("h2", null, `Messages held, ${live.historySpan()}`), bigChart(points)),
            h("div", { class: "card" }, h("h2", null, `Throughput, ${live.historySpan()}`), bigChart(points, { throughput: true })));
        }
      } else {
        rates.subscriptions.textContent = count(next.subscriptionCount);
        tabCounts.get("subscriptions").textContent = String(next.subscriptionCount);
      }
    },
    gone() {
      view.replaceChildren(h("div", { class: "card panel" },
        h("p", null, `The ${entity.kind} `, h("b", null, entity.path), " no longer exists."),
        h("a", { href: "#/" }, "Back to the namespace")));
    },
    leave() {
      leaveTab();
    },
  };
}

/** A topic's subscriptions with their counts, live, and the button to add one. */
function subscriptionsPanel(current) {
  const tbody = h("tbody");
  const table = h("table", { class: "grid", id: "subscriptions" },
    h("thead", null, h("tr", null, h("th", null, "Subscription"),
      ["Active", "Dead-letter", "Scheduled", "Deferred", "In /s", "Out /s"].map((label) => h("th", { class: "num" }, label)))),
    tbody);
  const render = (state) => {
    const snapshot = state.snapshot;
    if (!snapshot) return;
    const topic = current();
    const subscriptions = snapshot.order.map((path) => snapshot.entities.get(path))
      .filter((entity) => entity.kind === "subscription" && entity.topic === topic.name);
    if (!subscriptions.length) {
      tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 7 }, "No subscriptions: messages sent to this topic go nowhere.")));
      return;
    }
    tbody.replaceChildren(...subscriptions.map((subscription) => {
      const cells = ["active", "dead_letter", "scheduled", "deferred"].map((key) => {
        const cell = h("td");
        countCell(cell, subscription.counts[key], key === "dead_letter");
        return cell;
      });
      const rates = [subscription.incoming, subscription.outgoing].map((perSecond) => {
        const cell = h("td");
        rateCell(cell, perSecond);
        return cell;
      });
      return h("tr", null, h("td", null, h("a", { href: entityHref(subscription) }, subscription.name)), cells, rates);
    }));
  };
  const unsubscribe = live.subscribe(render);
  render(live.state);
  const element = h("div", null,
    h("div", { class: "toolbar" }, h("span", { class: "grow" }),
      h("button", { class: "btn", type: "button", onclick: () => createEntityDialog("subscription", current().name) }, "New subscription")),
    h("div", { class: "card table-wrap" }, table));
  return { element, leave: unsubscribe };
}

/** Deletes an entity after its name is typed back, then returns to the overview. */
async function deleteEntity(entity) {
  const typed = h("input", { spellcheck: "false", autocomplete: "off", "aria-label": "Name to confirm" });
  const error = errorLine();
  const what = entity.kind === "topic" ? "the topic, its subscriptions and all their messages" : `the ${entity.kind} and all its messages`;
  const confirmed = await dialog({
    title: `Delete ${entity.kind} ${entity.path}`,
    body: h("div", null, h("p", null, `This deletes ${what}. It cannot be undone.`),
      field(`Type “${entity.name}” to confirm`, typed), error),
    buttons: [{
      label: `Delete ${entity.kind}`, kind: "danger solid",
      action: guarded(error, () => {
        if (typed.value !== entity.name) throw new Error("The name typed does not match.");
        return true;
      }),
    }],
  });
  if (!confirmed) return;
  try {
    await del(entityUrl(entity.kind, entity.name, entity.topic));
    report(`Deleted ${entity.kind} ${entity.path}`);
    location.hash = entity.kind === "subscription" ? entityHref({ kind: "topic", path: entity.topic }) : "#/";
    live.refresh();
  } catch (failure) {
    reportError(`Deleting ${entity.path}`, failure);
  }
}
