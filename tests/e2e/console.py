"""Drives the Sluice console in headless Chromium (Debian's package) through Playwright, as an
operator would: reads the page without a token, with a viewer token, tries to acknowledge an
alert as a viewer, then as an operator; saves screenshots (desktop and phone-sized).

Usage: console.py <base url> <viewer token> <operator token> <alert key to ack> <shots dir>
       console.py --start <base url> <viewer token> <shots dir>
Prints one JSON object with what the page showed; tests/e2e/console.rs compares it with the API.
`--start` reads the page of a pipeline that has seen no traffic yet (issue #29: the router and
dead-letter tiles said "unknown" and "not in this process") and saves console-start.png.
"""
import json
import os
import sys
import time

from playwright.sync_api import sync_playwright

START = sys.argv[1] == "--start"
if START:
    url, viewer, shots = sys.argv[2:5]
else:
    url, viewer, operator, ack_key, shots = sys.argv[1:6]
CHROMIUM = os.environ.get("SLUICE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

READ = """() => {
  const num = (t) => t === "" || t === "-" ? null : Number(t.replace(/[,%]/g, ""));
  const rows = (id) => [...document.querySelectorAll(`#${id} tbody tr[data-key]`)];
  const text = (id) => document.getElementById(id).textContent;
  const stages = {};
  for (const s of ["mqtt", "kafka", "routed", "sinks", "dlq"]) {
    stages[s] = num(document.getElementById("stage-" + s).dataset.total || "");
  }
  return {
    stages,
    lag_total: num(text("lag-total")),
    lag: Object.fromEntries(rows("lag").map((r) => [r.dataset.key, num(r.cells[1].textContent)])),
    replicas_advice: num(text("replicas-advice")),
    rules: rows("rules").map((r) => r.dataset.key),
    rule_rows: Object.fromEntries(rows("rules").map((r) => [r.dataset.key, num(r.cells[3].textContent)])),
    reload: text("reload"),
    alerts: rows("alerts").map((r) => r.dataset.key),
    alerts_shown_as_text: rows("alerts").map((r) => r.cells[0].textContent),
    alerts_count: num(text("alerts-count")),
    markup_from_payloads: document.querySelectorAll("main img, main script").length,
    groups: Object.fromEntries(rows("compliance").map((r) => [r.dataset.key, num(r.cells[1].textContent)])),
    fleet_devices: num(text("fleet-devices")),
    fleet_percent: num(text("fleet-percent")),
    failed: rows("failed").map((r) => r.dataset.key),
    dlq: Object.fromEntries(rows("dlq-reasons").map((r) => [r.dataset.key, num(r.cells[2].textContent)])),
  };
}"""


def wait(page, what, js, arg=None, timeout=30):
    """Polls `js` (a function of `arg`) until it is truthy. Not `wait_for_function`: that
    evaluates strings inside the page, which the console's Content-Security-Policy forbids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.evaluate(js, arg):
            return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}; the page says: " + page.inner_text("#updated"))


def refreshes(page, more):
    """Waits for `more` further refreshes of the page's data."""
    now = int(page.evaluate("() => Number(document.body.dataset.refreshed || 0)"))
    wait(page, f"{more} refreshes", "n => Number(document.body.dataset.refreshed || 0) >= n",
         now + more)


def use_token(page, token):
    page.fill("#token", token)
    page.click("#token-save")
    refreshes(page, 2)


def acknowledge(page, key):
    """Clicks the alert's Acknowledge button (a real click); retries if a redraw raced it."""
    for _ in range(5):
        button = page.evaluate_handle(
            """k => [...document.querySelectorAll('#alerts tbody tr')]
                    .find((r) => r.dataset.key === k)?.querySelector('button.ack')""", key)
        element = button.as_element()
        if element is None:
            raise SystemExit(f"no Acknowledge button for {key}")
        try:
            element.click(timeout=5000)
            return
        except Exception:  # detached by a redraw: find it again
            refreshes(page, 1)
    raise SystemExit("could not click Acknowledge")


def notice(page, words):
    wait(page, f"a notice with {words!r}",
         "w => document.getElementById('notice').textContent.includes(w)", words)
    return page.inner_text("#notice")


def at_start(page):
    """What a newcomer sees before the first message: a router count and 0 dead letters."""
    page.goto(url)
    use_token(page, viewer)
    out = {
        "routers_now": page.inner_text("#replicas-now"),
        "dlq_tile": page.inner_text("#stage-dlq"),
        "dlq_total": page.evaluate("() => document.getElementById('stage-dlq').dataset.total"),
        "dlq_tile_red": page.evaluate(
            "() => document.getElementById('stage-dlq').classList.contains('bad')"),
        "sinks_total": page.evaluate(
            "() => document.getElementById('stage-sinks').dataset.total"),
        "fleet_percent": page.inner_text("#fleet-percent"),
        "start_screenshot": os.path.join(shots, "console-start.png"),
    }
    page.screenshot(path=out["start_screenshot"], full_page=True)
    return out


if START:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        print(json.dumps(at_start(page)))
        browser.close()
    sys.exit(0)

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    script_errors = []
    page.on("pageerror", lambda e: script_errors.append(str(e)))
    page.goto(url)
    refreshes(page, 1)
    out = {"without_token": page.inner_text("#alerts tbody")}
    use_token(page, viewer)
    page.wait_for_selector("#alerts tbody tr[data-key]")
    out["page"] = page.evaluate(READ)

    acknowledge(page, ack_key)
    out["viewer_ack"] = notice(page, "operator")
    refreshes(page, 1)
    out["after_viewer_ack"] = page.inner_text("#alerts tbody")

    use_token(page, operator)
    acknowledge(page, ack_key)
    out["operator_ack"] = notice(page, "Acknowledged")
    wait(page, "the alert shown acknowledged",
         """k => [...document.querySelectorAll('#alerts tbody tr')]
               .find((r) => r.dataset.key === k)?.textContent.includes('acknowledged')""",
         ack_key)
    out["desktop_screenshot"] = os.path.join(shots, "console-desktop.png")
    page.screenshot(path=out["desktop_screenshot"], full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    refreshes(page, 1)
    out["phone_overflow_px"] = page.evaluate(
        "() => document.documentElement.scrollWidth - window.innerWidth")
    out["phone_screenshot"] = os.path.join(shots, "console-phone.png")
    page.screenshot(path=out["phone_screenshot"], full_page=True)
    out["script_errors"] = script_errors
    browser.close()

print(json.dumps(out))
