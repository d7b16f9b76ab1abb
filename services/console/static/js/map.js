// The map: county outlines and township cells as SVG, coloured by highest active level.
import { $, clear, h, s } from "./dom.js";
import { t, onLangChange } from "./i18n.js";
import { state, on, emit } from "./state.js";
import { LEVELS, countyName, fmtInt, hazardName } from "./format.js";

let cells = new Map(); // code -> <path>
let dots = new Map(); // code -> <circle>
let picking = new Set(); // compose selection, outlined on the map
let selectedTowns = new Set(); // townships of the warning shown in the detail

export function renderMap(geo) {
  const root = $("#map");
  clear(root);
  const svg = s("svg", { viewBox: geo.view_box, class: "map-svg", role: "img", "aria-label": t("map.title") });
  const countyLayer = s("g", { class: "counties" });
  const cellLayer = s("g", { class: "cells" });
  const borderLayer = s("g", { class: "borders" });
  const dotLayer = s("g", { class: "dots" });
  const labelLayer = s("g", { class: "labels" });
  for (const county of geo.counties) {
    if (!county.path) continue;
    countyLayer.append(s("path", { d: county.path, class: "county", "fill-rule": "evenodd" }));
    borderLayer.append(s("path", { d: county.path, class: "county-border", "fill-rule": "evenodd" }));
    if (county.label) {
      labelLayer.append(s("text", { x: county.label[0], y: county.label[1], class: "county-label", dataset: { county: county.code } }, countyName(county.code)));
    }
  }
  cells = new Map();
  dots = new Map();
  for (const town of geo.townships) {
    if (town.cell) {
      const cell = s("path", { d: town.cell, class: "cell", "fill-rule": "evenodd", dataset: { code: town.code, level: "none" } });
      cells.set(town.code, cell);
      cellLayer.append(cell);
    }
    if (town.xy) {
      const dot = s("circle", { cx: town.xy[0], cy: town.xy[1], r: 2.2, class: "dot", dataset: { code: town.code, level: "none" } });
      dots.set(town.code, dot);
      dotLayer.append(dot);
    }
  }
  svg.append(countyLayer, cellLayer, borderLayer, dotLayer, labelLayer);
  svg.addEventListener("mousemove", onHover);
  svg.addEventListener("mouseleave", () => ($("#map-tip").hidden = true));
  svg.addEventListener("click", onClick);
  root.append(svg);
  paintAll();
  renderLegend();
}

function levelOf(code) {
  return state.levels[code] || "none";
}

function paint(code) {
  const level = levelOf(code);
  const cell = cells.get(code);
  if (cell) {
    cell.dataset.level = level;
    cell.classList.toggle("picked", picking.has(code));
    cell.classList.toggle("sel", selectedTowns.has(code));
  }
  const dot = dots.get(code);
  if (dot) dot.dataset.level = level;
}

function paintAll() {
  for (const code of new Set([...cells.keys(), ...dots.keys()])) paint(code);
}

function renderLegend() {
  const legend = $("#legend");
  clear(legend);
  for (const level of ["none", ...LEVELS]) {
    legend.append(h("li", {}, h("span", { class: `swatch lvl-${level}` }), level === "none" ? t("map.none") : t(`level.${level}`)));
  }
}

function codeAt(event) {
  const target = event.target.closest("[data-code]");
  return target ? target.dataset.code : null;
}

function onHover(event) {
  const code = codeAt(event);
  const tip = $("#map-tip");
  if (!code) {
    tip.hidden = true;
    return;
  }
  const town = state.towns.get(code);
  const active = [...state.warnings.values()].filter((w) => w.active && w.township_codes.includes(code));
  clear(tip).append(
    h("strong", {}, town ? town.name_zh : code),
    h("span", { class: "muted" }, ` ${countyName(town ? town.county_code : code.slice(0, 6))} · ${code}`),
    h("div", {}, `${t("map.population")}: ${fmtInt(town ? town.population : null)}`),
    ...active.map((w) => h("div", {}, h("span", { class: `swatch lvl-${w.level}` }), `${hazardName(w.hazard)} ${t(`level.${w.level}`)}`)),
  );
  const box = $("#map").getBoundingClientRect();
  tip.style.left = `${event.clientX - box.left + 14}px`;
  tip.style.top = `${event.clientY - box.top + 10}px`;
  tip.hidden = false;
}

function onClick(event) {
  const code = codeAt(event);
  if (!code) return;
  emit("map:click", code);
}

export function setPicked(codes) {
  picking = new Set(codes);
  paintAll();
}

export function highlight(codes) {
  const before = selectedTowns;
  selectedTowns = new Set(codes);
  for (const code of new Set([...before, ...selectedTowns])) paint(code);
}

export function initMap() {
  on("select", (warningId) => {
    const w = state.warnings.get(warningId);
    highlight(w ? w.township_codes : []);
  });
  on("levels", (diff) => {
    if (!diff) paintAll();
    else for (const code of Object.keys(diff)) paint(code);
  });
  onLangChange(() => {
    renderLegend();
    for (const label of document.querySelectorAll(".county-label")) label.textContent = countyName(label.dataset.county);
  });
}
