// A subscription's rules (read through the administration API, created and deleted through
// the console's) and the rule tester: compose a message or pick a stored one, and see which
// rules of which subscriptions match and what their actions would set. Nothing is sent.

import { del, get, post, put, query, seg } from "./api.js";
import { confirm, dialog, errorLine, field, guarded, h, parseObject, report, reportError } from "./dom.js";
import * as live from "./live.js";
import { messageFields } from "./send.js";

const ATOM_VERSION = "2021-05";

function ruleUrl(topic, subscription, rule) {
  return `/api/console/topics/${seg(topic)}/subscriptions/${seg(subscription)}/rules/${seg(rule)}`;
}

/** The rules of a subscription from the administration API's Atom feed. */
async function readRules(topic, subscription) {
  const xml = await get(`/${seg(topic)}/subscriptions/${seg(subscription)}/rules${query({ "api-version": ATOM_VERSION })}`);
  const doc = new DOMParser().parseFromString(String(xml), "application/xml");
  const local = (parent, name) => [...parent.getElementsByTagNameNS("*", name)];
  return local(doc, "entry").map((entry) => {
    const name = local(entry, "title")[0]?.textContent ?? "";
    const filter = local(entry, "Filter")[0];
    const action = local(entry, "Action")[0];
    const kind = filter?.getAttributeNS("http://www.w3.org/2001/XMLSchema-instance", "type") ?? filter?.getAttribute("i:type") ?? "";
    let filterText = "";
    if (kind === "CorrelationFilter") {
      const parts = [];
      for (const child of filter.children) {
        if (child.localName === "Properties") {
          for (const pair of local(child, "KeyValueOfstringanyType")) {
            parts.push(`${local(pair, "Key")[0]?.textContent} = '${local(pair, "Value")[0]?.textContent}'`);
          }
        } else if (child.textContent) {
          parts.push(`${child.localName} = '${child.textContent}'`);
        }
      }
      filterText = parts.join(" AND ") || "(matches everything)";
    } else if (kind === "TrueFilter") {
      filterText = "1=1";
    } else if (kind === "FalseFilter") {
      filterText = "1=0";
    } else {
      filterText = filter ? local(filter, "SqlExpression")[0]?.textContent ?? "" : "";
    }
    const actionText = action && action.getAttributeNS("http://www.w3.org/2001/XMLSchema-instance", "type") === "SqlRuleAction"
      ? local(action, "SqlExpression")[0]?.textContent ?? "" : "";
    return { name, kind: kind.replace(/Filter$/, "") || "Sql", filter: filterText, action: actionText };
  });
}

export function rulesPanel(subscription) {
  const tbody = h("tbody");
  const table = h("table", { class: "grid", id: "rules" },
    h("thead", null, h("tr", null, h("th", null, "Rule"), h("th", null, "Kind"), h("th", null, "Filter"), h("th", null, "Action"), h("th", null, ""))),
    tbody);
  async function load() {
    tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 5 }, "Loading…")));
    let rules;
    try {
      rules = await readRules(subscription.topic, subscription.name);
    } catch (failure) {
      rules = (subscription.info.rules ?? []).map((name) => ({ name, kind: "", filter: `(could not read: ${failure.message})`, action: "" }));
    }
    if (!rules.length) {
      tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 5 }, "No rules: this subscription receives nothing.")));
      return;
    }
    tbody.replaceChildren(...rules.map((rule) => h("tr", { "data-rule": rule.name },
      h("td", null, h("b", null, rule.name)),
      h("td", null, h("span", { class: "kind" }, rule.kind)),
      h("td", { class: "mono wrap" }, rule.filter),
      h("td", { class: "mono wrap" }, rule.action || h("span", { class: "muted" }, "none")),
      h("td", { class: "num" }, h("button", { class: "btn danger small", type: "button", onclick: () => removeRule(rule.name) }, "Delete")))));
  }
  async function removeRule(name) {
    const ok = await confirm("Delete rule", `Delete rule ${name} of ${subscription.path}? Messages it matched will no longer reach this subscription.`,
      { label: "Delete rule", danger: true });
    if (!ok) return;
    try {
      await del(ruleUrl(subscription.topic, subscription.name, name));
      report(`Deleted rule ${name}`);
      live.refresh();
    } catch (failure) {
      reportError(`Deleting rule ${name}`, failure);
    }
    load();
  }
  async function create() {
    if (await createRuleDialog(subscription)) load();
  }
  load();
  const tester = ruleTester(subscription.topic, subscription.name);
  return h("div", null,
    h("div", { class: "toolbar" }, h("h2", null, "Rules"), h("span", { class: "grow" }),
      h("button", { class: "btn", type: "button", onclick: create }, "New rule")),
    h("div", { class: "card table-wrap section" }, table),
    h("h2", null, "Rule tester"),
    tester);
}

