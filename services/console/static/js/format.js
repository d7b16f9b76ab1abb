// Formatting shared by the views: names, times (Beijing time), levels.
import { currentLang, t } from "./i18n.js";
import { state } from "./state.js";
import { h } from "./dom.js";

export const LEVELS = ["blue", "yellow", "orange", "red"];
export const HAZARDS = ["rainstorm", "short_heavy_rain", "convection", "geohazard", "flood", "tide", "gale", "typhoon"];
export const LEVEL_RANK = { none: 0, blue: 1, yellow: 2, orange: 3, red: 4 };

const timeFmt = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai", hour12: false, month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});
const clockFmt = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai", hour12: false, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
});

export function fmtTime(iso) {
  return iso ? timeFmt.format(new Date(iso)) : "–";
}

export function fmtClock(ms) {
  return `${clockFmt.format(new Date(ms))} BJT`;
}

export function fmtDuration(seconds) {
  const s = Math.max(0, Math.round(Math.abs(seconds)));
  const hh = Math.floor(s / 3600);
  const mm = Math.floor((s % 3600) / 60);
  const ss = s % 60;
  const two = (n) => String(n).padStart(2, "0");
  return hh ? `${hh}:${two(mm)}:${two(ss)}` : `${two(mm)}:${two(ss)}`;
}

export function fmtInt(n) {
  return n === null || n === undefined ? "–" : Number(n).toLocaleString(currentLang() === "zh" ? "zh-CN" : "en-US");
}

export function townName(code) {
  const town = state.towns.get(code);
  return town ? town.name_zh : code;
}

export function countyName(code) {
  const county = state.counties.get(code);
  if (!county) return code;
  return currentLang() === "zh" ? county.name_zh : county.name_en || county.name_zh;
}

export function areaText(codes, max = 4) {
  const names = codes.slice(0, max).map(townName);
  const more = codes.length > max ? ` +${codes.length - max}` : "";
  return names.join("、") + more;
}

export function levelBadge(level, extra = "") {
  return h("span", { class: `badge lvl-${level} ${extra}`.trim(), text: t(`level.${level}`) });
}

export function hazardName(hazard) {
  return t(`hazard.${hazard}`);
}
