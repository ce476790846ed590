// The pages' shared helpers: the session token in localStorage, the JSON API, small renderers.
const shop = {
  token() { return localStorage.getItem("shop.token"); },
  email() { return localStorage.getItem("shop.email") || ""; },
  signedIn(token, email) { localStorage.setItem("shop.token", token); localStorage.setItem("shop.email", email); },
  signedOut() { localStorage.removeItem("shop.token"); localStorage.removeItem("shop.email"); },
  requireSession() {
    if (!shop.token()) { location.href = "/login"; return false; }
    const who = document.getElementById("who");
    if (who) who.textContent = shop.email();
    return true;
  },
  async api(method, path, body) {
    const headers = { "accept": "application/json" };
    if (body !== undefined) headers["content-type"] = "application/json";
    if (shop.token()) headers["authorization"] = "Bearer " + shop.token();
    const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await response.text();
    const data = text ? JSON.parse(text) : null;
    if (response.status === 401 && !path.startsWith("/api/auth/")) { shop.signedOut(); location.href = "/login"; }
    if (!response.ok) throw new Error((data && data.error) || response.statusText);
    return data;
  },
  say(id, text, isError) {
    const element = document.getElementById(id);
    element.textContent = text;
    element.className = "message" + (isError ? " error" : "");
  },
  escape(value) {
    return String(value ?? "").replace(/[&<>"']/g, c => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
  },
  money(cents) { return (Number(cents || 0) / 100).toFixed(2); },
  when(value) { return value ? new Date(value).toLocaleString() : ""; },
  // A bar chart of [label, value] pairs as inline SVG.
  bars(pairs) {
    const width = 420, height = 180, bottom = 20, max = Math.max(1, ...pairs.map(p => p[1]));
    const step = width / Math.max(1, pairs.length);
    const rects = pairs.map(([label, value], i) => {
      const h = (height - bottom - 14) * value / max, x = i * step + step * 0.15, y = height - bottom - h;
      return `<rect x="${x}" y="${y}" width="${step * 0.7}" height="${h}"></rect>` +
        `<text x="${x + step * 0.35}" y="${y - 3}" text-anchor="middle">${shop.escape(value)}</text>` +
        `<text x="${x + step * 0.35}" y="${height - 5}" text-anchor="middle">${shop.escape(label)}</text>`;
    }).join("");
    return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="100%">${rects}</svg>`;
  },
  // A line chart of [label, value] pairs as inline SVG.
  line(pairs) {
    const width = 420, height = 180, bottom = 20, max = Math.max(1, ...pairs.map(p => p[1]));
    const step = width / Math.max(1, pairs.length - 1);
    const points = pairs.map(([, value], i) => `${i * step},${height - bottom - (height - bottom - 14) * value / max}`).join(" ");
    const first = pairs.length ? `<text x="0" y="${height - 5}">${shop.escape(pairs[0][0])}</text>` : "";
    const last = pairs.length > 1 ? `<text x="${width}" y="${height - 5}" text-anchor="end">${shop.escape(pairs[pairs.length - 1][0])}</text>` : "";
    return `<svg class="chart" viewBox="0 0 ${width} ${height}" width="100%"><polyline points="${points}"></polyline>${first}${last}</svg>`;
  },
};
document.addEventListener("click", async event => {
  if (event.target.id !== "logout") return;
  event.preventDefault();
  try { await shop.api("POST", "/api/auth/logout"); } catch (_) { /* signed out either way */ }
  shop.signedOut();
  location.href = "/login";
});
