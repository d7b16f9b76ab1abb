// The approval queue with a countdown to each hold deadline.
import { $, clear, h } from "./dom.js";
import { t, onLangChange } from "./i18n.js";
import { state, on, emit, can, serverNowMs } from "./state.js";
import { areaText, fmtDuration, hazardName, levelBadge } from "./format.js";
import { runAction, isSelfApproval } from "./actions.js";

function renderQueue() {
  const list = $("#queue");
  clear(list);
  $("#queue-count").textContent = String(state.queue.length);
  $("#queue-count").classList.toggle("alert", state.queue.length > 0);
  if (!state.queue.length) {
    list.append(h("li", { class: "empty" }, t("queue.empty")));
    return;
  }
  for (const item of state.queue) {
    const self = isSelfApproval(item);
    list.append(
      h("li", { class: `queue-item lvl-${item.level}`, dataset: { warningId: item.warning_id, messageId: item.message_id } },
        h("div", { class: "line1", onclick: () => emit("select", item.warning_id) },
          levelBadge(item.level),
          h("span", { class: "hazard" }, hazardName(item.hazard)),
          h("span", { class: `msgtype mt-${item.msg_type}` }, t(`msg.${item.msg_type}`)),
          h("span", { class: "countdown", dataset: { deadline: item.deadline_at || "" } }),
        ),
        h("div", { class: "line2", onclick: () => emit("select", item.warning_id) }, areaText(item.township_codes)),
        h("div", { class: "line3 muted" }, item.headline, item.issued_by ? ` · ${t("queue.by", { who: item.issued_by })}` : ""),
        can("approve") ? h("div", { class: "actions" },
          h("button", {
            type: "button", class: "primary small", disabled: self, title: self ? t("action.selfApproval") : null,
            dataset: { action: "approve" },
            onclick: () => runAction("approve", item.warning_id),
          }, t("action.approve")),
          h("button", { type: "button", class: "ghost small", dataset: { action: "reject" }, onclick: () => runAction("reject", item.warning_id) }, t("action.reject")),
        ) : null,
      ),
    );
  }
  tick();
}

function tick() {
  const now = serverNowMs();
  for (const el of document.querySelectorAll("#queue .countdown")) {
    if (!el.dataset.deadline) {
      el.textContent = "";
      continue;
    }
    const remaining = (Date.parse(el.dataset.deadline) - now) / 1000;
    el.textContent = remaining >= 0 ? t("queue.deadline", { time: fmtDuration(remaining) }) : t("queue.overdue", { time: fmtDuration(remaining) });
    el.classList.toggle("urgent", remaining < 120);
    el.classList.toggle("overdue", remaining < 0);
  }
}

export function initQueue() {
  on("queue", renderQueue);
  onLangChange(renderQueue);
  setInterval(tick, 1000);
}
