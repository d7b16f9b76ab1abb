// Compose a manual warning with a live check of every channel's text limits and the
// population it will reach (POST /api/compose/check, debounced while typing).
import { $, $$, clear, h, debounce } from "./dom.js";
import { api } from "./api.js";
import { t, onLangChange } from "./i18n.js";
import { state, on } from "./state.js";
import { HAZARDS, LEVELS, countyName, fmtInt, hazardName } from "./format.js";
import { setPicked } from "./map.js";
import { toast } from "./toast.js";

const VALIDITY_H = [1, 3, 6, 12, 24];
const selected = new Set();
let level = "yellow";
let lastCheck = null;

function draft() {
  return {
    hazard: $("#c-hazard").value,
    level,
    township_codes: [...selected].sort(),
    headline: $("#c-headline").value,
    description: $("#c-description").value,
    valid_for_s: Number($("#c-validity").value) * 3600,
  };
}

const check = debounce(async () => {
  const body = draft();
  try {
    lastCheck = await api("/api/compose/check", { method: "POST", body });
  } catch (error) {
    lastCheck = { valid: false, errors: [error.message], channels: [] };
  }
  renderCheck();
}, 200);

function changed() {
  $("#c-selected").textContent = t("compose.selected", { n: selected.size });
  $("#c-approval").hidden = !(level === "orange" || level === "red");
  setPicked(state.activeTab === "compose" ? selected : []);
  $("#c-submit").disabled = true;
  check();
}

function renderCheck() {
  const root = clear($("#c-check-body"));
  const c = lastCheck;
  if (!c) return;
  root.append(
    h("div", { class: "check-pop" },
      h("span", { class: "big", id: "c-population" }, fmtInt(c.population)),
      h("span", { class: "muted" }, ` ${t("compose.population")} · ${t("compose.selected", { n: c.townships || 0 })}`)),
    h("p", { class: "muted small" }, `${t("compose.headline")} (${t("compose.typed")}): `,
      `${c.headline.chars} · ${c.headline.encoding} · `, t("compose.segments", { n: c.headline.segments }),
      c.description && c.description.chars ? ` · ${t("compose.description")}: ${c.description.chars} · ${t("compose.segments", { n: c.description.segments })}` : ""),
  );
  if (c.channels && c.channels.length) {
    const rows = c.channels.map((ch) => h("tr", { class: ch.ok ? "ok" : "over", dataset: { channel: ch.channel } },
      h("td", {}, ch.channel),
      h("td", { class: "num" }, ch.limit ? t("compose.chars", { n: ch.chars, limit: ch.limit }) : ch.chars),
      h("td", {}, ch.segments ? `${t("compose.segments", { n: ch.segments })}${ch.max_segments ? ` / ${ch.max_segments}` : ""} · ${ch.encoding}` : ""),
      h("td", { class: "verdict" }, ch.ok ? `✓ ${t("compose.ok")}` : ch.violations.length ? `✗ ${t("compose.over")}: ${ch.violations.map((v) => `${v.limit} ${v.actual}>${v.allowed}`).join(", ")}` : t("compose.unchecked")),
    ));
    root.append(h("table", { class: "grid channels" }, h("tbody", {}, rows)));
    const sms = c.channels.find((ch) => ch.channel === "sms");
    if (sms) root.append(h("p", { class: "sms-preview" }, sms.text));
  }
  const errors = (c.errors || []).filter((e) => !e.startsWith("headline") || $("#c-headline").value);
  $("#c-error").hidden = !errors.length;
  $("#c-error").textContent = errors.join("; ");
  const channelsOk = (c.channels || []).every((ch) => ch.ok);
  $("#c-submit").disabled = !(c.valid && channelsOk && selected.size);
}

function renderPicker() {
  const root = clear($("#c-towns"));
  const query = $("#c-search").value.trim();
  const byCounty = new Map();
  for (const town of state.towns.values()) {
    if (query && !town.name_zh.includes(query) && !town.code.includes(query)) continue;
    if (!byCounty.has(town.county_code)) byCounty.set(town.county_code, []);
    byCounty.get(town.county_code).push(town);
  }
  for (const [county, towns] of [...byCounty.entries()].sort()) {
    const all = towns.every((town) => selected.has(town.code));
    root.append(h("div", { class: "county-group" },
      h("label", { class: "county-all" },
        h("input", { type: "checkbox", checked: all, onchange: (e) => {
          for (const town of towns) e.target.checked ? selected.add(town.code) : selected.delete(town.code);
          renderPicker();
          changed();
        } }),
        h("strong", {}, countyName(county)), h("span", { class: "muted" }, ` ${t("compose.selectCounty")}`)),
      h("div", { class: "town-list" }, towns.map((town) => h("label", { class: "town" },
        h("input", { type: "checkbox", value: town.code, checked: selected.has(town.code), onchange: (e) => {
          e.target.checked ? selected.add(town.code) : selected.delete(town.code);
          changed();
        } }),
        town.name_zh))),
    ));
  }
}

function renderLevels() {
  const root = $("#c-levels");
  for (const el of $$("label", root)) el.remove();
  for (const value of LEVELS) {
    root.append(h("label", { class: `level-pick lvl-${value}` },
      h("input", { type: "radio", name: "c-level", value, checked: value === level, onchange: () => { level = value; changed(); } }),
      h("span", {}, t(`level.${value}`))));
  }
}

function fillSelects() {
  const hazard = $("#c-hazard");
  const keep = hazard.value || "rainstorm";
  clear(hazard);
  for (const value of HAZARDS) hazard.append(h("option", { value }, hazardName(value)));
  hazard.value = keep;
  const validity = $("#c-validity");
  const keepV = validity.value || "6";
  clear(validity);
  for (const n of VALIDITY_H) validity.append(h("option", { value: n }, t("compose.hours", { n })));
  validity.value = keepV;
}

async function submit(event) {
  event.preventDefault();
  const body = draft();
  $("#c-submit").disabled = true;
  try {
    await api("/api/warnings", { method: "POST", body });
    toast(t("compose.issued"), "ok");
    selected.clear();
    $("#c-headline").value = "";
    $("#c-description").value = "";
    renderPicker();
    changed();
  } catch (error) {
    $("#c-error").textContent = error.message;
    $("#c-error").hidden = false;
    $("#c-submit").disabled = false;
  }
}

export function initCompose() {
  fillSelects();
  renderLevels();
  renderPicker();
  $("#c-search").addEventListener("input", renderPicker);
  for (const id of ["#c-hazard", "#c-validity"]) $(id).addEventListener("change", changed);
  for (const id of ["#c-headline", "#c-description"]) $(id).addEventListener("input", changed);
  $("#compose-form").addEventListener("submit", submit);
  on("map:click", (code) => {
    if (state.activeTab !== "compose") return;
    selected.has(code) ? selected.delete(code) : selected.add(code);
    renderPicker();
    changed();
  });
  on("tab", (tab) => setPicked(tab === "compose" ? selected : []));
  onLangChange(() => {
    fillSelects();
    renderLevels();
    renderPicker();
    changed();
  });
  changed();
}
