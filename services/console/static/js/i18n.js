// Chinese and English labels from one JSON dictionary (/static/i18n.json).
import { $$ } from "./dom.js";

let dictionary = { zh: {}, en: {} };
let lang = localStorage.getItem("ew.lang") || "zh";
const listeners = new Set();

export async function loadStrings() {
  const response = await fetch("/static/i18n.json", { credentials: "same-origin" });
  dictionary = await response.json();
  if (!dictionary[lang]) lang = "zh";
  applyStatic();
}

export function currentLang() {
  return lang;
}

export function t(key, vars = {}) {
  const text = dictionary[lang]?.[key] ?? dictionary.zh?.[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => (name in vars ? String(vars[name]) : `{${name}}`));
}

export function setLang(next) {
  lang = next;
  localStorage.setItem("ew.lang", lang);
  applyStatic();
  for (const fn of listeners) fn(lang);
}

export function toggleLang() {
  setLang(lang === "zh" ? "en" : "zh");
}

export function onLangChange(fn) {
  listeners.add(fn);
}

/** Fill every [data-i18n] element and [data-i18n-placeholder] input. */
export function applyStatic(root = document) {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  for (const el of $$("[data-i18n]", root)) el.textContent = t(el.dataset.i18n);
  for (const el of $$("[data-i18n-placeholder]", root)) el.placeholder = t(el.dataset.i18nPlaceholder);
  document.title = t("app.short");
}
