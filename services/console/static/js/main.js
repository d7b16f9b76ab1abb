// Boot: strings → session → geography → snapshot → live stream.
import { $, $$ } from "./dom.js";
import { api, setCsrf } from "./api.js";
import { loadStrings, t, toggleLang, onLangChange } from "./i18n.js";
import { state, on, emit, can, setServerNow, serverNowMs } from "./state.js";
import { connect, disconnect } from "./stream.js";
import { initMap, renderMap } from "./map.js";
import { initList, fillFilters, setTownship } from "./list.js";
import { initQueue } from "./queue.js";
import { initDetail } from "./detail.js";
import { initCompose } from "./compose.js";
import { initOps } from "./ops.js";
import { initAudit } from "./audit.js";
import { toast } from "./toast.js";
import { fmtClock, LEVEL_RANK } from "./format.js";

let started = false;

async function boot() {
  await loadStrings();
  $("#lang-toggle").addEventListener("click", toggleLang);
  $("#login-form").addEventListener("submit", signIn);
  $("#logout").addEventListener("click", signOut);
  try {
    await startApp(await api("/api/me"));
  } catch (error) {
    if (error.status === 401) await showLogin();
    else toast(t("error.generic", { message: error.message }), "error", 15000);
  }
}

async function showLogin(messageKey) {
  disconnect();
  $("#app-view").hidden = true;
  $("#whoami").hidden = true;
  const error = $("#login-error");
  error.hidden = !messageKey;
  if (messageKey) error.textContent = t(messageKey);
  try {
    // the form shows once its CSRF token is here: a quick sign-in must not go without one
    const { csrf } = await api("/api/csrf");
    setCsrf(csrf);
  } finally {
    $("#login-view").hidden = false;
    $("#login-username").focus();
  }
}

async function signIn(event) {
  event.preventDefault();
  const error = $("#login-error");
  error.hidden = true;
  try {
    const me = await api("/api/login", {
      method: "POST",
      body: { username: $("#login-username").value.trim(), password: $("#login-password").value },
    });
    $("#login-password").value = "";
    await startApp(me);
  } catch (failure) {
    error.textContent = failure.status === 429 ? t("auth.locked") : failure.status === 401 ? t("auth.bad") : failure.message;
    error.hidden = false;
  }
}

async function signOut() {
  try {
    await api("/api/logout", { method: "POST" });
  } finally {
    state.me = null;
    await showLogin();
  }
}

async function startApp(me) {
  state.me = me;
  setCsrf(me.csrf);
  $("#login-view").hidden = true;
  $("#app-view").hidden = false;
  $("#whoami").hidden = false;
  $("#me-name").textContent = me.display_name || me.username;
  $("#me-role").textContent = t(`role.${me.role}`);
  $("#me-role").dataset.role = me.role;
  for (const tab of $$("[data-perm]")) tab.hidden = !can(tab.dataset.perm);
  if (!started) {
    started = true;
    initMap();
    initList();
    initQueue();
    initDetail();
    initOps();
    initAudit();
    wireTabs();
    wireApp();
  }
  if (!state.geo) {
    state.geo = await api("/api/geo");
    state.towns = new Map(state.geo.townships.map((town) => [town.code, town]));
    state.counties = new Map(state.geo.counties.map((county) => [county.code, county]));
    renderMap(state.geo);
    initCompose();
  }
  fillFilters();
  await loadSnapshot();
  emit("me", me);
  connect(state.lastEventId);
  selectTab(state.activeTab);
}

async function loadSnapshot() {
  const snap = await api("/api/snapshot");
  state.warnings = new Map(snap.warnings.map((w) => [w.warning_id, w]));
  state.levels = { ...snap.townships };
  state.queue = snap.queue;
  state.rejected = snap.rejected;
  state.health = snap.health;
  state.replay = snap.replay;
  state.capAvailable = snap.cap_available;
  state.lastEventId = snap.last_event_id;
  setServerNow(snap.now);
  emit("warnings");
  emit("levels", null);
  emit("queue");
  emit("rejected");
  emit("health");
  emit("refresh");
}

function selectTab(name) {
  const button = $(`[data-tab="${name}"]`);
  if (!button || button.hidden) name = "detail";
  state.activeTab = name;
  for (const tab of $$("[role=tab]")) tab.setAttribute("aria-selected", String(tab.dataset.tab === name));
  for (const panel of $$(".tab")) panel.hidden = panel.id !== `tab-${name}`;
  emit("tab", name);
}

function wireTabs() {
  for (const tab of $$("[role=tab]")) tab.addEventListener("click", () => selectTab(tab.dataset.tab));
  on("select", () => selectTab("detail"));
}

function wireApp() {
  on("sse:warning", (data) => {
    state.warnings.set(data.warning.warning_id, data.warning);
    emit("warnings");
  });
  on("sse:townships", (data) => {
    for (const [code, level] of Object.entries(data.levels)) {
      if (level === "none") delete state.levels[code];
      else state.levels[code] = level;
    }
    emit("levels", data.levels);
  });
  on("sse:queue", (data) => {
    state.queue = data.queue;
    setServerNow(data.now);
    emit("queue");
  });
  on("sse:ack", (data) => {
    const w = state.warnings.get(data.warning_id);
    if (w) {
      w.acks = data.acks;
      emit("warnings");
    }
  });
  on("sse:rejected", (data) => {
    state.rejected.counts = data.counts;
    state.rejected.recent = [data.record, ...state.rejected.recent].slice(0, 50);
    emit("rejected");
    const command = data.record.command;
    if (command && state.me && command.actor === state.me.username) toast(t("action.refused", { detail: data.record.detail }), "error", 10000);
  });
  on("sse:health", (data) => {
    state.health = data;
    emit("health");
  });
  on("sse:reset", async () => {
    disconnect();
    await loadSnapshot();
    connect(state.lastEventId);
  });
  on("sse:session_expired", () => showLogin("auth.expired"));
  on("conn", async (status) => {
    $("#conn").dataset.state = status;
    $("#conn-text").textContent = t(`conn.${status}`);
    if (status === "down" && state.me) {
      try {
        await api("/api/me");
        setTimeout(() => connect(state.lastEventId), 2000);
      } catch (error) {
        if (error.status === 401) showLogin("auth.expired");
        else setTimeout(() => connect(state.lastEventId), 5000);
      }
    }
  });
  on("map:click", (code) => {
    if (state.activeTab === "compose") return;
    setTownship(code);
    const here = [...state.warnings.values()].filter((w) => (w.active || w.held) && w.township_codes.includes(code));
    here.sort((a, b) => LEVEL_RANK[b.level] - LEVEL_RANK[a.level]);
    if (here.length) emit("select", here[0].warning_id);
  });
  onLangChange(() => {
    if (state.me) $("#me-role").textContent = t(`role.${state.me.role}`);
    const status = $("#conn").dataset.state;
    $("#conn-text").textContent = t(`conn.${status}`);
  });
  const tick = () => ($("#clock").textContent = fmtClock(serverNowMs()));
  tick();
  setInterval(tick, 1000);
}

boot();
