// Operator actions (acknowledge, approve, reject, cancel) with the reason dialog.
import { $ } from "./dom.js";
import { api } from "./api.js";
import { t } from "./i18n.js";
import { state } from "./state.js";
import { toast } from "./toast.js";
import { areaText, hazardName } from "./format.js";

const NEEDS_REASON = new Set(["cancel", "reject"]);

/** The two-person rule, as the server applies it (the button is disabled, not hidden). */
export function isSelfApproval(item) {
  return Boolean(state.me && item && item.origin === "manual" && item.level === "red" && item.issued_by === state.me.username);
}

function describe(warningId) {
  const w = state.warnings.get(warningId);
  return w ? `${hazardName(w.hazard)} ${t(`level.${w.level}`)} · ${areaText(w.township_codes)}` : warningId;
}

/** Ask for confirmation (and a reason where required); resolves to the reason or null. */
function confirmDialog(action, warningId) {
  const dialog = $("#reason-dialog");
  const needsReason = NEEDS_REASON.has(action);
  $("#reason-title").textContent = t(action === "cancel" ? "dialog.cancelTitle" : action === "reject" ? "dialog.rejectTitle" : "dialog.approveTitle");
  $("#reason-target").textContent = describe(warningId);
  $("#reason-label").hidden = !needsReason;
  $("#reason-text").value = "";
  $("#reason-error").hidden = true;
  $("#reason-ok").className = action === "approve" ? "primary" : "danger";
  return new Promise((resolve) => {
    const form = $("#reason-form");
    const finish = (value) => {
      form.removeEventListener("submit", onSubmit);
      $("#reason-back").removeEventListener("click", onBack);
      dialog.removeEventListener("cancel", onBack);
      dialog.close();
      resolve(value);
    };
    const onSubmit = (event) => {
      event.preventDefault();
      const reason = $("#reason-text").value.trim();
      if (needsReason && !reason) {
        $("#reason-error").textContent = t("dialog.reasonRequired");
        $("#reason-error").hidden = false;
        return;
      }
      finish(reason);
    };
    const onBack = (event) => {
      if (event) event.preventDefault();
      finish(null);
    };
    form.addEventListener("submit", onSubmit);
    $("#reason-back").addEventListener("click", onBack);
    dialog.addEventListener("cancel", onBack);
    dialog.showModal();
    if (needsReason) $("#reason-text").focus();
  });
}

export async function runAction(action, warningId) {
  let reason = "";
  if (action !== "acknowledge") {
    const answer = await confirmDialog(action, warningId);
    if (answer === null) return false;
    reason = answer;
  }
  try {
    await api(`/api/warnings/${encodeURIComponent(warningId)}/${action}`, { method: "POST", body: { reason } });
    toast(t("action.published", { action: t(`action.${action}`) }), "ok");
    return true;
  } catch (error) {
    toast(t("action.refused", { detail: error.message }), "error");
    return false;
  }
}
