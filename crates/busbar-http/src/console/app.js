// The console's entry: access first (the development token on loopback, else the key
// form), then the page the URL's hash names: `#/` the overview, `#/queue/<name>`,
// `#/topic/<name>`, `#/topic/<topic>/subscription/<name>`.

import * as api from "./api.js";
import { clear, h } from "./dom.js";
import * as live from "./live.js";
import { entityHref, overviewPage } from "./overview.js";
import { entityPage } from "./entity.js";

const view = document.getElementById("view");
const signin = document.getElementById("signin");
const crumbs = document.getElementById("crumbs");
let leaveCurrent = () => {};

/** Shows the key form and nothing else: no data stays on screen without a valid token. */
function showSignIn(reason) {
  live.stop();
  leaveCurrent();
  leaveCurrent = () => {};
  api.forgetToken();
  clear(view).hidden = true;
  clear(crumbs);
  // Nothing seen before may stay: not in a report, not in a (closed) dialog.
  clear(document.getElementById("toasts"));
  const modal = document.getElementById("dialog");
  if (modal.open) modal.close();
  clear(modal);
  for (const id of ["live", "who", "sign-out"]) document.getElementById(id).hidden = true;
  signin.hidden = false;
  const error = document.getElementById("signin-error");
  error.textContent = reason ?? "";
  error.hidden = !reason;
  signin.querySelector("input[name=key]").focus();
}

function showConsole() {
  signin.hidden = true;
  view.hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.getElementById("live").hidden = false;
  const who = document.getElementById("who");
  who.textContent = keyName() ? `signed in as ${keyName()}` : "";
  who.hidden = !keyName();
  live.start();
  route();
}

let renewing = null;
let renewedAt = 0;
function onUnauthorized(message) {
  // Two reads refused at once renew once; a token refused right after renewal is not
  // renewed again (that would loop), the key form shows instead.
  renewing ??= (async () => {
    const recently = Date.now() - renewedAt < 10000;
    if (!recently && (await api.tryDevelopmentToken())) {
      renewedAt = Date.now();
      showConsole();
    } else {
      showSignIn(`Not authorized: ${message}`);
    }
    renewing = null;
  })();
}

/** The key name the token was signed with, to say who is signed in. */
function keyName() {
  const match = /(?:^|[\s&])skn=([^&]+)/.exec(api.token() ?? "");
  return match ? decodeURIComponent(match[1]) : null;
}

/** Parses the hash into the page to show. */
function parseRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "queue" && parts.length === 2) return { kind: "queue", name: parts[1], path: parts[1] };
  if (parts[0] === "topic" && parts.length === 2) return { kind: "topic", name: parts[1], path: parts[1] };
  if (parts[0] === "topic" && parts[2] === "subscription" && parts.length === 4) {
    return { kind: "subscription", topic: parts[1], name: parts[3], path: `${parts[1]}/Subscriptions/${parts[3]}` };
  }
  return { kind: "overview" };
}

function setCrumbs(route) {
  const sep = () => h("span", { class: "sep" }, "/");
  const items = [h("a", { href: "#/" }, "Namespace")];
  if (route.kind === "queue") items.push(sep(), h("span", null, route.name));
  if (route.kind === "topic") items.push(sep(), h("span", null, route.name));
  if (route.kind === "subscription") {
    items.push(sep(), h("a", { href: entityHref({ kind: "topic", path: route.topic }) }, route.topic),
      sep(), h("span", null, route.name));
  }
  crumbs.replaceChildren(...items);
}

function route() {
  if (view.hidden) return;
  leaveCurrent();
  const current = parseRoute();
  setCrumbs(current);
  clear(view);
  leaveCurrent = current.kind === "overview" ? overviewPage(view) : entityPage(view, current);
  window.scrollTo(0, 0);
}

function watchLiveness() {
  const indicator = document.getElementById("live");
  const text = document.getElementById("live-text");
  live.subscribe((state) => {
    const stale = Boolean(state.error);
    indicator.classList.toggle("stale", stale);
    text.textContent = stale ? `not updating: ${state.error.message}` : `live · ${new Date(state.snapshot.at).toLocaleTimeString()}`;
  });
}

async function start() {
  api.setUnauthorizedHandler(onUnauthorized);
  watchLiveness();
  window.addEventListener("hashchange", route);
  document.getElementById("sign-out").addEventListener("click", () => showSignIn());
  document.getElementById("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const form = event.currentTarget;
    const fields = new FormData(form);
    const error = document.getElementById("signin-error");
    try {
      await api.signIn(String(fields.get("key_name")), String(fields.get("key")));
      form.querySelector("input[name=key]").value = "";
      error.hidden = true;
      showConsole();
    } catch (failure) {
      error.textContent = `Sign-in refused: ${failure.message}`;
      error.hidden = false;
    }
  });
  if (api.token() || (await api.tryDevelopmentToken())) showConsole();
  else showSignIn();
}

start();
