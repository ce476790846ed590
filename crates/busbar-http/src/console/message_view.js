// One message in full: dead-letter reason and description first (why it is here), the body
// as text, pretty-printed JSON or a hex dump, then system and application properties.

import { bytes, h, time } from "./dom.js";

/** The body's bytes: text and JSON bodies are UTF-8, binary ones come base64-encoded. */
export function bodyBytes(body) {
  if (!body) return new Uint8Array();
  if (body.kind === "binary") {
    const raw = atob(body.base64 ?? "");
    return Uint8Array.from(raw, (c) => c.charCodeAt(0));
  }
  return new TextEncoder().encode(body.text ?? "");
}

/** The body as the user would edit it: JSON pretty-printed, text as is, binary as text when it decodes. */
export function bodyText(body) {
  if (!body) return "";
  if (body.kind === "binary") {
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(bodyBytes(body));
    } catch {
      return "";
    }
  }
  return prettyJson(body.text ?? "") ?? body.text ?? "";
}

function prettyJson(text) {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return null;
  }
}

/** A classic hex dump: offset, 16 bytes, their printable characters. */
export function hexDump(data) {
  const lines = [];
  const limit = Math.min(data.length, 64 * 1024);
  for (let offset = 0; offset < limit; offset += 16) {
    const row = data.subarray(offset, Math.min(offset + 16, limit));
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => (b >= 32 && b < 127 ? String.fromCharCode(b) : ".")).join("");
    lines.push(`${offset.toString(16).padStart(8, "0")}  ${hex.padEnd(47)}  ${ascii}`);
  }
  if (data.length > limit) lines.push(`… ${data.length - limit} more bytes`);
  return lines.join("\n");
}

function bodySection(body) {
  const views = { text: "Text", json: "JSON", hex: "Hex" };
  const initial = body?.kind === "json" ? "json" : body?.kind === "binary" ? "hex" : "text";
  const pre = h("pre", { class: "body-view", id: "message-body" });
  const buttons = h("div", { class: "subtabs", role: "tablist" });
  const show = (view) => {
    for (const button of buttons.children) button.setAttribute("aria-selected", String(button.dataset.view === view));
    pre.classList.toggle("hex", view === "hex");
    if (view === "hex") {
      pre.textContent = hexDump(bodyBytes(body));
    } else if (view === "json") {
      const text = body?.kind === "binary" ? bodyText(body) : body?.text ?? "";
      pre.textContent = prettyJson(text) ?? `(not JSON)\n\n${text}`;
    } else {
      pre.textContent = body?.kind === "binary" ? bodyText(body) || "(binary body: see Hex)" : body?.text ?? "";
    }
  };
  for (const [view, label] of Object.entries(views)) {
    buttons.append(h("button", { type: "button", "data-view": view, onclick: () => show(view) }, label));
  }
  show(initial);
  return h("div", null,
    h("div", { class: "toolbar" }, h("h3", null, "Body"), buttons,
      h("span", { class: "muted" }, `${body?.kind ?? "empty"} · ${bytes(body?.size ?? 0)}`)),
    pre);
}

const SYSTEM = [
  ["sequence_number", "Sequence number"], ["message_id", "Message ID"], ["session_id", "Session ID"],
  ["correlation_id", "Correlation ID"], ["subject", "Subject"], ["content_type", "Content type"],
  ["to", "To"], ["reply_to", "Reply to"], ["enqueued_time", "Enqueued", time],
  ["scheduled_enqueue_time", "Scheduled for", time], ["expires_at", "Expires", time],
  ["time_to_live_ms", "Time to live (ms)"], ["delivery_count", "Delivery count"], ["locked_until", "Locked until", time],
];

export function messageDetails(message, actions) {
  const system = h("table", { class: "kv" }, h("tbody", null,
    SYSTEM.filter(([key]) => message[key] !== null && message[key] !== undefined)
      .map(([key, label, format]) => h("tr", null, h("th", null, label), h("td", null, format ? format(message[key]) : String(message[key]))))));
  const properties = Object.entries(message.application_properties ?? {});
  const application = properties.length
    ? h("table", { class: "kv", id: "application-properties" }, h("tbody", null, properties.map(([name, property]) =>
      h("tr", null, h("th", null, name), h("td", { class: "type" }, property?.type ?? ""), h("td", null, JSON.stringify(property?.value ?? property))))))
    : h("p", { class: "muted" }, "none");
  const deadLetter = message.dead_letter_reason || message.dead_letter_description
    ? h("div", { class: "deadletter-box", id: "dead-letter-reason" },
      h("div", { class: "reason" }, message.dead_letter_reason ?? "(no reason)"),
      message.dead_letter_description ? h("div", null, message.dead_letter_description) : null,
      message.dead_letter_source ? h("div", { class: "muted" }, `from ${message.dead_letter_source}`) : null)
    : null;
  return h("div", { id: "message-details" },
    h("div", { class: "toolbar" }, h("h2", null, `Message #${message.sequence_number}`), h("span", { class: "grow" }), actions),
    deadLetter,
    bodySection(message.body),
    h("h3", null, "System properties"), system,
    h("h3", null, "Application properties"), application);
}
