// The resident web app. Signs the resident in with the authorization code + PKCE (S256) flow
// as the public client "resident-web" (no secret: redirect back to /app/), keeps the tokens
// in memory only (the PKCE verifier and state wait in sessionStorage across the redirect and
// are removed on return), refreshes them with the rotating refresh token (one refresh at a
// time: two in parallel would spend the same token twice and the server would end the whole
// session), and follows the resident's events over /api/v1/ws with the token as the
// subprotocol pair "bearer, <token>" (a browser cannot set an Authorization header there, and
// a token in the URL would end up in logs and history).
"use strict";

const CLIENT_ID = document.querySelector('meta[name="propdev-client-id"]').content;
const REDIRECT_URI = location.origin + "/app/";
const SCOPE = "openid profile api";
const PKCE_KEY = "propdev-app-pkce";
const DOORS_EVERY_MS = 20000; // the doors' online state: no push for it, so read it again
const MAX_EVENTS = 50;

const session = { access: null, refresh: null, expiresAt: 0, refreshing: null };
let socket = null;
let reconnectDelay = 1000;
let lastEventId = 0;
let doorsTimer = null;
let paths = {};
let doors = [];
const outcomes = new Map(); // access point id -> the last open's outcome, shown under it

// -- small DOM helpers -------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (value !== null && value !== undefined && value !== false) el.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

function $(selector) {
  return document.querySelector(selector);
}

let messageTimer = null;
function say(text, kind) {
  const box = $("#message");
  box.textContent = text;
  box.className = "message " + (kind || "info") + (text ? " shown" : "");
  clearTimeout(messageTimer);
  if (text) messageTimer = setTimeout(() => say(""), 6000);
}

function setStatus(text, ok) {
  const pill = $("#status");
  pill.hidden = false;
  pill.textContent = text;
  pill.className = "pill " + (ok ? "on" : "off");
}

function when(value) {
  if (value === null || value === undefined) return "";
  const date = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function doorName(id) {
  const door = doors.find((d) => d.id === id);
  return door ? door.name : id || "";
}

// -- sign-in: authorization code + PKCE (S256) --------------------------------------------

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
  if (!response.ok) throw new Error(body.error_description || body.error || String(response.status));
  session.access = body.access_token;
  session.refresh = body.refresh_token || session.refresh;
  session.expiresAt = Date.now() + 1000 * (body.expires_in || 300);
}

async function finishLogin(query) {
  const saved = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  history.replaceState(null, "", "/app/"); // the code leaves the address bar
  if (query.get("error")) throw new Error(query.get("error_description") || query.get("error"));
  if (!saved || saved.state !== query.get("state")) throw new Error("The sign-in state does not match.");
  await tokenRequest({
    grant_type: "authorization_code",
    code: query.get("code"),
    redirect_uri: REDIRECT_URI,
    code_verifier: saved.verifier,
  });
}

async function refresh() {
  // One refresh at a time: the refresh token rotates, and a spent one used again revokes
  // the whole session.
  if (!session.refreshing) {
    if (!session.refresh) throw new Error("not signed in");
    session.refreshing = tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh })
      .catch((err) => {
        ended("Your session has ended: " + err.message);
        throw err;
      })
      .finally(() => {
        session.refreshing = null;
      });
  }
  await session.refreshing;
}

async function freshToken() {
  if (session.refreshing) await session.refreshing;
  if (session.access && Date.now() < session.expiresAt - 30000) return session.access;
  await refresh();
  return session.access;
}

class ApiError extends Error {
  constructor(status, body, headers) {
    super((body && (body.detail || body.title)) || "HTTP " + status);
    this.status = status;
    this.body = body || {};
    this.retryAfter = Number(headers.get("Retry-After")) || null;
  }
}

async function api(method, path, body, extraHeaders) {
  for (let attempt = 0; ; attempt++) {
    const token = await freshToken();
    const init = {
      method,
      headers: { Authorization: "Bearer " + token, ...(extraHeaders || {}) },
      credentials: "omit",
    };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (response.status === 401 && attempt === 0 && session.refresh) {
      session.expiresAt = 0; // revoked or expired early: one refresh, one more try
      continue;
    }
    const data = response.status === 204 ? null : await response.json().catch(() => null);
    if (!response.ok) throw new ApiError(response.status, data, response.headers);
    return data;
  }
}

