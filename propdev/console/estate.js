// The console's management pages: the estate (sites → buildings → apartments, access points),
// residents (invite, move out) with their rights and schedules, guest passes and staff.
// Loaded after console.js, whose helpers it uses (h, $, say, fillRows, api, formatTime,
// loadAudit). Every list is what the API answers for the caller (the server filters by their
// sites); a button the caller's role may not use is not shown (body[data-may], console.css).
// A problem document's detail is shown next to the form that caused it.
"use strict";

const estate = {
  me: null, // GET /admin/api/v1/me: {id, roles, site_ids, actions}
  loaded: false,
  sites: [],
  buildings: [],
  apartments: [],
  points: [],
  partners: [], // names an access point may be registered on
  residents: [],
  rightsOf: null, // the resident whose rights are shown
  editingStaff: null, // the staff member the form changes (null: a new one)
};
const WEEKDAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
const STAFF_ROLE_NAMES = ["admin", "operator", "auditor"];
const PAGES = ["main", "estate-page", "residents-page", "passes-page", "staff-page", "partners-page"];

function may(action) {
  return Boolean(estate.me && estate.me.actions.includes(action));
}

function showProblem(where, err) {
  $(where).textContent = err ? err.message : "";
  if (err) say(err.message, "error");
}

function byId(list) {
  return new Map(list.map((item) => [item.id, item]));
}

function valueOf(id) {
  return $("#" + id).value.trim();
}

function fillSelect(select, options, placeholder) {
  const chosen = select.value;
  const items = options.map(([value, label]) => h("option", { value }, label));
  if (placeholder !== undefined) items.unshift(h("option", { value: "" }, placeholder));
  select.replaceChildren(...items);
  if (options.some(([value]) => value === chosen)) select.value = chosen;
}

// A secret the API answers once (a temporary password, an activation code): shown until the
// operator dismisses it, never kept anywhere else.
function showOnce(where, title, fields) {
  const box = $(where);
  box.hidden = false;
  box.replaceChildren(
    h("strong", {}, title),
    h("p", { class: "muted" }, "Shown once: hand it over now, it cannot be shown again."),
    h(
      "dl",
      {},
      fields.flatMap(([label, value, key]) => [
        h("dt", {}, label),
        h("dd", { class: "mono", "data-secret": key || null }, value),
      ]),
    ),
    h("button", { type: "button", class: "small ghost", onclick: () => hideOnce(where) }, "Done"),
  );
}

function hideOnce(where) {
  $(where).hidden = true;
  $(where).replaceChildren();
}

// -- pages --------------------------------------------------------------------------------

async function startPages() {
  for (const tab of document.querySelectorAll("#tabs .tab")) {
    tab.addEventListener("click", () => showPage(tab.dataset.tab));
  }
  $("#site-form").addEventListener("submit", createSite);
  $("#building-form").addEventListener("submit", createBuilding);
  $("#apartment-form").addEventListener("submit", createApartment);
  $("#point-form").addEventListener("submit", createPoint);
  $("#residents-apartment").addEventListener("change", () => loadResidents());
  $("#invite-form").addEventListener("submit", inviteResident);
  $("#grant-form").addEventListener("submit", grantRight);
  $("#grant-always").addEventListener("change", toggleAlways);
  $("#grant-add-window").addEventListener("click", () => $("#grant-windows").append(windowRow()));
  $("#passes-active").addEventListener("change", () => loadAllPasses());
  $("#staff-form").addEventListener("submit", saveStaff);
  $("#staff-cancel").addEventListener("click", () => editStaff(null));
  try {
    estate.me = await api("GET", "/admin/api/v1/me");
  } catch (err) {
    say(`Your scope is unknown, management pages hidden: ${err.message}`, "error");
    return;
  }
  document.body.dataset.may = estate.me.actions.join(" ");
  document.body.classList.toggle("scoped", estate.me.site_ids !== null);
  $("#tabs").hidden = false;
}

function showPage(id) {
  for (const tab of document.querySelectorAll("#tabs .tab")) {
    tab.classList.toggle("current", tab.dataset.tab === id);
  }
  for (const page of PAGES) $("#" + page).hidden = page !== id;
  if (id === "estate-page") loadEstate();
  if (id === "residents-page") loadResidents();
  if (id === "passes-page") loadAllPasses();
  if (id === "staff-page") loadStaff();
  if (id === "partners-page") loadPartners(); // partners.js
}

