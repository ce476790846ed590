// Composing a message: the fields a sender sets (body, content type, ids, subject,
// application properties, scheduled time), used to send one and to try one against rules.

import { post } from "./api.js";
import { dialog, errorLine, field, guarded, h, parseObject, report } from "./dom.js";
import * as live from "./live.js";
import { announceChange } from "./messages.js";

/** The message form; `read()` answers the message as the console API takes it, or throws. */
export function messageFields({ scheduling = true, sessionRequired = false } = {}) {
  const inputs = {
    body: h("textarea", { name: "body", rows: 8, spellcheck: "false", placeholder: '{"orderId": 42}' }),
    content_type: h("input", { name: "content_type", value: "application/json", list: "content-types", spellcheck: "false" }),
    message_id: h("input", { name: "message_id", placeholder: "generated", spellcheck: "false" }),
    session_id: h("input", { name: "session_id", placeholder: sessionRequired ? "required" : "none", spellcheck: "false", required: sessionRequired }),
    correlation_id: h("input", { name: "correlation_id", spellcheck: "false" }),
    subject: h("input", { name: "subject", spellcheck: "false" }),
    application_properties: h("textarea", { name: "application_properties", rows: 3, spellcheck: "false", placeholder: '{"priority": "high", "attempt": 1}' }),
  };
  const scheduled = scheduling ? h("input", { name: "scheduled_enqueue_time", type: "datetime-local", step: 1 }) : null;
  const element = h("div", { class: "form-grid" },
    field("Body", inputs.body, { wide: true }),
    field("Content type", inputs.content_type),
    field("Subject", inputs.subject),
    field("Message ID", inputs.message_id),
    field("Correlation ID", inputs.correlation_id),
    field("Session ID", inputs.session_id),
    scheduled ? field("Scheduled enqueue time", scheduled, { hint: "empty: now" }) : null,
    field("Application properties (JSON object)", inputs.application_properties, { wide: true }),
    h("datalist", { id: "content-types" }, ["application/json", "text/plain", "application/xml", "application/octet-stream"]
      .map((type) => h("option", { value: type }))));

  function read() {
    const message = { body: inputs.body.value };
    for (const name of ["content_type", "message_id", "session_id", "correlation_id", "subject"]) {
      const value = inputs[name].value.trim();
      if (value) message[name] = value;
    }
    if (sessionRequired && !message.session_id) throw new Error("this entity requires sessions: give a session ID");
    const properties = parseObject(inputs.application_properties.value, "Application properties");
    if (Object.keys(properties).length) message.application_properties = properties;
    if (scheduled?.value) {
      const when = new Date(scheduled.value);
      if (Number.isNaN(when.getTime())) throw new Error("the scheduled time is not a date");
      message.scheduled_enqueue_time = when.toISOString();
    }
    return message;
  }

  /** Fills the form from a message the broker showed (for "pick a message"). */
  function fill(message) {
    for (const name of ["content_type", "message_id", "session_id", "correlation_id", "subject"]) {
      inputs[name].value = message[name] ?? "";
    }
    inputs.body.value = message.body?.text ?? "";
    inputs.application_properties.value = JSON.stringify(Object.fromEntries(Object.entries(message.application_properties ?? {})
      .map(([name, property]) => [name, property?.value ?? property])), null, 2);
  }
  return { element, read, fill };
}

/** Sends a message to a queue or topic after the user composes it, and says what happened. */
export async function sendDialog(entity) {
  const { element, read } = messageFields({ sessionRequired: Boolean(entity.info?.requires_session) });
  const error = errorLine();
  const answer = await dialog({
    title: `Send a message to ${entity.path}`,
    wide: true,
    body: h("div", null, element, error),
    buttons: [{
      label: "Send",
      action: guarded(error, () => post("/api/console/send", { entity: entity.path, ...read() })),
    }],
  });
  if (!answer) return;
  // A topic's subscriptions each number their own copy: there is no one sequence number.
  report(answer.sequence_number === null || answer.sequence_number === undefined
    ? `Published to ${entity.path}`
    : `Sent to ${entity.path}: sequence number ${answer.sequence_number}`);
  live.refresh();
  announceChange(entity.path);
}
