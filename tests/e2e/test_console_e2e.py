"""The duty officer's console in a real browser.

Story: a duty officer signs in and starts a replay; each warning must show in the list and
on the map within 1 s of its emission (measured: the replay stub's publication time vs.
the moment a MutationObserver in the page sees the element). The replay also issues a
manual red warning through the rules lifecycle, which holds it for a second person; an
approver approves it from the queue; an admin cancels it (a reason is mandatory) and
checks the audit log. Screenshots of each state go to ``test-artifacts/e2e/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from services.console.testing import DEFAULT_PASSWORD
from tests.e2e.conftest import LiveConsole, wait_until

pytestmark = pytest.mark.e2e

# Records when elements first appear: list items by warning id, map cells by level.
OBSERVER = """
window.__ewSeen = {};
new MutationObserver((mutations) => {
  const now = Date.now();
  const note = (key) => { if (!(key in window.__ewSeen)) window.__ewSeen[key] = now; };
  for (const m of mutations) {
    if (m.type === "attributes" && m.target.classList && m.target.classList.contains("cell")) {
      note(`map:${m.target.dataset.code}:${m.target.dataset.level}`);
    }
    for (const node of m.addedNodes || []) {
      if (node.nodeType === 1 && node.matches("li[data-warning-id]")) note(`list:${node.dataset.warningId}`);
    }
  }
}).observe(document, { subtree: true, childList: true, attributes: true, attributeFilter: ["data-level"] });
"""


def sign_in(page: Any, base_url: str, username: str) -> None:
    page.goto(base_url)
    page.wait_for_selector("#login-form", state="visible")
    page.fill("#login-username", username)
    page.fill("#login-password", DEFAULT_PASSWORD)
    page.click("#login-submit")
    page.wait_for_selector("#app-view", state="visible")
    page.wait_for_selector("#conn[data-state=live]", timeout=5000)


def sign_out(page: Any) -> None:
    page.click("#logout")
    page.wait_for_selector("#login-form", state="visible")


def cell_level(page: Any, code: str) -> str:
    level: str = page.get_attribute(f'.cell[data-code="{code}"]', "data-level")
    return level


def test_duty_officer_flow(live_console: LiveConsole, browser: Any, artifacts: Path) -> None:
    stub = live_console.stub
    assert stub is not None
    a, b, c, d = live_console.townships
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, locale="zh-CN")
    context.add_init_script(OBSERVER)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # 1. sign in as the duty officer
    sign_in(page, live_console.base_url, "li.na")
    page.wait_for_selector(".cell")
    page.screenshot(path=str(artifacts / "01-signed-in.png"))

    # 2. start the replay; each warning reaches the list and the map within 1 s of emission
    page.click("[data-tab=ops]")
    page.select_option("#r-speed", "10")
    page.click("#r-start")
    expected = {  # message id of each Alert → (township, level) it must colour
        f"rainstorm-{a}": (a, "yellow"),
        f"short_heavy_rain-{b}": (b, "blue"),
        f"geohazard-{c}": (c, "orange"),
    }
    wait_until(lambda: len(stub.emitted) >= 5, timeout_s=10)
    seen: dict[str, int] = {}

    def all_seen() -> bool:
        seen.update(page.evaluate("window.__ewSeen"))
        return all(
            any(k == f"list:{mid.rsplit('.v', 1)[0]}" for k in seen) and f"map:{town}:{level}" in seen
            for mid, (town, level) in (
                (m, v) for m in stub.emitted for p, v in expected.items() if m.startswith(p) and m.endswith(".v1")
            )
        )

    wait_until(all_seen, timeout_s=5)
    latencies: dict[str, tuple[float, float]] = {}
    for message_id, emitted_at in stub.emitted.items():
        if not message_id.endswith(".v1"):
            continue
        prefix = next(p for p in expected if message_id.startswith(p))
        town, level = expected[prefix]
        to_list = seen[f"list:{message_id[:-3]}"] / 1000 - emitted_at
        to_map = seen[f"map:{town}:{level}"] / 1000 - emitted_at
        latencies[message_id] = (to_list, to_map)
    print("emission → DOM (list s, map s):", {k: (round(x, 3), round(y, 3)) for k, (x, y) in latencies.items()})
    assert len(latencies) == 3
    assert all(0 <= x < 1.0 and 0 <= y < 1.0 for x, y in latencies.values()), latencies
    page.click("#warning-list li.warning >> nth=0")
    wait_until(lambda: cell_level(page, a) == "orange")  # the Update escalated it
    page.wait_for_selector("#tab-detail .detail-head")
    page.screenshot(path=str(artifacts / "02-replay-live.png"))

    # 3. the manual red warning waits for a second person; the duty officer cannot approve it
    page.wait_for_selector("#queue li.queue-item", timeout=5000)
    assert page.locator("#queue [data-action=approve]").count() == 0
    sign_out(page)
    sign_in(page, live_console.base_url, "wang.fang")
    item = page.locator("#queue li.queue-item").first
    assert "剩余" in item.locator(".countdown").inner_text()
    page.screenshot(path=str(artifacts / "03-approval-queue.png"))
    item.locator("[data-action=approve]").click()
    page.wait_for_selector("#reason-dialog[open]")
    page.click("#reason-ok")
    page.wait_for_selector("#queue li.empty", timeout=5000)
    wait_until(lambda: cell_level(page, d) == "red")

    # 4. an admin cancels it; the reason is mandatory
    sign_out(page)
    sign_in(page, live_console.base_url, "chen.admin")
    page.click(f'#warning-list li[data-warning-id^="manual-flood-{d}"]')
    page.wait_for_selector("#tab-detail [data-action=cancel]")
    page.click("#tab-detail [data-action=cancel]")
    page.wait_for_selector("#reason-dialog[open]")
    page.click("#reason-ok")
    assert page.is_visible("#reason-error")
    page.fill("#reason-text", "演练结束，水位已回落")
    page.click("#reason-ok")
    wait_until(lambda: cell_level(page, d) == "orange", timeout_s=5)  # the geo-hazard warning still covers it
    page.wait_for_selector("#tab-detail .msgtype.mt-Cancel")
    page.screenshot(path=str(artifacts / "04-cancelled.png"))

    # 5. the audit log shows who did what, and the outcome
    page.click("[data-tab=audit]")
    page.wait_for_selector("#audit tbody[data-action=cancel][data-outcome=applied]", timeout=5000)
    rows = page.locator("#audit tbody").all_inner_texts()
    joined = "\n".join(rows)
    for needle in ("wang.fang", "chen.admin", "li.na", "approve", "cancel", "replay", "演练结束"):
        assert needle in joined, needle
    assert page.locator("#audit tbody[data-action=approve][data-outcome=applied]").count() == 1
    page.screenshot(path=str(artifacts / "05-audit.png"))

    # 6. English labels
    page.click("#lang-toggle")
    page.wait_for_selector("text=Audit log")
    page.click("[data-tab=detail]")
    page.screenshot(path=str(artifacts / "06-english.png"))
    assert errors == []
    context.close()


def test_a_viewer_sees_no_actions(live_console: LiveConsole, browser: Any, artifacts: Path) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    sign_in(page, live_console.base_url, "zhao.viewer")
    assert page.is_hidden("[data-tab=compose]")
    assert page.is_hidden("[data-tab=audit]")
    page.click("#warning-list li.warning >> nth=0")
    page.wait_for_selector("#tab-detail .detail-head")
    assert page.locator("#tab-detail [data-action]").count() == 0
    page.screenshot(path=str(artifacts / "07-viewer.png"))
    context.close()