// -- estate -------------------------------------------------------------------------------

async function loadEstate() {
  try {
    const [sites, buildings, apartments, points, registered] = await Promise.all([
      api("GET", "/admin/api/v1/sites"),
      api("GET", "/admin/api/v1/buildings"),
      api("GET", "/admin/api/v1/apartments"),
      api("GET", "/admin/api/v1/access-points"),
      may("estate.manage") ? partnerNames() : [], // partners.js; [] if the caller may not read them
    ]);
    // The registry's partners, and those the caller's access points are on (a site-scoped
    // caller may not read the registry).
    const partnerList = [...new Set([...registered, ...points.map((p) => p.partner)])].sort();
    Object.assign(estate, { sites, buildings, apartments, points, partners: partnerList, loaded: true });
  } catch (err) {
    showProblem("#estate-problem", err);
    return;
  }
  renderEstate();
  fillEstateSelects();
}

async function estateLoaded() {
  if (!estate.loaded) await loadEstate();
}

function apartmentLabel(id) {
  const apartment = estate.apartments.find((a) => a.id === id);
  if (!apartment) return id || "";
  const building = byId(estate.buildings).get(apartment.building_id);
  return `${building ? building.name : apartment.building_id} · ${apartment.number}`;
}

function pointName(id) {
  const point = byId(estate.points).get(id);
  return point ? point.name : id;
}

function siteName(id) {
  const site = byId(estate.sites).get(id);
  return site ? site.name : id;
}

function fillEstateSelects() {
  const buildings = estate.buildings.map((b) => [b.id, `${b.name} (${siteName(b.site_id)})`]);
  const apartments = estate.apartments.map((a) => [a.id, apartmentLabel(a.id)]);
  fillSelect($("#building-site"), estate.sites.map((s) => [s.id, s.name]));
  fillSelect($("#apartment-building"), buildings);
  fillSelect($("#point-building"), buildings);
  fillSelect($("#point-partner"), estate.partners.map((name) => [name, name]));
  fillSelect($("#invite-apartment"), apartments);
  fillSelect($("#residents-apartment"), apartments, "all apartments");
  fillSelect($("#grant-ap"), estate.points.map((p) => [p.id, p.name]));
}

function renderEstate() {
  const { sites, buildings, apartments, points } = estate;
  $("#estate-summary").textContent =
    `${sites.length} sites · ${buildings.length} buildings · ${apartments.length} apartments · ${points.length} access points`;
  $("#estate-tree").replaceChildren(
    ...sites.map((site) =>
      h(
        "div",
        { class: "site", "data-site": site.id },
        h(
          "div",
          { class: "sup-head root" },
          h("strong", {}, site.name),
          h("span", { class: "mono muted" }, site.id),
          h("span", { class: "tag" }, site.timezone),
        ),
        buildings.filter((b) => b.site_id === site.id).map(buildingBlock),
      ),
    ),
  );
}

function buildingBlock(building) {
  const flats = estate.apartments.filter((a) => a.building_id === building.id);
  const doors = estate.points.filter((p) => p.building_id === building.id);
  return h(
    "div",
    { class: "supervisor", "data-building": building.id },
    h("div", { class: "sup-head" }, h("strong", {}, building.name), h("span", { class: "mono muted" }, building.id)),
    h(
      "div",
      { class: "flats" },
      h("span", { class: "muted" }, "apartments "),
      flats.length
        ? flats.map((a) =>
          h("span", { class: "tag", "data-apartment": a.id, title: `${a.id}: ${a.residents} living there` },
            `${a.number} · ${a.residents} living`))
        : h("span", { class: "muted" }, "none"),
    ),
    doors.length
      ? h(
        "table",
        { class: "points" },
        h("thead", {}, h("tr", {}, ["access point", "kind", "partner · device", ""].map((t) => h("th", {}, t)))),
        h(
          "tbody",
          {},
          doors.map((p) =>
            h(
              "tr",
              { "data-point": p.id },
              h("td", { title: p.id }, p.name),
              h("td", {}, p.kind),
              h("td", { class: "mono" }, `${p.partner} · ${p.device_id}`),
              h("td", { class: "bad" }, p.gone_at ? `gone since ${formatTime(p.gone_at)}` : ""),
            ),
          ),
        ),
      )
      : h("div", { class: "muted" }, "no access points"),
  );
}