function clearSession() {
  session.access = session.refresh = null;
  session.expiresAt = 0;
  clearInterval(doorsTimer);
  const ws = socket;
  socket = null;
  if (ws) ws.close();
}

function ended(text) {
  clearSession();
  showLanding(text);
}

async function signOut() {
  const token = session.refresh;
  clearSession();
  if (token) {
    await fetch("/oauth/revoke", {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ token, client_id: CLIENT_ID }).toString(),
      credentials: "omit",
    }).catch(() => null);
  }
  showLanding("You are signed out.");
}

function showLanding(text) {
  $("#main").hidden = $("#tabs").hidden = $("#logout").hidden = $("#status").hidden = true;
  $("#who").textContent = "";
  $("#landing").hidden = false;
  $("#landing-message").textContent = text || "";
}

// -- live events --------------------------------------------------------------------------

async function connect() {
  if (!session.refresh) return;
  let token;
  try {
    token = await freshToken();
  } catch (err) {
    return; // ended() has shown the landing screen
  }
  const after = lastEventId ? `?after=${lastEventId}` : ""; // replay what was missed
  const ws = new WebSocket(`wss://${location.host}/api/v1/ws${after}`, ["bearer", token]);
  socket = ws;
  ws.onopen = () => {
    reconnectDelay = 1000;
    setStatus("live", true);
  };
  ws.onmessage = (message) => {
    let event;
    try {
      event = JSON.parse(message.data);
    } catch (err) {
      return; // "pong"
    }
    if (event && event.type) showEvent(event);
  };
  ws.onclose = () => {
    if (socket !== ws) return; // signed out, or replaced
    setStatus("reconnecting…", false);
    setTimeout(connect, reconnectDelay);
    reconnectDelay = Math.min(reconnectDelay * 2, 30000);
    loadDoors();
  };
}

const EVENT_TEXT = {
  "access.granted": "Opened",
  "access.denied": "Refused",
  "access.failed": "Failed",
  "access.entry": "Entry",
  "access.exit": "Exit",
  "access.automatic": "Opened for your vehicle",
  "pass.used": "Guest pass used",
};

function showEvent(event) {
  if (event.id && event.id <= lastEventId) return;
  if (event.id) lastEventId = event.id;
  const list = $("#events");
  const empty = list.querySelector(".empty");
  if (empty) empty.remove();
  const label = EVENT_TEXT[event.type] || event.type;
  const detail = event.reason ? ` · ${event.reason}` : event.plate ? ` · ${event.plate}` : "";
  list.prepend(
    h(
      "li",
      { "data-type": event.type, "data-event": event.id || "" },
      h("span", { class: "when" }, when(event.occurred_at)),
      h("span", { class: "type" }, label),
      h("span", { class: "muted" }, ` (${event.type})`),
      h("div", {}, doorName(event.access_point_id), detail),
    ),
  );
  while (list.children.length > MAX_EVENTS) list.lastElementChild.remove();
  if (event.type === "pass.used") loadPasses();
}

// -- doors and opening --------------------------------------------------------------------

async function loadDoors() {
  if (!session.refresh) return;
  try {
    doors = await api("GET", "/api/v1/access-points");
    renderDoors();
    renderPassDoors();
  } catch (err) {
    if (session.refresh) say("Could not load your doors: " + err.message, "error");
  }
}

function online(value) {
  if (value === true) return [h("span", { class: "dot on" }), "online"];
  if (value === false) return [h("span", { class: "dot off" }), "offline"];
  return [h("span", { class: "dot" }), "state unknown"];
}

function renderDoors() {
  const list = $("#doors");
  if (!doors.length) {
    list.replaceChildren(h("li", { class: "muted" }, "You have no doors yet."));
    return;
  }
  list.replaceChildren(
    ...doors.map((door) =>
      h(
        "li",
        { class: "card door", "data-door": door.id },
        h("span", { class: "name" }, door.name),
        h(
          "span",
          { class: "meta muted", "data-field": "online", "data-online": String(door.online) },
          door.kind === "barrier" ? "Barrier · " : "Door · ",
          online(door.online),
        ),
        h(
          "button",
          { type: "button", class: "open", "data-open": door.id, onclick: () => openDoor(door.id) },
          "Open",
        ),
        resultLine(door.id),
      ),
    ),
  );
}

