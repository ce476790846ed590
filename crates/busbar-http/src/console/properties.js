// An entity's properties as a form: the same fields create a queue, topic or subscription
// and edit one (what Service Bus fixes at creation, sessions and duplicate detection, is
// shown but not editable afterwards). Saved through the console's PUT endpoints, which go
// through the same management path as the administration API.

import { put, seg } from "./api.js";
import { checkbox, dialog, duration, errorLine, field, guarded, h, report, reportError } from "./dom.js";
import * as live from "./live.js";

const STATUSES = {
  queue: ["Active", "Disabled", "SendDisabled", "ReceiveDisabled"],
  subscription: ["Active", "Disabled", "ReceiveDisabled"],
  topic: ["Active", "Disabled", "SendDisabled"],
};

/** The PUT path of an entity. */
export function entityUrl(kind, name, topic) {
  if (kind === "queue") return `/api/console/queues/${seg(name)}`;
  if (kind === "topic") return `/api/console/topics/${seg(name)}`;
  return `/api/console/topics/${seg(topic)}/subscriptions/${seg(name)}`;
}

const seconds = (ms) => (ms === null || ms === undefined ? "" : String(ms / 1000));

/**
 * The fields of `kind` filled from `info` (the /api record; null when creating). Answers
 * the form element and `read()`, which returns the PUT body or throws with what is wrong.
 */
export function propertyFields(kind, info, { creating = false } = {}) {
  const number = (name, value, attrs = {}) => h("input", { name, type: "number", min: 0, step: "any", value, ...attrs });
  const inputs = {};
  const fields = [];
  if (kind !== "topic") {
    inputs.lock = number("lock_duration_s", seconds(info?.lock_duration_ms ?? 60000), { min: 5, max: 300 });
    inputs.maxDelivery = number("max_delivery_count", String(info?.max_delivery_count ?? 10), { min: 1, step: 1 });
    fields.push(
      field("Lock duration (s)", inputs.lock, { hint: "5 s to 5 min" }),
      field("Max delivery count", inputs.maxDelivery, { hint: "then dead-lettered" }));
  }
  inputs.ttl = number("default_message_time_to_live_s", seconds(info?.default_message_time_to_live_ms), { placeholder: "never" });
  fields.push(field("Default time to live (s)", inputs.ttl, {
    hint: info ? `now: ${duration(info.default_message_time_to_live_ms)}` : "empty: messages never expire",
  }));
  if (kind !== "topic") {
    inputs.forwardTo = h("input", { name: "forward_to", value: info?.forward_to ?? "", placeholder: "none", spellcheck: "false" });
    fields.push(field("Forward to", inputs.forwardTo, { hint: "a queue or topic of this namespace" }));
  }
  inputs.status = h("select", { name: "status" },
    h("option", { value: "" }, creating ? "Active" : "(unchanged)"),
    STATUSES[kind].map((status) => h("option", { value: status }, status)));
  fields.push(field("Status", inputs.status));
  const flags = h("div", { class: "wide flags" });
  const fixed = !creating;
  if (kind !== "topic") {
    flags.append(
      checkbox("Dead-letter expired messages", "dead_lettering_on_message_expiration", info?.dead_lettering_on_message_expiration ?? false),
      checkbox("Requires sessions", "requires_session", info?.requires_session ?? false, { disabled: fixed }));
  }
  if (kind !== "subscription") {
    flags.append(checkbox("Duplicate detection", "requires_duplicate_detection", info?.requires_duplicate_detection ?? false, { disabled: fixed }));
  }
  fields.push(flags);
  const form = h("div", { class: "form-grid" }, fields);

  function read() {
    const body = {};
    const ms = (input, what) => {
      const value = input.value.trim();
      if (!value) return null;
      const n = Number(value);
      if (!Number.isFinite(n) || n < 0) throw new Error(`${what} must be a number of seconds`);
      return Math.round(n * 1000);
    };
    if (inputs.lock) {
      body.lock_duration_ms = ms(inputs.lock, "Lock duration") ?? 60000;
      const max = Number(inputs.maxDelivery.value);
      if (!Number.isInteger(max) || max < 1) throw new Error("Max delivery count must be a whole number of at least 1");
      body.max_delivery_count = max;
      body.forward_to = inputs.forwardTo.value.trim() || null;
    }
    body.default_message_time_to_live_ms = ms(inputs.ttl, "Default time to live");
    // What is fixed at creation is sent only when creating (an update names what it changes).
    for (const input of flags.querySelectorAll("input[type=checkbox]")) {
      if (creating || !input.disabled) body[input.name] = input.checked;
    }
    if (inputs.status.value) body.status = inputs.status.value;
    return body;
  }
  return { form, read };
}

/** The dialog that creates a queue or topic (or, with `topic`, a subscription of it). */
export async function createEntityDialog(kind, topic) {
  const name = h("input", { name: "name", required: true, spellcheck: "false", autofocus: true });
  const { form, read } = propertyFields(kind, null, { creating: true });
  const error = errorLine();
  const created = await dialog({
    title: kind === "subscription" ? `New subscription of ${topic}` : `New ${kind}`,
    body: h("div", null, h("div", { class: "form-grid" }, field("Name", name, { wide: true })), h("h3", null, "Properties"), form, error),
    buttons: [{
      label: `Create ${kind}`,
      action: guarded(error, async () => {
        const value = name.value.trim();
        if (!value) throw new Error("a name is needed");
        await put(entityUrl(kind, value, topic), read());
        return value;
      }),
    }],
  });
  if (created) {
    report(`Created ${kind} ${created}`);
    live.refresh();
  }
  return created;
}

/** The properties tab of an entity page: the editable form with a save button. */
export function propertiesPanel(entity) {
  const { form, read } = propertyFields(entity.kind, entity.info);
  const save = h("button", { class: "btn primary", type: "button" }, "Save changes");
  save.addEventListener("click", async () => {
    let body;
    try {
      body = read();
    } catch (failure) {
      reportError("Saving properties", failure);
      return;
    }
    try {
      await put(entityUrl(entity.kind, entity.name, entity.topic), body);
      report(`Saved the properties of ${entity.path}`);
      live.refresh();
    } catch (failure) {
      reportError("Saving properties", failure);
    }
  });
  return h("div", { class: "card panel" }, form,
    h("div", { class: "form-actions" }, save, h("span", { class: "hint" }, "Sessions and duplicate detection are fixed when the entity is created.")));
}