async function createFrom(event, path, body, what) {
  event.preventDefault();
  try {
    const made = await api("POST", path, body);
    showProblem("#estate-problem", null);
    say(`Created ${what} ${made.id}.`, "info");
    event.target.reset();
    await loadEstate();
  } catch (err) {
    showProblem("#estate-problem", err);
  }
}

function createSite(event) {
  const body = { id: valueOf("site-id"), name: valueOf("site-name") };
  if (valueOf("site-timezone")) body.timezone = valueOf("site-timezone");
  return createFrom(event, "/admin/api/v1/sites", body, "site");
}

function createBuilding(event) {
  const body = { id: valueOf("building-id"), site_id: valueOf("building-site"), name: valueOf("building-name") };
  return createFrom(event, "/admin/api/v1/buildings", body, "building");
}

function createApartment(event) {
  const body = { building_id: valueOf("apartment-building"), number: valueOf("apartment-number") };
  return createFrom(event, "/admin/api/v1/apartments", body, "apartment");
}

function createPoint(event) {
  const body = {
    id: valueOf("point-id"),
    name: valueOf("point-name"),
    kind: valueOf("point-kind"),
    building_id: valueOf("point-building"),
    partner: valueOf("point-partner"),
    device_id: valueOf("point-device"),
  };
  return createFrom(event, "/admin/api/v1/access-points", body, "access point");
}

// -- residents ------------------------------------------------------------------------------

async function loadResidents() {
  await estateLoaded();
  const apartment = $("#residents-apartment").value;
  const query = apartment ? "?apartment_id=" + encodeURIComponent(apartment) : "";
  try {
    estate.residents = await api("GET", "/admin/api/v1/residents" + query); // audited reads
  } catch (err) {
    showProblem("#residents-problem", err);
    return;
  }
  fillRows(
    $("#residents tbody"),
    estate.residents.map((r) => {
      const active = r.status === "active";
      return h(
        "tr",
        { "data-resident": r.id, class: estate.rightsOf && estate.rightsOf.id === r.id ? "chosen" : "" },
        h("td", { class: "mono", "data-field": "username" }, r.username),
        h("td", {}, r.full_name),
        h("td", { class: "mono" }, r.phone || ""),
        h("td", { title: r.apartment_id || "" }, apartmentLabel(r.apartment_id)),
        h("td", { "data-field": "status", class: active ? "ok" : "muted" }, r.status.replace("_", " ")),
        h(
          "td",
          { class: "actions" },
          h("button", { type: "button", class: "small ghost", "data-rights": r.id, onclick: () => showRights(r) }, "rights"),
          active
            ? h(
              "button",
              { type: "button", class: "small danger", "data-move-out": r.id, "data-needs": "residents.manage", onclick: () => moveOut(r) },
              "move out",
            )
            : null,
        ),
      );
    }),
  );
}

async function inviteResident(event) {
  event.preventDefault();
  const body = {
    username: valueOf("invite-username"),
    full_name: valueOf("invite-name"),
    apartment_id: valueOf("invite-apartment"),
  };
  if (valueOf("invite-phone")) body.phone = valueOf("invite-phone");
  try {
    const invited = await api("POST", "/admin/api/v1/residents", body);
    showProblem("#residents-problem", null);
    showOnce("#invite-result", `Invited ${invited.resident.username} to ${apartmentLabel(invited.resident.apartment_id)}`, [
      ["temporary password", invited.temporary_password, "temporary_password"],
      ["activation code", invited.activation_code, "activation_code"],
      ["code valid until", formatTime(invited.activation_expires_at)],
    ]);
    event.target.reset();
    await loadEstate(); // the apartment's count of residents
    await loadResidents();
    showRights(invited.resident);
  } catch (err) {
    showProblem("#residents-problem", err);
  }
}

async function moveOut(resident) {
  const question = `Move ${resident.username} out? Their rights, guest passes, vehicles and sessions end at once.`;
  if (!confirm(question)) return;
  try {
    const done = await api("POST", `/admin/api/v1/residents/${encodeURIComponent(resident.id)}/move-out`);
    showProblem("#residents-problem", null);
    say(`Moved ${resident.username} out: ${done.rights_ended} rights ended, ${done.passes_revoked} guest passes revoked.`, "info");
    await loadResidents();
    if (estate.rightsOf && estate.rightsOf.id === resident.id) {
      showRights(estate.residents.find((r) => r.id === resident.id) || resident);
    }
    loadAudit();
  } catch (err) {
    showProblem("#residents-problem", err);
  }
}

