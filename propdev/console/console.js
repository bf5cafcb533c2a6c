// The supervision console. Logs the operator in with the authorization code + PKCE flow
// (client "propdev-console", redirect back here), keeps the tokens in memory only (the PKCE
// verifier waits in sessionStorage across the redirect), and shows the node live over
// /admin/api/v1/ws. Sections whose endpoint the server does not have (read from /openapi.json)
// stay hidden.
"use strict";

const CLIENT_ID = document.querySelector('meta[name="propdev-client-id"]').content;
const REDIRECT_URI = location.origin + "/admin/";
const SCOPE = "openid profile api";
const PKCE_KEY = "propdev-console-pkce";

const session = { access: null, refresh: null, expiresAt: 0, user: "" };
let socket = null;
let paths = {};
let lastSnapshot = null;
let auditTimer = null;

// -- small DOM helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function $(selector) {
  return document.querySelector(selector);
}

function say(text, kind) {
  const box = $("#message");
  box.textContent = text;
  box.className = "message " + (kind || "info") + (text ? " shown" : "");
}

function setStatus(text, ok) {
  const pill = $("#status");
  pill.textContent = text;
  pill.className = "pill " + (ok ? "on" : "off");
}

function fillRows(tbody, rows) {
  tbody.replaceChildren(...rows);
}

function yesNo(value) {
  if (value === true) return h("span", { class: "ok" }, "online");
  if (value === false) return h("span", { class: "bad" }, "offline");
  return h("span", { class: "muted" }, "unknown");
}

// -- login: authorization code + PKCE (S256) ----------------------------------------------

function randomString(bytes) {
  const data = new Uint8Array(bytes);
  crypto.getRandomValues(data);
  return base64url(data);
}

function base64url(bytes) {
  let text = "";
  for (const b of bytes) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function challengeFor(verifier) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

async function startLogin() {
  const verifier = randomString(48);
  const state = randomString(16);
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: CLIENT_ID,
    redirect_uri: REDIRECT_URI,
    scope: SCOPE,
    state,
    code_challenge: await challengeFor(verifier),
    code_challenge_method: "S256",
    nonce: randomString(16),
  });
  location.assign("/oauth/authorize?" + params.toString());
}

async function tokenRequest(fields) {
  const response = await fetch("/oauth/token", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: CLIENT_ID, ...fields }).toString(),
    credentials: "omit",
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error_description || body.error || response.status);
  session.access = body.access_token;
  session.refresh = body.refresh_token || session.refresh;
  session.expiresAt = Date.now() + 1000 * (body.expires_in || 300);
}

async function finishLogin(query) {
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", "/admin/");
  if (query.get("error")) throw new Error(query.get("error_description") || query.get("error"));
  if (!saved || saved.state !== query.get("state")) throw new Error("The sign-in state does not match.");
  await tokenRequest({
    grant_type: "authorization_code",
    code: query.get("code"),
    redirect_uri: REDIRECT_URI,
    code_verifier: saved.verifier,
  });
}

async function freshToken() {
  if (session.access && Date.now() < session.expiresAt - 30000) return session.access;
  if (!session.refresh) throw new Error("not signed in");
  await tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh });
  return session.access;
}

