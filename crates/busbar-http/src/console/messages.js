// The message browser of a queue or subscription: one state at a time, a page at a time
// from a sequence number (peeking changes nothing), a message's details beside the list,
// and the repairs: resubmit (one, a selection, all matching a filter, or edited), delete,
// cancel scheduled, purge with progress. Every change is confirmed, then reported.

import { get, post, query } from "./api.js";
import { bytes, confirm, count, dialog, errorLine, field, guarded, h, parseObject, report, reportError, time } from "./dom.js";
import * as live from "./live.js";
import { bodyText, messageDetails } from "./message_view.js";

const STATES = [
  ["active", "Active", "active"], ["scheduled", "Scheduled", "scheduled"], ["deferred", "Deferred", "deferred"],
  ["deadletter", "Dead-letter", "dead_letter"], ["transferdeadletter", "Transfer DL", "transfer_dead_letter"],
];
const PAGE_SIZES = [25, 50, 100];
const DEAD_LETTER_PROPERTIES = ["DeadLetterReason", "DeadLetterErrorDescription"];

export function messagesPanel(current) {
  let state = "active";
  let from = 0;
  let limit = 50;
  let previous = []; // the `from` of earlier pages, for "Previous"
  let page = { messages: [], next_from: null };
  let detail = null;
  const selected = new Set();

  const stateTabs = h("div", { class: "subtabs", role: "tablist", id: "states" });
  const badges = new Map();
  for (const [id, label, key] of STATES) {
    const badge = h("span", { class: "count" });
    badges.set(key, badge);
    stateTabs.append(h("button", { type: "button", "data-state": id, onclick: () => switchState(id) }, label, badge));
  }
  const fromInput = h("input", { type: "number", min: 0, step: 1, value: "0", "aria-label": "From sequence number" });
  const sizeSelect = h("select", { "aria-label": "Page size" }, PAGE_SIZES.map((n) => h("option", { value: n, selected: n === limit }, `${n} a page`)));
  const prevButton = h("button", { class: "btn", type: "button", onclick: () => load(previous.pop() ?? 0, false) }, "‹ Previous");
  const nextButton = h("button", { class: "btn", type: "button", onclick: () => { previous.push(from); load(page.next_from, false); } }, "Next ›");
  const pageNote = h("span", { class: "muted" });
  const selectionBar = h("div", { class: "selection-bar", hidden: true });
  const stateActions = h("span", { class: "state-actions" });
  const tbody = h("tbody");
  const headRow = h("tr");
  const table = h("table", { class: "grid", id: "messages" }, h("thead", null, headRow), tbody);
  const details = h("div", { class: "card details" }, h("div", { class: "placeholder" }, "Select a message to see its body and properties."));

  sizeSelect.addEventListener("change", () => { limit = Number(sizeSelect.value); load(from, false); });
  const go = h("form", { class: "pager", onsubmit: (event) => { event.preventDefault(); previous = []; load(Number(fromInput.value) || 0, false); } },
    h("label", { class: "check" }, "From #", fromInput), h("button", { class: "btn", type: "submit" }, "Go"));

  const element = h("div", null,
    h("div", { class: "toolbar" }, stateTabs, h("span", { class: "grow" }), stateActions,
      h("button", { class: "btn", type: "button", onclick: () => load(from, true) }, "Refresh")),
    h("div", { class: "browser" },
      h("div", { class: "list" },
        h("div", { class: "toolbar" }, go, sizeSelect, prevButton, nextButton, h("span", { class: "grow" }), pageNote),
        selectionBar,
        h("div", { class: "card table-wrap" }, table)),
      details));

  function columns() {
    const base = [["select", ""], ["seq", "Seq #"], ["id", "Message ID"], ["subject", "Subject"], ["enqueued", "Enqueued"]];
    if (state === "scheduled") base.push(["scheduled", "Scheduled for"]);
    if (state === "deadletter" || state === "transferdeadletter") base.push(["reason", "Dead-letter reason"]);
    base.push(["deliveries", "Deliveries"], ["size", "Size"]);
    return base;
  }

  function switchState(id) {
    state = id;
    previous = [];
    load(0, false);
  }

  async function load(start, keepDetail) {
    from = Math.max(0, start ?? 0);
    fromInput.value = String(from);
    selected.clear();
    if (!keepDetail) detail = null;
    for (const button of stateTabs.children) button.setAttribute("aria-selected", String(button.dataset.state === state));
    renderStateActions();
    tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 9 }, "Loading…")));
    try {
      page = await get(`/api/console/messages${query({ entity: current().path, state, from, limit })}`);
    } catch (failure) {
      page = { messages: [], next_from: null };
      tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: 9 }, `Could not read messages: ${failure.message}`)));
      renderChrome();
      return;
    }
    if (detail) detail = page.messages.find((m) => m.sequence_number === detail.sequence_number) ?? null;
    renderRows();
    renderDetail();
  }

  function renderChrome() {
    prevButton.disabled = previous.length === 0 && from === 0;
    nextButton.disabled = page.next_from === null || page.next_from === undefined;
    const shown = page.messages.length;
    pageNote.textContent = shown
      ? `#${page.messages[0].sequence_number} to #${page.messages[shown - 1].sequence_number}` +
        (nextButton.disabled ? ", the last page" : ", more after")
      : "";
    selectionBar.hidden = selected.size === 0;
    if (selected.size) renderSelectionBar();
  }

  function renderRows() {
    const cols = columns();
    const all = h("input", { type: "checkbox", "aria-label": "Select all on this page" });
    all.addEventListener("change", () => {
      for (const message of page.messages) all.checked ? selected.add(message.sequence_number) : selected.delete(message.sequence_number);
      renderRows();
    });
    all.checked = page.messages.length > 0 && page.messages.every((m) => selected.has(m.sequence_number));
    headRow.replaceChildren(...cols.map(([key, label]) => h("th", { class: key === "seq" || key === "size" || key === "deliveries" ? "num" : null },
      key === "select" ? all : label)));
    if (!page.messages.length) {
      tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: cols.length },
        from > 0 ? `No ${label(state)} messages from #${from} on.` : `No ${label(state)} messages.`)));
      renderChrome();
      return;
    }
    tbody.replaceChildren(...page.messages.map((message) => {
      const seq = message.sequence_number;
      const box = h("input", { type: "checkbox", checked: selected.has(seq), "aria-label": `Select message ${seq}` });
      box.addEventListener("click", (event) => event.stopPropagation());
      box.addEventListener("change", () => {
        box.checked ? selected.add(seq) : selected.delete(seq);
        renderChrome();
      });
      const cell = {
        select: () => h("td", null, box),
        seq: () => h("td", { class: "num mono" }, String(seq)),
        id: () => h("td", { class: "clip mono" }, message.message_id ?? "–"),
        subject: () => h("td", { class: "clip" }, message.subject ?? ""),
        enqueued: () => h("td", { class: "mono" }, time(message.enqueued_time)),
        scheduled: () => h("td", { class: "mono" }, time(message.scheduled_enqueue_time)),
        reason: () => h("td", { class: "clip" }, h("span", { class: "pill dead" }, message.dead_letter_reason ?? "–")),
        deliveries: () => h("td", { class: "num" }, String(message.delivery_count ?? 0)),
        size: () => h("td", { class: "num" }, bytes(message.body?.size)),
      };
      const row = h("tr", { class: `clickable${detail?.sequence_number === seq ? " selected" : ""}`, "data-seq": seq },
        cols.map(([key]) => cell[key]()));
      row.addEventListener("click", () => {
        detail = message;
        for (const other of tbody.children) other.classList.toggle("selected", other === row);
        renderDetail();
      });
      return row;
    }));
    renderChrome();
  }

  function renderDetail() {
    if (!detail) {
      details.replaceChildren(h("div", { class: "placeholder" }, "Select a message to see its body and properties."));
      return;
    }
    const seq = detail.sequence_number;
    const message = detail;
    const buttons = [];
    if (state === "deadletter") {
      buttons.push(
        h("button", { class: "btn primary small", type: "button", onclick: () => resubmit([seq]) }, "Resubmit"),
        h("button", { class: "btn small", type: "button", onclick: () => repair(message) }, "Repair and resubmit…"));
    }
    if (state === "scheduled") buttons.push(h("button", { class: "btn small", type: "button", onclick: () => cancelScheduled([seq]) }, "Cancel scheduled"));
    buttons.push(h("button", { class: "btn danger small", type: "button", onclick: () => remove([seq]) }, "Delete"));
    details.replaceChildren(messageDetails(message, buttons));
  }

  function renderStateActions() {
    const items = [];
    if (state === "deadletter") {
      items.push(h("button", { class: "btn", type: "button", onclick: resubmitMatching }, "Resubmit all matching…"));
    }
    stateActions.replaceChildren(...items);
    stateActions.hidden = items.length === 0;
  }

  function renderSelectionBar() {
    const seqs = [...selected];
    const items = [h("b", null, `${seqs.length} selected`)];
    if (state === "deadletter") items.push(h("button", { class: "btn primary small", type: "button", onclick: () => resubmit(seqs) }, "Resubmit selected"));
    if (state === "scheduled") items.push(h("button", { class: "btn small", type: "button", onclick: () => cancelScheduled(seqs) }, "Cancel selected"));
    items.push(
      h("button", { class: "btn danger small", type: "button", onclick: () => remove(seqs) }, "Delete selected"),
      h("button", { class: "btn small", type: "button", onclick: () => { selected.clear(); renderRows(); } }, "Clear selection"));
    selectionBar.replaceChildren(...items);
  }

  const after = () => {
    live.refresh();
    return load(from, false);
  };

  async function resubmit(seqs) {
    const ok = await confirm("Resubmit dead-lettered messages",
      `Send ${describe(seqs)} back to ${current().path}? Each leaves the dead-letter queue once its copy is stored.`,
      { label: "Resubmit" });
    if (!ok) return;
    await run("Resubmitting", () => post("/api/console/resubmit", { entity: current().path, sequence_numbers: seqs }), resubmitted);
    await after();
  }

  async function resubmitMatching() {
    const subject = h("input", { name: "subject", placeholder: "any subject", spellcheck: "false" });
    const reason = h("input", { name: "reason", placeholder: "any reason", spellcheck: "false" });
    const total = current().counts.dead_letter;
    const filter = await dialog({
      title: "Resubmit all matching",
      body: h("div", null,
        h("p", null, `Resubmits every dead-lettered message of ${current().path} (${count(total)} now) that matches; leave a field empty to match any.`),
        h("div", { class: "form-grid" }, field("Subject is", subject), field("Dead-letter reason is", reason))),
      buttons: [{ label: "Resubmit all matching", action: () => ({ subject: subject.value.trim(), reason: reason.value.trim() }) }],
    });
    if (!filter) return;
    const body = { entity: current().path, all: true };
    const chosen = Object.fromEntries(Object.entries(filter).filter(([, value]) => value));
    if (Object.keys(chosen).length) body.filter = chosen;
    await run("Resubmitting", () => post("/api/console/resubmit", body), resubmitted);
    await after();
  }

  async function repair(message) {
    const body = h("textarea", { name: "body", rows: 12, spellcheck: "false" });
    body.value = bodyText(message.body);
    const properties = h("textarea", { name: "application_properties", rows: 5, spellcheck: "false" });
    // The broker's dead-letter annotations are not the application's: the copy goes without them.
    properties.value = JSON.stringify(Object.fromEntries(Object.entries(message.application_properties ?? {})
      .filter(([name]) => !DEAD_LETTER_PROPERTIES.includes(name))
      .map(([name, property]) => [name, property?.value ?? property])), null, 2);
    const error = errorLine();
    const edit = await dialog({
      title: `Repair and resubmit message #${message.sequence_number}`,
      wide: true,
      body: h("div", null,
        message.dead_letter_reason ? h("div", { class: "deadletter-box" }, h("div", { class: "reason" }, message.dead_letter_reason),
          message.dead_letter_description ? h("div", null, message.dead_letter_description) : null) : null,
        h("p", { class: "muted" }, `The edited copy goes to ${current().path}; the dead-lettered original is removed once the copy is stored.`),
        field("Body", body, { wide: true }),
        field("Application properties (JSON object)", properties, { wide: true }),
        error),
      buttons: [{
        label: "Resubmit edited",
        action: guarded(error, () => ({
          body: body.value, application_properties: parseObject(properties.value, "Application properties"),
        })),
      }],
    });
    if (!edit) return;
    await run("Repair and resubmit",
      () => post("/api/console/resubmit", { entity: current().path, sequence_numbers: [message.sequence_number], edit }), resubmitted);
    await after();
  }

  async function remove(seqs) {
    const ok = await confirm("Delete messages", `Delete ${describe(seqs)} from ${current().path} (${label(state)})? This cannot be undone.`,
      { label: "Delete", danger: true });
    if (!ok) return;
    await run("Deleting", () => post("/api/console/delete", { entity: current().path, state, sequence_numbers: seqs }),
      (answer) => `Deleted ${count(answer.deleted)} message${answer.deleted === 1 ? "" : "s"}`);
    await after();
  }

  async function cancelScheduled(seqs) {
    const ok = await confirm("Cancel scheduled messages", `Cancel ${describe(seqs)}? They will not be enqueued.`, { label: "Cancel them", danger: true });
    if (!ok) return;
    await run("Cancelling", () => post("/api/console/cancel-scheduled", { entity: current().path, sequence_numbers: seqs }),
      (answer) => `Cancelled ${count(answer.cancelled)} scheduled message${answer.cancelled === 1 ? "" : "s"}`);
    await after();
  }

  const render = (liveState) => {
    const entity = liveState.snapshot?.entities.get(current().path);
    if (!entity) return;
    for (const [key, badge] of badges) {
      const n = entity.counts[key] ?? 0;
      badge.textContent = count(n);
      badge.classList.toggle("attn", key.includes("dead") && n > 0);
    }
  };
  const unsubscribe = live.subscribe(render);
  const onChange = (event) => event.detail === current().path && load(from, true);
  document.addEventListener(CHANGED, onChange);
  render(live.state);
  load(0, false);
  return {
    element,
    leave: () => {
      unsubscribe();
      document.removeEventListener(CHANGED, onChange);
    },
  };
}