// -- rights and schedules (propdev/access/schedule.py: weekly windows in the site's time) -------

function dayRange(days) {
  const index = days.map((d) => WEEKDAYS.indexOf(d)).sort((a, b) => a - b);
  const runs = [];
  for (const i of index) {
    const last = runs[runs.length - 1];
    if (last && last[1] === i - 1) last[1] = i;
    else runs.push([i, i]);
  }
  const name = (i) => WEEKDAYS[i][0].toUpperCase() + WEEKDAYS[i].slice(1);
  return runs.map(([a, b]) => (a === b ? name(a) : b === a + 1 ? `${name(a)}, ${name(b)}` : `${name(a)}–${name(b)}`)).join(", ");
}

function scheduleText(schedule) {
  if (!schedule) return "at all times";
  return schedule.windows.map((w) => `${dayRange(w.days)} ${w.from}–${w.until}`).join("; ");
}

async function showRights(resident) {
  estate.rightsOf = resident;
  for (const row of document.querySelectorAll("#residents tbody tr")) {
    row.classList.toggle("chosen", row.dataset.resident === resident.id);
  }
  $("#rights-panel").hidden = false;
  $("#rights-who").textContent = resident.username;
  $("#grant-form").hidden = resident.status !== "active";
  editRight(null);
  let rights;
  try {
    rights = await api("GET", "/admin/api/v1/rights?user_id=" + encodeURIComponent(resident.id));
  } catch (err) {
    showProblem("#residents-problem", err);
    return;
  }
  fillRows(
    $("#rights tbody"),
    rights.map((r) =>
      h(
        "tr",
        { "data-right": r.access_point_id },
        h("td", { title: r.access_point_id }, pointName(r.access_point_id)),
        h("td", { "data-field": "schedule" }, scheduleText(r.schedule)),
        h(
          "td",
          { class: "actions", "data-needs": "residents.manage" },
          h("button", { type: "button", class: "small ghost", "data-edit-right": r.access_point_id, onclick: () => editRight(r) }, "schedule"),
          h("button", { type: "button", class: "small danger", "data-withdraw-right": r.access_point_id, onclick: () => withdrawRight(r) }, "withdraw"),
        ),
      ),
    ),
  );
  if (!rights.length) {
    fillRows($("#rights tbody"), [h("tr", {}, h("td", { colspan: "3", class: "muted" }, "no doors"))]);
  }
}

function windowRow(w) {
  const window_ = w || { days: ["mon", "tue", "wed", "thu", "fri"], from: "07:00", until: "22:00" };
  return h(
    "div",
    { class: "window" },
    h(
      "div",
      { class: "days" },
      WEEKDAYS.map((d) =>
        h("label", {}, h("input", { type: "checkbox", "data-day": d, checked: window_.days.includes(d) }), d),
      ),
    ),
    h(
      "div",
      { class: "row" },
      h("input", { class: "from", value: window_.from, "aria-label": "from", placeholder: "HH:MM", pattern: "([01][0-9]|2[0-3]):[0-5][0-9]", required: true }),
      h("span", { class: "muted" }, "until"),
      h("input", { class: "until", value: window_.until, "aria-label": "until", placeholder: "HH:MM", pattern: "([01][0-9]|2[0-3]):[0-5][0-9]|24:00", required: true }),
      h("button", { type: "button", class: "small ghost", onclick: (e) => e.target.closest(".window").remove() }, "remove"),
    ),
  );
}

function toggleAlways() {
  const always = $("#grant-always").checked;
  $("#grant-windows").hidden = always;
  $("#grant-add-window").hidden = always;
  if (!always && !$("#grant-windows").children.length) $("#grant-windows").append(windowRow());
}

function editRight(right) {
  const windows = right && right.schedule ? right.schedule.windows : [];
  $("#grant-windows").replaceChildren(...windows.map(windowRow));
  $("#grant-always").checked = !windows.length;
  toggleAlways();
  if (right) $("#grant-ap").value = right.access_point_id;
  $("#grant-submit").textContent = right ? "Save schedule" : "Grant";
}

