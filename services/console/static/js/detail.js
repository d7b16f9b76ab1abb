// Warning detail: evidence, message history (CAP or JSON), coverage, acknowledgements, actions.
import { $, clear, h, debounce } from "./dom.js";
import { api } from "./api.js";
import { t, onLangChange } from "./i18n.js";
import { state, on, can } from "./state.js";
import { countyName, fmtInt, fmtTime, hazardName, levelBadge, townName } from "./format.js";
import { runAction, isSelfApproval } from "./actions.js";

let current = null; // the last detail document shown
let requestSeq = 0;
let capOpen = null; // message id whose CAP XML is shown inline
const capTexts = new Map(); // `${message_id}|${approval}` -> the XML served by /cap/… (dispatch's renderer)

const capKey = (m) => `${m.message_id}|${m.approval}`;

async function toggleCap(m) {
  capOpen = capOpen === m.message_id ? null : m.message_id;
  if (capOpen && !capTexts.has(capKey(m))) {
    try {
      const response = await fetch(m.cap_url, { credentials: "same-origin", headers: { Accept: "application/cap+xml" } });
      capTexts.set(capKey(m), response.ok ? await response.text() : `${response.status} ${response.statusText}`);
    } catch (error) {
      capTexts.set(capKey(m), String(error));
    }
  }
  render();
}

async function load(warningId) {
  const seq = ++requestSeq;
  try {
    const detail = await api(`/api/warnings/${encodeURIComponent(warningId)}`);
    if (seq !== requestSeq || state.selected !== warningId) return;
    current = detail;
    render();
  } catch (error) {
    if (seq === requestSeq) {
      current = null;
      clear($("#tab-detail")).append(h("p", { class: "error" }, error.message));
    }
  }
}

const reload = debounce(() => state.selected && load(state.selected), 150);

function table(head, rows, cls = "") {
  return h("table", { class: `grid ${cls}`.trim() },
    h("thead", {}, h("tr", {}, head.map((key) => h("th", {}, t(key))))),
    h("tbody", {}, rows));
}

function section(titleKey, ...content) {
  return h("section", { class: "detail-block" }, h("h3", {}, t(titleKey)), ...content);
}

function actionsBar(d) {
  const s = d.summary;
  const held = d.held;
  const buttons = [];
  if (can("acknowledge")) {
    buttons.push(h("button", { type: "button", class: "ghost", dataset: { action: "acknowledge" }, onclick: () => runAction("acknowledge", s.warning_id) }, t("action.acknowledge")));
  }
  if (held && can("approve")) {
    const self = isSelfApproval(held);
    buttons.push(h("button", {
      type: "button", class: "primary", dataset: { action: "approve" }, disabled: self,
      title: self ? t("action.selfApproval") : null, onclick: () => runAction("approve", s.warning_id),
    }, t("action.approve")));
    buttons.push(h("button", { type: "button", class: "ghost", dataset: { action: "reject" }, onclick: () => runAction("reject", s.warning_id) }, t("action.reject")));
  }
  if ((s.active || s.held) && can("cancel")) {
    buttons.push(h("button", { type: "button", class: "danger", dataset: { action: "cancel" }, onclick: () => runAction("cancel", s.warning_id) }, t("action.cancel")));
  }
  const self = held && isSelfApproval(held) && can("approve") ? h("p", { class: "hint warn" }, t("action.selfApproval")) : null;
  return h("div", { class: "detail-actions" }, buttons, self);
}

function evidenceBlock(d) {
  const rows = d.evidence.map((e) => h("tr", {},
    h("td", {}, e.station_id),
    h("td", {}, e.metric),
    h("td", { class: "num" }, e.value),
    h("td", { class: "num" }, e.threshold ?? "–"),
    h("td", { class: "num" }, e.window_s ? `${Math.round(e.window_s / 60)} min` : "–"),
    h("td", {}, t(`detail.${e.basis}`)),
  ));
  return section("detail.evidence",
    h("p", { class: "muted" }, d.rule_id ? `${t("detail.rule")}: ${d.rule_id}` : "", d.reason ? ` · ${d.reason}` : ""),
    rows.length ? table(["detail.station", "detail.metric", "detail.value", "detail.threshold", "detail.window", "detail.basis"], rows)
      : h("p", { class: "muted" }, t("detail.noEvidence")));
}

function historyBlock(d) {
  const rows = d.history.map((m) => h("tr", { dataset: { messageId: m.message_id } },
    h("td", {}, `v${m.version}`),
    h("td", {}, h("span", { class: `msgtype mt-${m.msg_type}` }, t(`msg.${m.msg_type}`))),
    h("td", {}, levelBadge(m.level, "small")),
    h("td", {}, t(`approval.${m.approval}`), m.approved_by ? ` (${m.approved_by})` : ""),
    h("td", {}, fmtTime(m.sent_at)),
    h("td", {}, fmtTime(m.expires_at)),
    h("td", { class: "links" },
      m.cap_url ? h("button", {
        type: "button", class: `link cap-toggle${capOpen === m.message_id ? " open" : ""}`, title: t("detail.capTitle"),
        dataset: { cap: m.message_id }, onclick: () => toggleCap(m),
      }, "CAP") : null,
      m.cap_url ? " " : null,
      m.cap_url ? h("a", { href: m.cap_url, target: "_blank", rel: "noopener", title: t("detail.capOpen") }, "↗") : null,
      m.cap_url ? " · " : null,
      h("a", { href: m.json_url, target: "_blank", rel: "noopener" }, "JSON")),
  ));
  // the newest copy of the open message (held, then approved) is what /cap/… serves
  const open = d.history.filter((m) => m.message_id === capOpen && m.cap_url).pop();
  const cap = open && capTexts.has(capKey(open))
    ? h("div", { class: "cap-box" },
      h("p", { class: "muted small" }, `${t("detail.capTitle")} · ${open.message_id}`),
      h("pre", { class: "cap-xml", dataset: { messageId: open.message_id } }, capTexts.get(capKey(open))))
    : null;
  return section("detail.history", table(["detail.version", "detail.type", "detail.level", "detail.approval", "detail.sent", "detail.expires", "detail.links"], rows), cap);
}