function resultLine(id) {
  const outcome = outcomes.get(id);
  const line = h("div", {
    class: "result",
    "data-result": outcome ? outcome.result : "",
    "data-command": outcome && outcome.command,
    title: outcome && outcome.command ? `command ${outcome.command}` : null,
    role: "status",
  });
  if (!outcome) return line;
  line.append(outcome.text);
  if (outcome.result === "failed") {
    line.append(
      h("button", { type: "button", class: "small ghost", "data-retry": id, onclick: () => openDoor(id, outcome.key) }, "Retry"),
    );
  }
  return line;
}

function setOutcome(id, outcome) {
  outcomes.set(id, outcome);
  const card = document.querySelector(`[data-door="${CSS.escape(id)}"]`);
  if (card) card.querySelector(".result").replaceWith(resultLine(id));
}

// A failed open may be sent again with the same Idempotency-Key: if the first one did get
// through, the server answers with it and sends no second command.
async function openDoor(id, key) {
  const idempotencyKey = key || crypto.randomUUID();
  const button = document.querySelector(`[data-open="${CSS.escape(id)}"]`);
  if (button) button.disabled = true;
  setOutcome(id, { result: "pending", text: "Opening…", key: idempotencyKey });
  try {
    const answer = await api("POST", `/api/v1/access-points/${encodeURIComponent(id)}/open`, undefined, {
      "Idempotency-Key": idempotencyKey,
    });
    setOutcome(id, { result: "granted", text: "Opened.", command: answer.command_id, key: idempotencyKey });
  } catch (err) {
    setOutcome(id, describeFailure(err, idempotencyKey));
  } finally {
    const again = document.querySelector(`[data-open="${CSS.escape(id)}"]`);
    if (again) again.disabled = false;
  }
}

function describeFailure(err, key) {
  if (!(err instanceof ApiError)) {
    return { result: "failed", text: `Not opened: ${err.message || "no connection"}.`, key };
  }
  const body = err.body;
  const command = body.command_id;
  const reason = body.reason && !err.message.includes(body.reason) ? ` (reason: ${body.reason})` : "";
  if (err.status === 403 || err.status === 404 || err.status === 409 || err.status === 422) {
    return { result: "refused", text: `Refused: ${err.message}${reason}`, command, key };
  }
  const wait = err.retryAfter ? ` Try again in ${err.retryAfter} s.` : "";
  const kind = body.type ? body.type.split("/").pop() : "";
  return { result: "failed", text: `Failed: ${err.message}${kind ? ` (${kind})` : ""}.${wait}`, command, key };
}

// -- guest passes -------------------------------------------------------------------------

function renderPassDoors() {
  const box = $("#pass-doors");
  const chosen = new Set([...box.querySelectorAll("input:checked")].map((i) => i.value));
  box.replaceChildren(
    h("legend", {}, "Doors"),
    ...doors.map((door) =>
      h(
        "label",
        {},
        h("input", { type: "checkbox", value: door.id, checked: chosen.has(door.id) ? "checked" : null }),
        door.name,
      ),
    ),
  );
}

async function loadPasses() {
  try {
    const passes = await api("GET", "/api/v1/guest-passes");
    const shown = passes.filter((p) => p.status === "active" || p.status === "scheduled");
    const rest = passes.filter((p) => !shown.includes(p)).slice(-10);
    const rows = [...shown, ...rest].map((p) =>
      h(
        "li",
        { "data-pass": p.id },
        h(
          "span",
          { class: "what" },
          p.access_point_ids.map(doorName).join(", "),
          h("small", {}, `${p.status} · ${p.uses}/${p.max_uses} uses · until ${when(p.valid_until)}`),
        ),
        p.status === "active" || p.status === "scheduled"
          ? h("button", { type: "button", class: "small danger", "data-revoke": p.id, onclick: () => revokePass(p.id) }, "Revoke")
          : null,
      ),
    );
    $("#passes").replaceChildren(...(rows.length ? rows : [h("li", { class: "muted" }, "No guest passes.")]));
  } catch (err) {
    say("Could not load your guest passes: " + err.message, "error");
  }
}