function scheduleFromForm() {
  if ($("#grant-always").checked) return null;
  const windows = [...document.querySelectorAll("#grant-windows .window")].map((row) => ({
    days: [...row.querySelectorAll("input[data-day]:checked")].map((box) => box.dataset.day),
    from: row.querySelector(".from").value.trim(),
    until: row.querySelector(".until").value.trim(),
  }));
  return { windows };
}

async function grantRight(event) {
  event.preventDefault();
  const resident = estate.rightsOf;
  const point = $("#grant-ap").value;
  const path = `/admin/api/v1/rights/${encodeURIComponent(resident.id)}/${encodeURIComponent(point)}`;
  try {
    await api("PUT", path, { schedule: scheduleFromForm() });
    showProblem("#residents-problem", null);
    say(`${resident.username} may open ${pointName(point)}.`, "info");
    await showRights(resident);
    loadAudit();
  } catch (err) {
    showProblem("#residents-problem", err);
  }
}

async function withdrawRight(right) {
  const resident = estate.rightsOf;
  const path = `/admin/api/v1/rights/${encodeURIComponent(right.user_id)}/${encodeURIComponent(right.access_point_id)}`;
  try {
    await api("DELETE", path);
    showProblem("#residents-problem", null);
    say(`${resident.username} may no longer open ${pointName(right.access_point_id)}.`, "info");
    await showRights(resident);
    loadAudit();
  } catch (err) {
    showProblem("#residents-problem", err);
  }
}

// -- guest passes -------------------------------------------------------------------------

async function loadAllPasses() {
  await estateLoaded();
  const params = new URLSearchParams({ limit: "200" });
  if ($("#passes-active").value) params.set("active", $("#passes-active").value);
  let passes;
  try {
    passes = await api("GET", "/admin/api/v1/guest-passes?" + params.toString());
  } catch (err) {
    showProblem("#passes-problem", err);
    return;
  }
  showProblem("#passes-problem", null);
  const owners = byId(estate.residents);
  fillRows(
    $("#all-passes tbody"),
    passes.map((p) => {
      const usable = p.status === "active" || p.status === "scheduled";
      const owner = owners.get(p.owner_id);
      return h(
        "tr",
        { "data-pass-row": p.id },
        h("td", { class: "mono", title: p.id }, p.id.slice(0, 8)),
        h("td", { class: "mono owner", title: p.owner_id }, owner ? owner.username : p.owner_id.slice(0, 8)),
        h("td", {}, p.access_point_ids.map(pointName).join(", ")),
        h("td", { "data-field": "status", class: usable ? "ok" : "muted" }, p.status),
        h("td", {}, `${p.uses}/${p.max_uses}`),
        h("td", {}, `${formatTime(p.valid_from)} – ${formatTime(p.valid_until)}`),
        h(
          "td",
          {},
          usable
            ? h("button", { type: "button", class: "small danger", "data-pass-revoke": p.id, "data-needs": "passes.manage", onclick: () => revokeListedPass(p) }, "revoke")
            : "",
        ),
      );
    }),
  );
}

async function revokeListedPass(pass) {
  try {
    await api("DELETE", `/admin/api/v1/guest-passes/${encodeURIComponent(pass.id)}`);
    say(`Revoked guest pass ${pass.id.slice(0, 8)}.`, "info");
    await loadAllPasses();
    loadAudit();
  } catch (err) {
    showProblem("#passes-problem", err);
  }
}

// -- staff ----------------------------------------------------------------------------------

function sitesText(siteIds) {
  return siteIds === null ? "whole organisation" : siteIds.map(siteName).join(", ");
}

async function loadStaff() {
  await estateLoaded();
  renderStaffChoices();
  let staff;
  try {
    staff = await api("GET", "/admin/api/v1/operators");
  } catch (err) {
    showProblem("#staff-problem", err);
    return;
  }
  fillRows(
    $("#staff tbody"),
    staff.map((s) => {
      const live = s.status !== "disabled";
      const self = estate.me && s.id === estate.me.id;
      return h(
        "tr",
        { "data-staff": s.id, "data-username": s.username },
        h("td", { class: "mono" }, s.username),
        h("td", {}, s.full_name),
        h("td", { "data-field": "roles" }, s.roles.join(", ")),
        h("td", { "data-field": "sites" }, sitesText(s.site_ids)),
        h("td", { "data-field": "status", class: s.status === "active" ? "ok" : s.status === "disabled" ? "bad" : "muted" }, s.status),
        h("td", {}, s.totp_enrolled ? "enrolled" : h("span", { class: "muted" }, "not yet")),
        h(
          "td",
          { class: "actions", "data-needs": "staff.manage" },
          live ? h("button", { type: "button", class: "small ghost", "data-edit-staff": s.id, onclick: () => editStaff(s) }, "change") : null,
          live && !self ? h("button", { type: "button", class: "small ghost", "data-reset-2fa": s.id, onclick: () => resetTwoFactor(s) }, "reset 2FA") : null,
          live && !self ? h("button", { type: "button", class: "small danger", "data-disable-staff": s.id, onclick: () => disableStaff(s) }, "disable") : null,
        ),
      );
    }),
  );
}

