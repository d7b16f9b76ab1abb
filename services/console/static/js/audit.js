// The audit log page (approvers and admins).
import { $, clear, h } from "./dom.js";
import { api } from "./api.js";
import { t, onLangChange } from "./i18n.js";
import { on, can } from "./state.js";
import { fmtTime } from "./format.js";

let entries = [];

async function load() {
  if (!can("audit")) return;
  try {
    entries = (await api("/api/audit?limit=300")).entries;
  } catch (error) {
    entries = [];
    clear($("#audit")).append(h("p", { class: "error" }, error.message));
    return;
  }
  render();
}

function render() {
  const root = clear($("#audit"));
  // two rows per entry (who / when / what / outcome, then target and detail): it reads in a narrow column
  root.append(h("table", { class: "grid audit-table" },
    h("thead", {}, h("tr", {}, ["audit.at", "audit.actor", "audit.action", "audit.outcome"].map((k) => h("th", {}, t(k))))),
    entries.map((e) => h("tbody", { dataset: { seq: e.seq, action: e.action, outcome: e.outcome } },
      h("tr", { class: "main" },
        h("td", { class: "nowrap" }, fmtTime(e.at)),
        h("td", {}, e.actor, e.role ? h("span", { class: "muted" }, ` ${e.role}`) : null),
        h("td", {}, e.action),
        h("td", {}, h("span", { class: `outcome ${e.outcome}` }, t(`outcome.${e.outcome}`)))),
      h("tr", { class: "sub" },
        h("td", { colspan: 4 }, e.target ? h("span", { class: "target" }, e.target) : null, e.detail))))));
}

export function initAudit() {
  $("#audit-refresh").addEventListener("click", load);
  on("tab", (tab) => tab === "audit" && load());
  onLangChange(render);
}
