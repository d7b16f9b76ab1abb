// Operations tab: scenario replay, station health, rejected-input counts.
import { $, clear, h } from "./dom.js";
import { api } from "./api.js";
import { t, onLangChange } from "./i18n.js";
import { state, on, can } from "./state.js";
import { fmtInt, fmtTime } from "./format.js";
import { toast } from "./toast.js";

const SPEEDS = [1, 10, 60, 600, 3600];

function renderReplay() {
  const block = $("#replay-block");
  block.hidden = !can("replay");
  const name = $("#r-name");
  clear(name);
  for (const scenario of state.replay.scenarios) name.append(h("option", { value: scenario }, scenario));
  const speed = $("#r-speed");
  const keep = speed.value || "60";
  clear(speed);
  for (const n of SPEEDS) speed.append(h("option", { value: n }, `×${n}`));
  speed.value = keep;
  $("#r-start").disabled = !state.replay.available;
  $("#r-status").textContent = state.replay.available ? "" : t("ops.unavailable");
}

function renderHealth() {
  const root = clear($("#health"));
  const health = state.health;
  if (!health || !health.kinds.length) {
    root.append(h("p", { class: "muted" }, t("ops.noStations")));
    return;
  }
  root.append(h("table", { class: "grid health-table" },
    h("thead", {}, h("tr", {}, ["ops.kind", "ops.stations", "ops.ok", "ops.stale", "ops.faulty"].map((k) => h("th", {}, t(k))))),
    h("tbody", {}, health.kinds.map((k) => h("tr", { dataset: { kind: k.kind } },
      h("td", {}, k.kind), h("td", { class: "num" }, fmtInt(k.stations)), h("td", { class: "num ok" }, fmtInt(k.ok)),
      h("td", { class: `num stale ${k.stale ? "warn" : ""}` }, fmtInt(k.stale)),
      h("td", { class: `num faulty ${k.faulty ? "warn" : ""}` }, fmtInt(k.faulty || 0)))))));
  if (health.stale.length) {
    root.append(h("p", { class: "muted small stale-list" }, `${t("ops.staleList")}: `,
      health.stale.slice(0, 12).map((st) => `${st.station_id} (${Math.round(st.behind_s / 60)} min)`).join(", ")));
  }
  if (health.faulty && health.faulty.length) {
    root.append(h("p", { class: "muted small faulty-list" }, `${t("ops.faultyList")} (${fmtInt(health.faulty_total)}): `,
      health.faulty.slice(0, 12).map((f) => `${f.station_id} ${t(`ops.fault.${f.status}`)} ${fmtTime(f.since)}`).join(", ")));
  }
}

function renderRejected() {
  const root = clear($("#rejected"));
  const entries = Object.entries(state.rejected.counts || {}).sort((a, b) => b[1] - a[1]);
  if (!entries.length) {
    root.append(h("p", { class: "muted" }, t("ops.noRejects")));
    return;
  }
  root.append(h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, h("th", {}, t("ops.reason")), h("th", {}, t("ops.count")))),
    h("tbody", {}, entries.map(([reason, count]) => h("tr", { dataset: { reason } }, h("td", {}, reason), h("td", { class: "num" }, fmtInt(count)))))));
  root.append(h("h4", {}, t("ops.recent")), h("ul", { class: "recent" },
    state.rejected.recent.slice(0, 8).map((r) => h("li", {}, h("span", { class: "muted" }, `${fmtTime(r.received_at)} ${r.source} · ${r.reason}: `), r.detail))));
}

async function startReplay(event) {
  event.preventDefault();
  const name = $("#r-name").value;
  const speed = Number($("#r-speed").value);
  try {
    await api("/api/replay", { method: "POST", body: { name, speed } });
    $("#r-status").textContent = t("ops.started", { name, speed });
    toast(t("ops.started", { name, speed }), "ok");
  } catch (error) {
    toast(t("error.generic", { message: error.message }), "error");
  }
}

export function initOps() {
  $("#replay-form").addEventListener("submit", startReplay);
  on("me", renderReplay);
  on("health", renderHealth);
  on("rejected", renderRejected);
  onLangChange(() => {
    renderReplay();
    renderHealth();
    renderRejected();
  });
}