function renderStaffChoices() {
  const roleBox = $("#staff-roles");
  roleBox.replaceChildren(
    h("legend", {}, "roles"),
    ...STAFF_ROLE_NAMES.map((r) => h("label", {}, h("input", { type: "checkbox", name: "role", value: r }), r)),
  );
  const siteBox = $("#staff-sites");
  siteBox.replaceChildren(
    h("legend", {}, "sites"),
    h("label", { "data-org-only": "" }, h("input", { type: "checkbox", id: "staff-org" }), "whole organisation"),
    ...estate.sites.map((s) => h("label", {}, h("input", { type: "checkbox", name: "site", value: s.id }), s.name)),
  );
  if (estate.editingStaff) fillStaffForm(estate.editingStaff);
}

function checked(name) {
  return [...document.querySelectorAll(`#staff-form input[name="${name}"]:checked`)].map((box) => box.value);
}

function fillStaffForm(member) {
  $("#staff-username").value = member ? member.username : "";
  $("#staff-name").value = member ? member.full_name : "";
  for (const box of document.querySelectorAll('#staff-form input[name="role"]')) {
    box.checked = Boolean(member && member.roles.includes(box.value));
  }
  for (const box of document.querySelectorAll('#staff-form input[name="site"]')) {
    box.checked = Boolean(member && member.site_ids && member.site_ids.includes(box.value));
  }
  $("#staff-org").checked = Boolean(member && member.site_ids === null);
}

function editStaff(member) {
  estate.editingStaff = member;
  fillStaffForm(member);
  $("#staff-username").disabled = Boolean(member);
  $("#staff-form-title").textContent = member ? `Change ${member.username}` : "New staff account";
  $("#staff-submit").textContent = member ? "Save" : "Create";
  $("#staff-cancel").hidden = !member;
}

async function saveStaff(event) {
  event.preventDefault();
  const member = estate.editingStaff;
  const body = {
    full_name: valueOf("staff-name"),
    roles: checked("role"),
    site_ids: $("#staff-org").checked ? null : checked("site"),
  };
  try {
    if (member) {
      await api("PATCH", `/admin/api/v1/operators/${encodeURIComponent(member.id)}`, body);
      say(`Changed ${member.username}.`, "info");
    } else {
      const made = await api("POST", "/admin/api/v1/operators", { username: valueOf("staff-username"), ...body });
      showOnce("#staff-result", `Created ${made.username}`, [["activation code", made.activation_code, "activation_code"]]);
    }
    showProblem("#staff-problem", null);
    editStaff(null);
    await loadStaff();
    loadAudit();
  } catch (err) {
    showProblem("#staff-problem", err);
  }
}

async function resetTwoFactor(member) {
  if (!confirm(`Reset ${member.username}'s second factor? Their password, TOTP and sessions are dropped; they enrol again with a new activation code.`)) return;
  try {
    const reset = await api("POST", `/admin/api/v1/operators/${encodeURIComponent(member.id)}/reset-2fa`);
    showProblem("#staff-problem", null);
    showOnce("#staff-result", `${reset.username} enrols again`, [["activation code", reset.activation_code, "activation_code"]]);
    await loadStaff();
  } catch (err) {
    showProblem("#staff-problem", err);
  }
}

async function disableStaff(member) {
  if (!confirm(`Disable ${member.username}? Their tokens and sessions stop at once, on every node.`)) return;
  try {
    await api("DELETE", `/admin/api/v1/operators/${encodeURIComponent(member.id)}`);
    showProblem("#staff-problem", null);
    say(`Disabled ${member.username}.`, "info");
    await loadStaff();
  } catch (err) {
    showProblem("#staff-problem", err);
  }
}
