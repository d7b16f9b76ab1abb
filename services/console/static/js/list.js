// The live warning list: newest first, filtered by hazard, level, county (and township).
import { $, clear, h, scheduler } from "./dom.js";
import { t, onLangChange } from "./i18n.js";
import { state, on, emit } from "./state.js";
import { HAZARDS, LEVELS, areaText, countyName, fmtTime, hazardName, levelBadge } from "./format.js";

const render = scheduler(renderList);
let shown = null; // ids rendered last time: only new arrivals get the highlight

function matches(w) {
  const f = state.filters;
  if (f.hazard && w.hazard !== f.hazard) return false;
  if (f.level && w.level !== f.level && w.current_level !== f.level) return false;
  if (f.county && !w.county_codes.includes(f.county)) return false;
  if (f.township && !w.township_codes.includes(f.township)) return false;
  if (f.active && !(w.active || w.held)) return false;
  return true;
}

function newestFirst(a, b) {
  if (a.sent_at !== b.sent_at) return a.sent_at < b.sent_at ? 1 : -1;
  return b.order - a.order;
}

function renderList() {
  const list = $("#warning-list");
  const items = [...state.warnings.values()].filter(matches).sort(newestFirst);
  clear(list);
  $("#list-count").textContent = String(items.length);
  if (!items.length) {
    list.append(h("li", { class: "empty" }, t("list.empty")));
    return;
  }
  const previous = shown;
  shown = new Set();
  for (const w of items.slice(0, 400)) {
    shown.add(w.warning_id);
    const classes = ["warning", `lvl-${w.level}`];
    if (previous && !previous.has(w.warning_id)) classes.push("new");
    if (!w.active && !w.held) classes.push("ended");
    if (w.held) classes.push("held");
    if (state.selected === w.warning_id) classes.push("selected");
    list.append(
      h("li", {
        class: classes.join(" "),
        dataset: { warningId: w.warning_id, level: w.level },
        tabindex: 0,
        onclick: () => emit("select", w.warning_id),
        onkeydown: (e) => { if (e.key === "Enter") emit("select", w.warning_id); },
      },
        h("div", { class: "line1" },
          levelBadge(w.level),
          h("span", { class: "hazard" }, hazardName(w.hazard)),
          h("span", { class: `msgtype mt-${w.msg_type}` }, t(`msg.${w.msg_type}`)),
          w.held ? h("span", { class: "tag held" }, t("detail.held")) : null,
          w.origin === "manual" ? h("span", { class: "tag" }, "✎") : null,
          h("time", { class: "when" }, fmtTime(w.sent_at)),
        ),
        h("div", { class: "line2" }, areaText(w.township_codes)),
        h("div", { class: "line3 muted" }, w.county_codes.map(countyName).join("、"), w.acks ? ` · ✓${w.acks}` : ""),
      ),
    );
  }
}

function fillSelect(select, allKey, values, label) {
  const current = select.value;
  clear(select);
  select.append(h("option", { value: "" }, t(allKey)));
  for (const value of values) select.append(h("option", { value }, label(value)));
  select.value = current;
}

export function fillFilters() {
  fillSelect($("#f-hazard"), "list.allHazards", HAZARDS, hazardName);
  fillSelect($("#f-level"), "list.allLevels", LEVELS, (l) => t(`level.${l}`));
  fillSelect($("#f-county"), "list.allCounties", [...state.counties.keys()], countyName);
  renderTownshipChip();
}

function renderTownshipChip() {
  const chip = $("#f-township");
  const code = state.filters.township;
  chip.hidden = !code;
  clear(chip);
  if (code) {
    const town = state.towns.get(code);
    chip.append(t("list.township", { name: town ? town.name_zh : code }), " ",
      h("button", { type: "button", class: "chip-x", title: t("list.clear"), onclick: () => setTownship("") }, "×"));
  }
}

export function setTownship(code) {
  state.filters.township = code;
  renderTownshipChip();
  render();
}

export function initList() {
  for (const [id, key] of [["#f-hazard", "hazard"], ["#f-level", "level"], ["#f-county", "county"]]) {
    $(id).addEventListener("change", (e) => {
      state.filters[key] = e.target.value;
      render();
    });
  }
  $("#f-active").addEventListener("change", (e) => {
    state.filters.active = e.target.checked;
    render();
  });
  on("warnings", render);
  on("select", render);
  onLangChange(() => {
    fillFilters();
    render();
  });
}

export { render as renderWarnings };
