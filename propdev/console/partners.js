// The console's Partners page: the door vendors of the registry (/admin/api/v1/partners), each
// with its adapter, base URL, the networks it calls us from, its limits, its latest client
// certificate and this node's circuit breaker for it (/admin/api/v1/breakers). Whoever may
// manage partners (partners.manage) registers one, changes it, rotates its webhook secret and
// deletes it; the webhook secret is shown once, when made. Others with system.read see the
// list only; the tab is for the organisation's staff (the API refuses site-scoped callers).
// Loaded after console.js and estate.js, whose helpers it uses (h, $, say, fillRows, api,
// formatTime, loadAudit, may, showProblem, showOnce, hideOnce, valueOf).
"use strict";

const partners = {
  list: [],
  editing: null, // the partner the form changes (null: a new one)
};
const PARTNER_LIMITS = [
  // [field, input id, parse]
  ["rate_limit", "partner-rate-limit", Number.parseFloat],
  ["bulkhead", "partner-bulkhead", (v) => Number.parseInt(v, 10)],
  ["breaker_failures", "partner-breaker-failures", (v) => Number.parseInt(v, 10)],
  ["breaker_reset", "partner-breaker-reset", Number.parseFloat],
  ["timeout", "partner-timeout", Number.parseFloat],
];

function startPartners() {
  $("#partner-form").addEventListener("submit", savePartner);
  $("#partner-cancel").addEventListener("click", () => editPartner(null));
}

function partnerPath(name, rest) {
  return `/admin/api/v1/partners/${encodeURIComponent(name)}${rest || ""}`;
}

// The partners the caller may read, [] when it may not (a site-scoped caller: 403).
async function partnerNames() {
  if (!may("system.read") || (estate.me && estate.me.site_ids !== null)) return [];
  try {
    return (await api("GET", "/admin/api/v1/partners")).map((p) => p.name);
  } catch (err) {
    return [];
  }
}

async function loadPartners() {
  let breakers = [];
  try {
    const [list, answer] = await Promise.all([
      api("GET", "/admin/api/v1/partners"),
      api("GET", "/admin/api/v1/breakers").catch(() => ({ breakers: [] })),
    ]);
    partners.list = list;
    breakers = answer.breakers || [];
  } catch (err) {
    showProblem("#partners-problem", err);
    return;
  }
  const breakerOf = new Map(breakers.map((b) => [b.partner_id, b]));
  $("#partners-summary").textContent = `· ${partners.list.length} registered`;
  $("#partner-adapters").replaceChildren(
    ...[...new Set(["simulator", ...partners.list.map((p) => p.adapter)])].map((a) => h("option", { value: a })),
  );
  fillRows(
    $("#partners tbody"),
    partners.list.map((p) => partnerRow(p, breakerOf.get(p.name))),
  );
  if (!partners.list.length) {
    fillRows($("#partners tbody"), [h("tr", {}, h("td", { colspan: "8", class: "muted" }, "no partners"))]);
  }
}

function limitsText(p) {
  const parts = [];
  if (p.rate_limit !== null && p.rate_limit !== undefined) parts.push(`${p.rate_limit}/s`);
  if (p.bulkhead !== null && p.bulkhead !== undefined) parts.push(`${p.bulkhead} in flight`);
  if (p.breaker_failures !== null && p.breaker_failures !== undefined) parts.push(`breaker ${p.breaker_failures}`);
  if (p.breaker_reset !== null && p.breaker_reset !== undefined) parts.push(`reset ${p.breaker_reset} s`);
  if (p.timeout !== null && p.timeout !== undefined) parts.push(`timeout ${p.timeout} s`);
  return parts.length ? parts.join(" · ") : h("span", { class: "muted" }, "node's settings");
}

function certificateText(p) {
  const valid = (p.certificates || []).filter((c) => !c.revoked);
  if (!valid.length) return h("span", { class: "muted" }, "none from a CSR");
  const latest = valid[valid.length - 1]; // ordered by not_after
  return `until ${formatTime(latest.not_after)}`;
}

