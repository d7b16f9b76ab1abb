// Short notices in the corner.
import { $, h } from "./dom.js";

export function toast(text, kind = "info", ms = 5000) {
  const el = h("div", { class: `toast ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
  $("#toasts").append(el);
  setTimeout(() => el.remove(), ms);
}