const CHANGED = "busbar:changed";
/** Tells an open message browser of `path` that its messages changed (sent, purged). */
export function announceChange(path) {
  document.dispatchEvent(new CustomEvent(CHANGED, { detail: path }));
}

function label(state) {
  return STATES.find(([id]) => id === state)?.[1].toLowerCase() ?? state;
}

function describe(seqs) {
  return seqs.length === 1 ? `message #${seqs[0]}` : `${seqs.length} messages`;
}

function resubmitted(answer) {
  const failed = answer.failed ?? [];
  const text = `Resubmitted ${count(answer.resubmitted)} message${answer.resubmitted === 1 ? "" : "s"}`;
  if (!failed.length) return text;
  return { error: `${text}; ${failed.length} failed: ${failed.slice(0, 3).map((f) => `#${f.sequence_number} ${f.error}`).join("; ")}` };
}

/** Runs an action and reports its outcome (`describe` says what the answer means). */
async function run(what, action, describeAnswer) {
  try {
    const answer = await action();
    const said = describeAnswer(answer);
    if (typeof said === "string") report(said);
    else report(said.error, { error: true });
    return answer;
  } catch (failure) {
    reportError(what, failure);
    return null;
  }
}

/** Purges an entity's messages or its dead-letter queue, following the job's progress. */
export async function purge(entity, deadLetter) {
  const which = deadLetter ? "dead-letter queue" : "messages";
  const held = deadLetter ? entity.counts.dead_letter : entity.counts.active + entity.counts.scheduled + entity.counts.deferred;
  const ok = await confirm(`Purge ${which}`,
    `Remove all ${count(held)} ${deadLetter ? "dead-lettered messages" : "messages"} of ${entity.path}? This cannot be undone.`,
    { label: `Purge ${which}`, danger: true });
  if (!ok) return;
  let job;
  try {
    job = (await post("/api/console/purge", { entity: entity.path, dead_letter: deadLetter })).job;
  } catch (failure) {
    reportError("Purge", failure);
    return;
  }
  const bar = h("div");
  const text = h("p", { id: "purge-progress" }, "Starting…");
  const element = document.getElementById("dialog");
  element.replaceChildren(
    h("div", { class: "dialog-head" }, `Purging the ${which} of ${entity.path}`),
    h("div", { class: "dialog-body" }, h("div", { class: "progress" }, bar), text));
  element.onclose = null;
  element.showModal();
  let status = null;
  const started = Date.now();
  try {
    for (;;) {
      status = await get(`/api/console/jobs/${encodeURIComponent(job)}`);
      const fraction = status.total ? Math.min(1, status.removed / status.total) : status.done ? 1 : 0;
      bar.style.width = `${(fraction * 100).toFixed(1)}%`;
      text.textContent = `${count(status.removed)} of ${count(status.total)} removed`;
      if (status.done) break;
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  } catch (failure) {
    status = { error: failure.message };
  }
  element.close();
  element.replaceChildren();
  if (status?.error) report(`Purge of ${entity.path} stopped: ${status.error}`, { error: true });
  else {
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    report(`Purged ${count(status.removed)} message${status.removed === 1 ? "" : "s"} from the ${which} of ${entity.path} in ${seconds} s`);
  }
  live.refresh();
  announceChange(entity.path);
}