function partnerRow(p, breaker) {
  return h(
    "tr",
    { "data-partner-row": p.name },
    h("td", { class: "mono", "data-field": "name" }, p.name),
    h("td", { "data-field": "adapter" }, p.adapter),
    h(
      "td",
      { class: "mono url", "data-field": "base_url", title: p.base_url || "" },
      p.base_url || h("span", { class: "muted", title: "called in-process (the built-in simulator)" }, "–"),
    ),
    h("td", { class: "mono", "data-field": "allow_ips" }, p.allow_ips.join(" ")),
    h("td", { "data-field": "limits" }, limitsText(p)),
    h("td", { "data-field": "certificate" }, certificateText(p)),
    h(
      "td",
      { "data-field": "breaker", class: breaker ? (breaker.state === "closed" ? "ok" : "bad") : "muted" },
      breaker ? breaker.state : "–",
    ),
    h(
      "td",
      { class: "actions", "data-needs": "partners.manage" },
      h("button", { type: "button", class: "small ghost", "data-edit-partner": p.name, onclick: () => editPartner(p) }, "change"),
      h("button", { type: "button", class: "small ghost", "data-rotate-partner": p.name, onclick: () => rotateSecret(p) }, "rotate secret"),
      h("button", { type: "button", class: "small danger", "data-delete-partner": p.name, onclick: () => deletePartner(p) }, "delete"),
    ),
  );
}

function editPartner(p) {
  partners.editing = p;
  $("#partner-form").reset();
  $("#partner-name").disabled = Boolean(p);
  $("#partner-form-title").textContent = p ? `Change ${p.name}` : "Register a partner";
  $("#partner-submit").textContent = p ? "Save" : "Register";
  $("#partner-cancel").hidden = !p;
  $("#partner-base-url").required = !p || Boolean(p.base_url); // none: called in-process
  $("#partner-api-key").placeholder = p
    ? "API key at the vendor (blank: unchanged)"
    : "API key at the vendor (optional)";
  $("#partner-ca").placeholder = p
    ? "vendor's server CA (PEM; blank: unchanged)"
    : "vendor's server CA (PEM; blank: the system store)";
  if (!p) return;
  $("#partner-name").value = p.name;
  $("#partner-adapter").value = p.adapter;
  $("#partner-base-url").value = p.base_url || "";
  $("#partner-networks").value = p.allow_ips.join(" ");
  for (const [field, id] of PARTNER_LIMITS) {
    $("#" + id).value = p[field] === null || p[field] === undefined ? "" : String(p[field]);
  }
  $("#partner-base-url").focus();
}

function partnerBody() {
  const body = {
    adapter: valueOf("partner-adapter"),
    base_url: valueOf("partner-base-url"),
    allow_ips: valueOf("partner-networks").split(/[\s,]+/).filter(Boolean),
  };
  if (partners.editing && !body.base_url) delete body.base_url; // none (in-process): kept
  for (const [field, id, parse] of PARTNER_LIMITS) {
    const text = valueOf(id);
    body[field] = text === "" ? null : parse(text); // blank: the node's setting
  }
  if (valueOf("partner-api-key")) body.api_key = valueOf("partner-api-key");
  const ca = $("#partner-ca").value.trim();
  if (ca) body.server_ca_pem = ca;
  else if (!partners.editing) body.server_ca_pem = null;
  return body;
}

async function savePartner(event) {
  event.preventDefault();
  const editing = partners.editing;
  const body = partnerBody();
  try {
    if (editing) {
      await api("PATCH", partnerPath(editing.name), body);
      say(`Changed ${editing.name}: every node calls it with these settings now.`, "info");
    } else {
      const name = valueOf("partner-name");
      const made = await api("POST", "/admin/api/v1/partners", { name, ...body });
      say(`Registered ${made.name}: every node calls it now.`, "info");
      showOnce("#partner-secret", `Registered ${made.name}`, [
        ["client id", made.client_id, "client_id"],
        ["webhook secret", made.webhook_secret, "webhook_secret"],
      ]);
    }
    showProblem("#partners-problem", null);
    editPartner(null);
    await loadPartners();
    loadAudit();
  } catch (err) {
    showProblem("#partners-problem", err);
  }
}

async function rotateSecret(p) {
  try {
    const rotated = await api("POST", partnerPath(p.name, "/webhook-secret"));
    showProblem("#partners-problem", null);
    showOnce("#partner-secret", `New webhook secret of ${p.name}`, [
      ["webhook secret", rotated.webhook_secret, "webhook_secret"],
    ]);
    say(`Rotated ${p.name}'s webhook secret: the previous one is still accepted for a day.`, "info");
    await loadPartners();
    loadAudit();
  } catch (err) {
    showProblem("#partners-problem", err);
  }
}

async function deletePartner(p) {
  const question =
    `Delete ${p.name}? Every node stops calling it and refuses its callbacks; its ` +
    "certificates are revoked. Its access points and history stay.";
  if (!confirm(question)) return;
  try {
    await api("DELETE", partnerPath(p.name));
    showProblem("#partners-problem", null);
    if (partners.editing && partners.editing.name === p.name) editPartner(null);
    hideOnce("#partner-secret");
    say(`Deleted ${p.name}.`, "info");
    await loadPartners();
    loadAudit();
  } catch (err) {
    showProblem("#partners-problem", err);
  }
}

startPartners();