function coverageBlock(d) {
  const cov = d.coverage;
  const receipts = Object.entries(d.receipts || {});
  const parts = [];
  if (!cov) {
    parts.push(h("p", { class: "muted" }, t("detail.noCoverage")));
  } else {
    const rows = cov.channels.map((c) => {
      const share = c.reached_share === null ? null : Math.round(c.reached_share * 1000) / 10;
      return h("tr", { dataset: { channel: c.channel } },
        h("td", {}, c.channel),
        h("td", { class: "num" }, fmtInt(c.targeted_population)),
        h("td", { class: "num" }, fmtInt(c.reached_population)),
        h("td", { class: "share" }, share === null ? "–" : h("span", { class: "bar" }, h("span", { class: "fill", dataset: { pct: share } }), `${share}%`)),
        h("td", { class: "num" }, `${fmtInt(c.delivered)}/${fmtInt(c.targets)}`),
        h("td", { class: "num" }, fmtInt(c.failed)),
      );
    });
    parts.push(table(["detail.channel", "detail.targeted", "detail.reached", "detail.share", "detail.delivered", "detail.failed"], rows, "coverage"));
    parts.push(h("p", { class: cov.unreached_townships.length ? "warn" : "muted" },
      cov.unreached_townships.length
        ? `${t("detail.unreached")}: ${cov.unreached_townships.map(townName).join("、")}`
        : t("detail.allReached")));
  }
  if (receipts.length) {
    parts.push(h("p", { class: "muted small" }, `${t("detail.receipts")}: `,
      receipts.map(([channel, counts]) => `${channel} ${Object.entries(counts).map(([k, v]) => `${k}=${v}`).join(" ")}`).join(" · ")));
  }
  return section("detail.coverage", ...parts);
}

function render() {
  const root = clear($("#tab-detail"));
  const d = current;
  if (!d) {
    root.append(h("p", { class: "muted empty" }, t("detail.empty")));
    return;
  }
  const s = d.summary;
  root.dataset.warningId = s.warning_id;
  root.append(
    h("header", { class: `detail-head lvl-${s.level}` },
      h("div", { class: "line1" },
        levelBadge(s.level),
        h("span", { class: "hazard" }, hazardName(s.hazard)),
        s.active || !s.held ? h("span", { class: `state ${s.active ? "on" : "off"}` }, t(s.active ? "detail.active" : "detail.ended")) : null,
        s.held ? h("span", { class: "tag held" }, t("detail.held")) : null,
      ),
      h("h2", {}, s.headline),
      h("p", { class: "muted" }, s.origin === "manual" ? t("detail.manual", { who: s.issued_by || "?" }) : t("detail.rules"),
        ` · ${s.warning_id}`),
    ),
    actionsBar(d),
    section("detail.townships",
      h("p", {}, d.townships.map((town) => `${town.name_zh}`).join("、")),
      h("p", { class: "muted" }, s.county_codes.map(countyName).join("、"),
        ` · ${t("map.population")} ${fmtInt(d.townships.reduce((sum, town) => sum + (town.population || 0), 0))}`)),
    evidenceBlock(d),
    historyBlock(d),
    coverageBlock(d),
    section("detail.acks", d.acks.length
      ? h("ul", { class: "acks" }, d.acks.map((a) => h("li", {}, `${a.actor} (${t(`role.${a.role}`)}) · ${fmtTime(a.at)}`)))
      : h("p", { class: "muted" }, t("detail.noAcks"))),
    d.refusals.length ? section("detail.refusals", h("ul", { class: "refusals" }, d.refusals.map((r) => h("li", { class: "error" }, r.detail)))) : "",
  );
  for (const fill of root.querySelectorAll(".bar .fill")) fill.style.width = `${Math.min(100, Number(fill.dataset.pct))}%`;
}

export function initDetail() {
  on("select", (warningId) => {
    if (state.selected !== warningId) capOpen = null;
    state.selected = warningId;
    current = null;
    render();
    load(warningId);
  });
  const touching = (data) => data && state.selected && (data.warning_id === state.selected || (data.warning && data.warning.warning_id === state.selected));
  for (const topic of ["sse:warning", "sse:coverage", "sse:delivery", "sse:ack", "sse:rejected"]) {
    on(topic, (data) => {
      if (topic === "sse:rejected" ? data.record && data.record.command : touching(data)) reload();
    });
  }
  on("refresh", reload);
  onLangChange(render);
  render();
}
