"""Opens the --find-max HTML report in headless Chromium (Debian's package, through
Playwright) and prints what a reader sees: how many plots and plotted points, the knee line,
the plan and the step rows. Saves a full-page screenshot.

Usage: report.py <report.html> <screenshot.png>
"""
import json
import os
import pathlib
import sys

from playwright.sync_api import sync_playwright

html, shot = sys.argv[1:3]
CHROMIUM = os.environ.get("SLUICE_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": 1360, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(pathlib.Path(html).resolve().as_uri())
    out = {
        "plots": page.evaluate("() => document.querySelectorAll('figure svg').length"),
        "plot_points": page.evaluate("() => document.querySelectorAll('figure svg circle').length"),
        "knee": page.inner_text("#knee"),
        "limit": page.inner_text("#limit"),
        "plan": page.inner_text("#plan"),
        "steps": page.evaluate("() => document.querySelectorAll('#steps tr').length - 1"),
        "external": page.evaluate(
            "() => [...document.querySelectorAll('script[src],link[href],img[src]')].length"),
        "errors": errors,
    }
    page.screenshot(path=shot, full_page=True)
    browser.close()
print(json.dumps(out))