async function createRuleDialog(subscription) {
  const name = h("input", { name: "rule_name", spellcheck: "false", required: true });
  const kind = h("select", { name: "filter_kind" }, h("option", { value: "sql" }, "SQL filter"), h("option", { value: "correlation" }, "Correlation filter"));
  const sql = h("textarea", { name: "sql_filter", rows: 3, spellcheck: "false", placeholder: "amount > 100 AND sys.Label = 'order'" });
  const correlation = h("textarea", { name: "correlation_filter", rows: 4, spellcheck: "false", placeholder: '{"subject": "order", "properties": {"region": "eu"}}' });
  const action = h("textarea", { name: "sql_action", rows: 2, spellcheck: "false", placeholder: "SET priority = 'high' (optional)" });
  const sqlField = field("SQL filter", sql, { wide: true });
  const correlationField = field("Correlation filter (JSON: correlation_id, message_id, subject, to, reply_to, content_type, session_id, properties)", correlation, { wide: true });
  correlationField.hidden = true;
  kind.addEventListener("change", () => {
    sqlField.hidden = kind.value !== "sql";
    correlationField.hidden = kind.value === "sql";
  });
  const error = errorLine();
  const created = await dialog({
    title: `New rule on ${subscription.path}`,
    wide: true,
    body: h("div", null, h("div", { class: "form-grid" }, field("Name", name), field("Filter", kind), sqlField, correlationField,
      field("SQL action", action, { wide: true })), error),
    buttons: [{
      label: "Create rule",
      action: guarded(error, async () => {
        const ruleName = name.value.trim();
        if (!ruleName) throw new Error("a rule needs a name");
        const body = {};
        if (kind.value === "sql") body.sql_filter = sql.value.trim() || "1=1";
        else body.correlation_filter = parseObject(correlation.value, "The correlation filter");
        if (action.value.trim()) body.sql_action = action.value.trim();
        await put(ruleUrl(subscription.topic, subscription.name, ruleName), body);
        return ruleName;
      }),
    }],
  });
  if (created) {
    report(`Created rule ${created} on ${subscription.path}`);
    live.refresh();
  }
  return created;
}

/** The tester across every subscription of a topic. */
export function ruleTesterPanel(topic) {
  return ruleTester(topic.name, null);
}

function ruleTester(topic, subscription) {
  const { element: form, read, fill } = messageFields({ scheduling: false });
  const results = h("div", { id: "rule-test-results" },
    h("p", { class: "muted" }, "Results show here: which rules match and what their actions set."));
  const pickEntity = h("select", { "aria-label": "Pick from" });
  const subscriptionPaths = () => {
    const snapshot = live.state.snapshot;
    if (!snapshot) return [];
    return snapshot.order.map((path) => snapshot.entities.get(path))
      .filter((entity) => entity.kind === "subscription" && entity.topic === topic && (!subscription || entity.name === subscription));
  };
  for (const entity of subscriptionPaths()) pickEntity.append(h("option", { value: entity.path }, entity.name));
  const pickState = h("select", { "aria-label": "State" }, [["active", "active"], ["deadletter", "dead-letter"], ["deferred", "deferred"], ["scheduled", "scheduled"]]
    .map(([value, label]) => h("option", { value }, label)));
  const pickSeq = h("input", { type: "number", min: 0, step: 1, placeholder: "seq #", "aria-label": "Sequence number" });
  async function pick() {
    try {
      const from = Number(pickSeq.value) || 0;
      const page = await get(`/api/console/messages${query({ entity: pickEntity.value, state: pickState.value, from, limit: 1 })}`);
      const message = page.messages[0];
      if (!message) throw new Error(`no ${pickState.value} message from #${from} on`);
      fill(message);
      pickSeq.value = String(message.sequence_number);
      report(`Loaded message #${message.sequence_number} into the tester`);
    } catch (failure) {
      reportError("Picking a message", failure);
    }
  }
  async function test() {
    let message;
    try {
      message = read();
    } catch (failure) {
      reportError("Testing rules", failure);
      return;
    }
    try {
      const answer = await post("/api/console/rule-test", { topic, ...(subscription ? { subscription } : {}), message });
      results.replaceChildren(resultsTable(answer));
    } catch (failure) {
      reportError("Testing rules", failure);
    }
  }
  return h("div", { class: "two-col" },
    h("div", { class: "card panel" },
      h("div", { class: "toolbar" }, h("span", { class: "muted" }, "Pick a stored message:"), pickEntity, pickState, pickSeq,
        h("button", { class: "btn small", type: "button", onclick: pick }, "Load")),
      form,
      h("div", { class: "form-actions" }, h("button", { class: "btn primary", type: "button", id: "test-rules", onclick: test }, "Test rules"),
        h("span", { class: "hint" }, "Nothing is sent."))),
    h("div", { class: "card panel" }, results));
}

function resultsTable(answer) {
  const rows = [];
  for (const subscription of answer.subscriptions ?? []) {
    rows.push(h("tr", { class: "topic", "data-subscription": subscription.name },
      h("td", null, h("b", null, subscription.name)),
      h("td", null, ""),
      h("td", null, h("span", { class: `pill ${subscription.matched ? "ok" : "no"}` }, subscription.matched ? "receives it" : "does not receive it")),
      h("td", null, "")));
    for (const rule of subscription.rules ?? []) {
      const sets = Object.entries(rule.action_sets ?? {});
      rows.push(h("tr", { class: "sub", "data-rule": rule.name },
        h("td", { class: "name" }, rule.name),
        h("td", { class: "mono wrap" }, rule.filter ?? ""),
        h("td", null, h("span", { class: `pill ${rule.matched ? "ok" : "no"}` }, rule.matched ? "matches" : "no match")),
        h("td", { class: "mono wrap" }, sets.length ? sets.map(([name, value]) => h("div", null, `${name} = ${JSON.stringify(value)}`)) : "")));
    }
  }
  if (!rows.length) rows.push(h("tr", { class: "empty" }, h("td", { colspan: 4 }, "The topic has no subscriptions.")));
  return h("table", { class: "grid" },
    h("thead", null, h("tr", null, h("th", null, "Subscription / rule"), h("th", null, "Filter"), h("th", null, "Result"), h("th", null, "Action sets"))),
    h("tbody", null, rows));
}
