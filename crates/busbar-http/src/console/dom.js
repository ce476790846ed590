// Building blocks of the pages: elements built through the DOM (text is never parsed as
// HTML), number and time formatting, the confirm / form dialog and the reports of actions.

/** An element: `h("td", {class: "num"}, "12")`. Children may be nodes, text, arrays or null. */
export function h(tag, attrs, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "class") {
      element.className = value;
    } else if (name === "value" || name === "checked" || name === "selected") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
/** An SVG element with attributes. */
export function svg(tag, attrs, ...children) {
  const element = document.createElementNS(SVG_NS, tag);
  for (const [name, value] of Object.entries(attrs ?? {})) element.setAttribute(name, String(value));
  for (const child of children) if (child) element.append(child);
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

const integer = new Intl.NumberFormat("en-US");
export const count = (n) => (n === null || n === undefined ? "–" : integer.format(n));

/** A per-second rate: "0", "0.4", "12", "1.2k". */
export function rate(perSecond) {
  if (perSecond === null || perSecond === undefined || Number.isNaN(perSecond)) return "–";
  if (perSecond === 0) return "0";
  if (perSecond < 10) return perSecond.toFixed(1);
  if (perSecond < 10000) return Math.round(perSecond).toString();
  return `${(perSecond / 1000).toFixed(1)}k`;
}

/** "2026-12-07 03:12:45" in the browser's time zone (times from the broker are RFC 3339). */
export function time(value) {
  if (!value) return "–";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return String(value);
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

/** A duration in milliseconds as people say it: "30 s", "5 min", "14 d". */
export function duration(ms) {
  if (ms === null || ms === undefined) return "never";
  const units = [["d", 86400000], ["h", 3600000], ["min", 60000], ["s", 1000]];
  for (const [unit, size] of units) {
    if (ms >= size && ms % size === 0) return `${integer.format(ms / size)} ${unit}`;
  }
  return `${integer.format(ms)} ms`;
}

export function bytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

/** A table cell with a count, greyed when zero, marked when it needs attention. */
export function countCell(cell, n, attention = false) {
  const text = count(n);
  if (cell.textContent !== text) cell.textContent = text;
  const className = `num${n === 0 ? " zero" : attention && n > 0 ? " attn" : ""}`;
  if (cell.className !== className) cell.className = className;
}

// Reports: every action says what it did (or why not) in a toast.
export function report(text, { error = false } = {}) {
  const toast = h("div", { class: `toast${error ? " error" : ""}`, role: error ? "alert" : "status" }, text);
  const remove = () => toast.remove();
  toast.addEventListener("click", remove);
  document.getElementById("toasts").append(toast);
  if (!error) setTimeout(remove, 6000);
}

export function reportError(what, error) {
  report(`${what} failed: ${error.message ?? error}`, { error: true });
}

/**
 * A modal dialog. `buttons` are {label, kind, action}; an action returning false keeps the
 * dialog open (for validation); the promise resolves with the clicked action's value, or
 * null when dismissed.
 */
export function dialog({ title, body, buttons, wide = false }) {
  const element = document.getElementById("dialog");
  return new Promise((resolve) => {
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      element.close();
      // A closed dialog keeps no form (its fields would still match lookups) nor any data.
      element.replaceChildren();
      resolve(value);
    };
    const footer = h("div", { class: "dialog-foot" },
      h("button", { type: "button", class: "btn", onclick: () => finish(null) }, "Cancel"),
      buttons.map((button) => h("button", {
        type: "button",
        class: `btn ${button.kind ?? "primary"}`,
        "data-action": button.label,
        onclick: async (event) => {
          const target = event.currentTarget;
          target.disabled = true;
          try {
            const value = button.action ? await button.action() : true;
            if (value !== false) finish(value);
          } finally {
            target.disabled = false;
          }
        },
      }, button.label)));
    element.replaceChildren(
      h("div", { class: "dialog-head" }, title),
      h("div", { class: "dialog-body" }, body),
      footer,
    );
    element.style.width = wide ? "min(900px, 94vw)" : "";
    element.onclose = () => finish(null);
    element.showModal();
  });
}

/** Asks before a change; resolves true when confirmed. */
export async function confirm(title, message, { label = "Confirm", danger = false } = {}) {
  const answer = await dialog({
    title,
    body: typeof message === "string" ? h("p", null, message) : message,
    buttons: [{ label, kind: danger ? "danger solid" : "primary", action: () => true }],
  });
  return answer === true;
}

/** A labelled field for forms. */
export function field(label, input, { wide = false, hint } = {}) {
  return h("label", { class: wide ? "wide" : null }, label, input, hint ? h("span", { class: "hint" }, hint) : null);
}

export function checkbox(label, name, checked, { disabled = false } = {}) {
  return h("label", { class: "check" }, h("input", { type: "checkbox", name, checked, disabled }), label);
}

/** Parses a JSON object typed by the user ({} when empty); throws with a readable message. */
export function parseObject(text, what) {
  const trimmed = text.trim();
  if (!trimmed) return {};
  let value;
  try {
    value = JSON.parse(trimmed);
  } catch (error) {
    throw new Error(`${what} is not valid JSON: ${error.message}`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new Error(`${what} must be a JSON object like {"name": "value"}`);
  }
  return value;
}

/** The line where a dialog says what is wrong with its input. */
export const errorLine = () => h("p", { class: "error", role: "alert", hidden: true });

/**
 * A dialog button's action that, when `action` throws, shows why in `error` and keeps
 * the dialog open for a correction.
 */
export function guarded(error, action) {
  return async () => {
    try {
      return await action();
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
      return false;
    }
  };
}

/** A table cell with a per-second rate, greyed when nothing moves. */
export function rateCell(cell, perSecond) {
  const text = rate(perSecond);
  if (cell.textContent !== text) cell.textContent = text;
  const className = `num${perSecond ? "" : " zero"}`;
  if (cell.className !== className) cell.className = className;
}