async function createPass(event) {
  event.preventDefault();
  const ids = [...document.querySelectorAll("#pass-doors input:checked")].map((i) => i.value);
  if (!ids.length) {
    say("Choose at least one door.", "error");
    return;
  }
  const now = new Date();
  const until = new Date(now.getTime() + 1000 * Number($("#pass-validity").value));
  try {
    const issued = await api("POST", "/api/v1/guest-passes", {
      access_point_ids: ids,
      valid_from: now.toISOString(),
      valid_until: until.toISOString(),
      max_uses: Number($("#pass-uses").value) || 1,
    });
    showIssued(issued);
    loadPasses();
  } catch (err) {
    say("Could not create the pass: " + err.message, "error");
  }
}

function shareText(issued) {
  const names = issued.access_point_ids.map(doorName).join(", ");
  const uses = issued.max_uses === 1 ? "once" : `${issued.max_uses} times`;
  return `Guest pass for ${names}: enter ${issued.code} at the keypad. Valid until ${when(issued.valid_until)}, ${uses}.`;
}

function showIssued(issued) {
  const text = shareText(issued);
  $("#pass-issued").hidden = false;
  $("#pass-code").textContent = issued.code;
  $("#pass-summary").textContent = text;
  $("#pass-sms").href = "sms:?&body=" + encodeURIComponent(text);
  $("#pass-share").onclick = async () => {
    try {
      if (navigator.share) await navigator.share({ title: "Guest pass", text });
      else {
        await navigator.clipboard.writeText(text);
        say("Copied: paste it into a message to your guest.");
      }
    } catch (err) {
      if (err && err.name !== "AbortError") say("Could not share: " + err.message, "error");
    }
  };
}

async function revokePass(id) {
  try {
    await api("DELETE", `/api/v1/guest-passes/${encodeURIComponent(id)}`);
    say("Guest pass revoked: its code no longer opens anything.");
    loadPasses();
  } catch (err) {
    say("Could not revoke: " + err.message, "error");
  }
}

// -- vehicles -----------------------------------------------------------------------------

async function loadVehicles() {
  try {
    const vehicles = await api("GET", "/api/v1/vehicles");
    const rows = vehicles.map((v) =>
      h(
        "li",
        { "data-vehicle": v.id },
        h("span", { class: "what plate" }, v.plate),
        h("button", { type: "button", class: "small danger", "data-remove": v.id, onclick: () => removeVehicle(v.id) }, "Remove"),
      ),
    );
    $("#vehicles").replaceChildren(...(rows.length ? rows : [h("li", { class: "muted" }, "No vehicles.")]));
  } catch (err) {
    say("Could not load your vehicles: " + err.message, "error");
  }
}

async function addVehicle(event) {
  event.preventDefault();
  const plate = $("#vehicle-plate").value.trim();
  try {
    const vehicle = await api("POST", "/api/v1/vehicles", { plate });
    $("#vehicle-plate").value = "";
    say(`Added ${vehicle.plate}.`);
    loadVehicles();
  } catch (err) {
    say("Could not add it: " + err.message, "error");
  }
}

async function removeVehicle(id) {
  try {
    await api("DELETE", `/api/v1/vehicles/${encodeURIComponent(id)}`);
    loadVehicles();
  } catch (err) {
    say("Could not remove it: " + err.message, "error");
  }
}

// -- account: sessions and password -------------------------------------------------------
// CONTRACT SCREENS (API.md v2 "Portfolio"): GET /api/v1/me/sessions,
// DELETE /api/v1/me/sessions/{id} and POST /api/v1/me/password are being added to the server
// separately. They are built against that contract and shown only when /openapi.json lists
// the routes; until then the Account tab says they are not available.

function has(method, path) {
  return Boolean(paths[path] && paths[path][method]);
}