async function api(method, path, body) {
  const token = await freshToken();
  const init = { method, headers: { Authorization: "Bearer " + token }, credentials: "omit" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = (data && (data.detail || data.title)) || String(response.status);
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

function signOut() {
  const token = session.refresh;
  session.access = session.refresh = null;
  if (socket) socket.close();
  if (token) {
    fetch("/oauth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, client_id: CLIENT_ID }).toString(),
    }).finally(() => location.assign("/admin/"));
  } else {
    location.assign("/admin/");
  }
}

// -- the live feed ------------------------------------------------------------------------

async function connect() {
  let token;
  try {
    token = await freshToken();
  } catch (err) {
    startLogin();
    return;
  }
  const ws = new WebSocket(`wss://${location.host}/admin/api/v1/ws`, ["bearer", token]);
  socket = ws;
  ws.onopen = () => setStatus("live", true);
  ws.onmessage = (event) => {
    const data = JSON.parse(event.data);
    if (data.type === "snapshot") render(data);
  };
  ws.onclose = () => {
    setStatus("reconnecting…", false);
    if (socket === ws && session.refresh) setTimeout(connect, 1500);
  };
}

function render(snapshot) {
  lastSnapshot = snapshot;
  renderTree(snapshot.tree, snapshot.stats);
  renderBreakers(snapshot.breakers);
  renderDevices(snapshot.devices);
}

function actorRow(actor) {
  const button = h(
    "button",
    { type: "button", class: "small", "data-restart": actor.id, "data-needs": "system.operate", onclick: () => restart(actor.id) },
    "restart",
  );
  return h(
    "tr",
    { "data-actor": actor.id, class: actor.state === "failed" ? "failed" : "" },
    h("td", { class: "mono" }, actor.id),
    h("td", { "data-field": "state" }, actor.state),
    h("td", { "data-field": "mailbox" }, `${actor.mailbox_depth}/${actor.mailbox_capacity}`),
    h("td", { "data-field": "restarts" }, actor.restarts),
    h("td", {}, button),
  );
}

function supervisorBlock(sup) {
  const actors = sup.actors || [];
  const table = h(
    "table",
    { class: "actors" },
    h("thead", {}, h("tr", {}, ["actor", "state", "mailbox", "restarts", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, actors.map(actorRow)),
  );
  const more = (sup.children_total || 0) - actors.length - (sup.supervisors || []).length;
  return h(
    "div",
    { class: "supervisor", "data-supervisor": sup.id },
    h(
      "div",
      { class: "sup-head" },
      h("strong", {}, sup.id),
      h("span", { class: "tag" }, sup.strategy),
      h("span", { class: sup.state === "running" ? "ok" : "bad" }, sup.state),
      h("span", { class: "muted" }, `restarts ${sup.child_restarts ?? sup.restarts ?? 0}`),
    ),
    actors.length ? table : h("div", { class: "muted" }, "no active actors"),
    more > 0 ? h("div", { class: "muted" }, `… and ${more} more`) : null,
    (sup.supervisors || []).map(supervisorBlock),
  );
}

function renderTree(tree, stats) {
  $("#tree").replaceChildren(
    h(
      "div",
      { class: "sup-head root" },
      h("strong", {}, `node ${tree.node}`),
      h("span", { class: "tag" }, tree.strategy || ""),
      h("span", { class: tree.failed ? "bad" : "ok" }, tree.state),
    ),
    ...(tree.supervisors || []).map(supervisorBlock),
  );
  if (stats) {
    $("#tree-summary").textContent =
      `${stats.active_actors} active · ${stats.restarts} restarts · ${stats.dead_letters} dead letters`;
  }
}

function renderBreakers(breakers) {
  fillRows(
    $("#breakers tbody"),
    (breakers || []).map((b) =>
      h(
        "tr",
        { "data-partner": b.partner_id },
        h("td", {}, b.partner_id),
        h("td", { class: b.state === "closed" ? "ok" : "bad" }, b.state),
        h("td", {}, b.failures),
        h("td", { "data-field": "latency" }, latencyText(b.latency)),
        h("td", { class: "muted" }, `in flight ${b.in_flight}/${b.max_in_flight}` +
          (b.retry_after ? ` · retry in ${Math.ceil(b.retry_after)} s` : "")),
      ),
    ),
  );
}

function latencyText(latency) {
  if (!latency || !latency.samples) return h("span", { class: "muted" }, "–");
  return `${latency.p50_ms} / ${latency.p95_ms} ms (${latency.samples})`;
}

function keypadText(keypad) {
  if (!keypad) return "";
  if (keypad.locked_out) {
    const until = new Date(keypad.locked_until * 1000).toLocaleTimeString();
    return `locked out until ${until} (${keypad.refused_while_locked} refused)`;
  }
  return keypad.lockouts ? `${keypad.lockouts} lockouts` : "";
}

function renderDevices(devices) {
  fillRows(
    $("#devices tbody"),
    (devices || []).map((d) =>
      h(
        "tr",
        { "data-device": d.id },
        h("td", { title: d.id }, d.name),
        h("td", {}, d.kind),
        h("td", { class: "mono", title: `partner ${d.partner}` }, d.device_id),
        h("td", {}, yesNo(d.online)),
        h("td", {}, d.active ? "active" : h("span", { class: "muted" }, "passive")),
        h("td", { class: "keypad" }, keypadText(d.keypad)),
      ),
    ),
  );
  const select = $("#open-ap");
  const audit = $("#audit-ap");
  const ids = (devices || []).map((d) => d.id).join(",");
  if (select.dataset.ids !== ids) {
    select.dataset.ids = ids;
    const chosen = select.value;
    select.replaceChildren(...devices.map((d) => h("option", { value: d.id }, d.name)));
    if (chosen) select.value = chosen;
    const chosenAudit = audit.value;
    audit.replaceChildren(
      h("option", { value: "" }, "all access points"),
      ...devices.map((d) => h("option", { value: d.id }, d.name)),
    );
    audit.value = chosenAudit;
  }
}

// -- actions ------------------------------------------------------------------------------

async function restart(actorId) {
  try {
    await api("POST", `/admin/api/v1/actors/${encodeURIComponent(actorId)}/restart`);
    say(`Restarted ${actorId}.`, "info");
  } catch (err) {
    say(`Could not restart ${actorId}: ${err.message}`, "error");
  }
}

async function openByHand(event) {
  event.preventDefault();
  const id = $("#open-ap").value;
  const reason = $("#open-reason").value.trim();
  if (reason.length < 3) {
    say("State a reason to open a door by hand.", "error");
    return;
  }
  try {
    const answer = await api("POST", `/admin/api/v1/access-points/${encodeURIComponent(id)}/open`, {
      reason,
    });
    $("#open-result").textContent = `Opened ${id} (command ${answer.command_id}).`;
    $("#open-reason").value = "";
    loadAudit();
  } catch (err) {
    $("#open-result").textContent = `Not opened: ${err.message}`;
  }
}

async function revokePass(id) {
  try {
    await api("DELETE", `/admin/api/v1/guest-passes/${encodeURIComponent(id)}`);
    say(`Revoked guest pass ${id}.`, "info");
    loadPasses();
    loadAudit();
  } catch (err) {
    say(`Could not revoke: ${err.message}`, "error");
  }
}

async function drain(nodeId) {
  if (!confirm(`Drain node ${nodeId}? It stops taking door work and hands its shards off; restart it to undo.`)) return;
  try {
    await api("POST", `/admin/api/v1/nodes/${encodeURIComponent(nodeId)}/drain`);
    say(`Draining ${nodeId}.`, "info");
    loadNodes();
    loadAudit();
  } catch (err) {
    say(`Could not drain ${nodeId}: ${err.message}`, "error");
  }
}

// -- sections read over REST --------------------------------------------------------------

function has(method, path) {
  return Boolean(paths[path] && paths[path][method]);
}

async function loadNodes() {
  if (!has("get", "/admin/api/v1/nodes")) return;
  try {
    const data = await api("GET", "/admin/api/v1/nodes");
    const canDrain = has("post", "/admin/api/v1/nodes/{id}/drain") ||
      has("post", "/admin/api/v1/nodes/{node_id}/drain");
    $("#nodes").replaceChildren(
      ...(data.nodes || []).map((n) =>
        h(
          "div",
          { class: "node", "data-node": n.id },
          h("strong", {}, n.id),
          n.self ? h("span", { class: "tag" }, "this node") : null,
          h("span", { class: "muted" }, ` shards: ${Array.isArray(n.shards) ? n.shards.length : n.shards}`),
          n.state ? h("span", { class: n.state === "up" || n.state === "alive" ? "ok" : "bad" }, ` ${n.state}`) : null,
          // Only the answering node can be drained (others: through their own address).
          canDrain && n.self ? h("button", { type: "button", class: "small", "data-drain": n.id, "data-needs": "system.operate", "data-org-only": "", onclick: () => drain(n.id) }, "drain") : null,
        ),
      ),
    );
  } catch (err) {
    $("#nodes").textContent = `unavailable: ${err.message}`;
  }
}

async function loadRecovery() {
  // A hint when the operator's recovery codes run low (GET .../me/recovery-codes: counts only).
  if (!has("get", "/admin/api/v1/me/recovery-codes")) return;
  const box = $("#recovery");
  try {
    const codes = await api("GET", "/admin/api/v1/me/recovery-codes");
    box.hidden = !codes.low;
    const left = codes.remaining === 0 ? "No recovery codes left" :
      `${codes.remaining} recovery code${codes.remaining === 1 ? "" : "s"} left`;
    box.textContent = `${left}: python run.py totp recovery-codes ${session.user}`;
  } catch (err) {
    box.hidden = true; // an external provider's operator (404): its codes are not ours
  }
}

function percent(value) {
  return typeof value === "number" ? `${(100 * value).toFixed(3)} %` : "–";
}

function budgetLeft(o) {
  const budget = o.error_budget;
  if (budget && typeof budget === "object") return budget.remaining_ratio;
  return o.error_budget_remaining ?? o.budget_remaining;
}

function budgetClass(o) {
  const left = budgetLeft(o);
  return typeof left === "number" && left < 0.25 ? "bad" : "ok";
}

function firing(o) {
  return (o.alerts || []).some((a) => a.firing);
}

async function loadSlo() {
  if (!has("get", "/admin/api/v1/slo")) return;
  try {
    const data = await api("GET", "/admin/api/v1/slo");
    const objectives = Array.isArray(data) ? data : data.objectives || [];
    $("#slo-panel").hidden = false;
    $("#audit-panel").className = "panel beside";
    fillRows(
      $("#slo tbody"),
      objectives.flatMap((o) => {
        const burn = o.burn_rates || o.burn || {};
        const pairs = Array.isArray(burn)
          ? burn.map((b) => [b.window || b.name, b.rate ?? b.value])
          : Object.entries(burn);
        const burnText = pairs
          .map(([k, v]) => `${k} ${typeof v === "number" ? v.toFixed(2) : JSON.stringify(v)}`)
          .join(" · ");
        return [
          h(
            "tr",
            { class: "slo-head", "data-slo": o.name || o.id },
            h("td", {}, o.name || o.id, h("div", { class: "muted" }, `objective ${percent(o.objective)}`)),
            h("td", {}, percent(o.sli), h("div", { class: "muted" }, `${o.good ?? 0}/${o.total ?? 0}`)),
            h("td", { class: budgetClass(o) }, percent(budgetLeft(o))),
          ),
          h("tr", {}, h("td", { colspan: "3", class: firing(o) ? "bad" : "muted" }, `burn ${burnText}`)),
        ];
      }),
    );
  } catch (err) {
    $("#slo-panel").hidden = true;
    $("#audit-panel").className = "panel wide";
  }
}

async function loadPasses() {
  if (!has("get", "/admin/api/v1/guest-passes")) return;
  const canRevoke = has("delete", "/admin/api/v1/guest-passes/{id}");
  try {
    const data = await api("GET", "/admin/api/v1/guest-passes?limit=50");
    const passes = Array.isArray(data) ? data : data.passes || data.guest_passes || [];
    $("#passes-panel").hidden = false;
    fillRows(
      $("#passes tbody"),
      passes.map((p) => {
        const revoked = p.revoked === true || p.status === "revoked";
        const usable = p.status === "active" || p.status === "scheduled";
        const button = h(
          "button",
          { type: "button", class: "small", "data-revoke-pass": p.id, "data-needs": "passes.manage", onclick: () => revokePass(p.id) },
          "revoke",
        );
        return h(
          "tr",
          { "data-pass": p.id },
          h("td", { class: "mono", title: p.id }, p.id.slice(0, 8)),
          h("td", { class: "mono" }, p.owner_id || ""),
          h("td", { "data-field": "status", class: usable ? "ok" : "muted" }, p.status || (revoked ? "revoked" : "")),
          h("td", {}, p.valid_until ? formatTime(p.valid_until) : ""),
          h("td", {}, canRevoke && usable && !revoked ? button : ""),
        );
      }),
    );
  } catch (err) {
    $("#passes-panel").hidden = true;
  }
}

function formatTime(at) {
  const date = typeof at === "number" ? new Date(at * 1000) : new Date(at);
  return isNaN(date) ? String(at) : date.toLocaleString();
}

async function loadAudit(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams({ limit: "200" });
  const ap = $("#audit-ap").value;
  if (ap) params.set("access_point_id", ap);
  const action = $("#audit-action").value.trim();
  if (action) params.set("action", action); // a prefix, filtered by the server
  let entries = [];
  try {
    entries = (await api("GET", "/admin/api/v1/audit?" + params.toString())).entries || [];
  } catch (err) {
    say(`Audit log unavailable: ${err.message}`, "error");
    return;
  }
  const words = $("#audit-search").value.trim().toLowerCase();
  const decision = $("#audit-decision").value;
  const shown = entries
    .filter((e) => !decision || e.decision === decision)
    .filter((e) => !words || [e.actor, e.action, e.reason, e.access_point_id, e.command_id]
      .some((v) => v && String(v).toLowerCase().includes(words)))
    .reverse();
  fillRows(
    $("#audit tbody"),
    shown.map((e) =>
      h(
        "tr",
        { "data-audit": e.id },
        h("td", {}, e.id),
        h("td", {}, formatTime(e.at)),
        h("td", { class: "mono" }, e.actor),
        h("td", {}, e.action),
        h("td", { class: "mono" }, e.access_point_id || ""),
        h("td", { class: e.decision === "granted" ? "ok" : "bad" }, e.decision),
        h("td", {}, e.reason || ""),
      ),
    ),
  );
}

async function loadCheckpoint() {
  let checkpoint = null;
  try {
    checkpoint = (await api("GET", "/admin/api/v1/audit/checkpoint")).checkpoint;
  } catch (err) {
    return;
  }
  const line = $("#audit-checkpoint");
  if (!checkpoint) {
    line.textContent = "no signed checkpoint yet";
    return;
  }
  line.dataset.seq = checkpoint.seq;
  line.textContent =
    `Last signed checkpoint #${checkpoint.seq}: ${formatTime(checkpoint.at)}, ` +
    `${checkpoint.entries} entries in ${checkpoint.chains} chains, root ${checkpoint.root}, ` +
    `key ${checkpoint.key_id}`;
}

// -- start --------------------------------------------------------------------------------

async function main() {
  $("#logout").addEventListener("click", signOut);
  $("#open-form").addEventListener("submit", openByHand);
  $("#audit-form").addEventListener("submit", loadAudit);
  $("#audit-ap").addEventListener("change", () => loadAudit());
  $("#audit-decision").addEventListener("change", () => loadAudit());
  $("#audit-search").addEventListener("input", () => loadAudit());
  $("#audit-action").addEventListener("change", () => loadAudit());
  const query = new URLSearchParams(location.search);
  try {
    if (query.has("code") || query.has("error")) {
      await finishLogin(query);
    } else {
      await startLogin();
      return;
    }
    const me = await api("GET", "/api/v1/me");
    if (!(me.roles || []).some((r) => r === "operator" || r === "admin" || r === "auditor")) {
      throw new Error("This account is not a staff account.");
    }
    session.user = me.username;
  } catch (err) {
    setStatus("signed out", false);
    say(`Sign-in failed: ${err.message}`, "error");
    $("#main").hidden = true;
    document.body.append(h("button", { type: "button", onclick: startLogin, class: "relogin" }, "Sign in again"));
    return;
  }
  $("#who").textContent = session.user;
  $("#logout").hidden = false;
  $("#main").hidden = false;
  try {
    paths = (await (await fetch("/openapi.json")).json()).paths || {};
  } catch (err) {
    paths = {};
  }
  await startPages(); // estate.js: the caller's scope first (which buttons to show), then its pages
  connect();
  loadRecovery();
  loadNodes();
  loadSlo();
  loadPasses();
  loadAudit();
  loadCheckpoint();
  auditTimer = setInterval(() => {
    loadNodes();
    loadCheckpoint();
    loadSlo();
    loadPasses();
    const typing = document.activeElement && ["audit-search", "audit-action"].includes(document.activeElement.id);
    if (!typing) loadAudit();
  }, 5000);
}

main();