async function loadDocument() {
  try {
    const response = await fetch("/openapi.json", { credentials: "omit" });
    paths = (await response.json()).paths || {};
  } catch (err) {
    paths = {};
  }
}

function setUpAccount() {
  const sessions = has("get", "/api/v1/me/sessions");
  const password = has("post", "/api/v1/me/password");
  $("#sessions-panel").hidden = !sessions;
  $("#password-panel").hidden = !password;
  $("#account-missing").hidden = sessions || password;
}

async function loadSessions() {
  if (!has("get", "/api/v1/me/sessions")) return;
  try {
    const sessions = await api("GET", "/api/v1/me/sessions");
    const canEnd = has("delete", "/api/v1/me/sessions/{id}");
    $("#sessions").replaceChildren(
      ...sessions.map((s) =>
        h(
          "li",
          { "data-session": s.id },
          h(
            "span",
            { class: "what" },
            s.client_id + (s.current ? " · this browser" : ""),
            h("small", {}, `signed in ${when(s.created_at)} · last used ${when(s.last_used_at)}`),
          ),
          canEnd
            ? h("button", { type: "button", class: "small danger", "data-end-session": s.id, onclick: () => endSession(s) }, "Sign out")
            : null,
        ),
      ),
    );
  } catch (err) {
    say("Could not load your sessions: " + err.message, "error");
  }
}

async function endSession(s) {
  try {
    await api("DELETE", `/api/v1/me/sessions/${encodeURIComponent(s.id)}`);
    if (s.current) {
      ended("You signed this browser out.");
      return;
    }
    say("That session is signed out.");
    loadSessions();
  } catch (err) {
    say("Could not sign it out: " + err.message, "error");
  }
}

async function changePassword(event) {
  event.preventDefault();
  const result = $("#pw-result");
  const current = $("#pw-current").value;
  const next = $("#pw-new").value;
  if (next !== $("#pw-again").value) {
    result.textContent = "The new passwords differ.";
    return;
  }
  try {
    await api("POST", "/api/v1/me/password", { current_password: current, new_password: next });
    $("#password-form").reset();
    result.textContent = "Password changed. Your other sessions were signed out.";
    loadSessions();
  } catch (err) {
    result.textContent = "Not changed: " + err.message;
  }
}

// -- screens ------------------------------------------------------------------------------

const LOADERS = { home: loadDoors, guests: loadPasses, vehicles: loadVehicles, account: loadSessions };

function showTab(name) {
  for (const button of document.querySelectorAll("#tabs button")) {
    button.classList.toggle("active", button.dataset.tab === name);
  }
  for (const screen of document.querySelectorAll("[data-screen]")) {
    screen.hidden = screen.dataset.screen !== name;
  }
  LOADERS[name]();
}

async function signedIn() {
  $("#landing").hidden = true;
  $("#main").hidden = $("#tabs").hidden = $("#logout").hidden = false;
  setStatus("connecting…", false);
  await loadDocument();
  setUpAccount();
  try {
    const me = await api("GET", "/api/v1/me");
    $("#who").textContent = me.full_name || me.username;
    $("#me").textContent = `${me.full_name || ""} (${me.username})`;
  } catch (err) {
    say("Could not read your account: " + err.message, "error");
  }
  await loadDoors();
  doorsTimer = setInterval(() => {
    if (document.visibilityState === "visible") loadDoors();
  }, DOORS_EVERY_MS);
  connect();
}

async function main() {
  $("#login").addEventListener("click", () => startLogin());
  $("#logout").addEventListener("click", () => signOut());
  $("#pass-form").addEventListener("submit", createPass);
  $("#vehicle-form").addEventListener("submit", addVehicle);
  $("#password-form").addEventListener("submit", changePassword);
  for (const button of document.querySelectorAll("#tabs button")) {
    button.addEventListener("click", () => showTab(button.dataset.tab));
  }
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && session.refresh) loadDoors();
  });
  const query = new URLSearchParams(location.search);
  if (query.has("code") || query.has("error")) {
    try {
      await finishLogin(query);
    } catch (err) {
      showLanding("Sign-in failed: " + err.message);
      return;
    }
    await signedIn();
    return;
  }
  showLanding("");
}

main();
