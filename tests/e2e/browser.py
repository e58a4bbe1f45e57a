"""A real browser looks at pages: headless Chromium (Debian's `chromium` and `chromium-driver`)
driven through Selenium, run where the cluster's addresses are reachable.

Run as a program (`python3 tests/e2e/browser.py < REQUEST > RESULT`), so that the tests can
start it inside the lab's network namespace. REQUEST is JSON:

    {"hosts": {"frontend.lb.demo": "10.210.9.20", ...},   # names the browser resolves so
     "ca": "/path/ca.pem" or null,                         # a CA it trusts (NSS, like a user)
     "pages": [{"name": "consul", "url": "...",
                "storage": {"consul:token": "..."},         # localStorage, set on the page's
                                                            # origin before it is opened
                "expect": ["fib", "passing"],               # text the rendered page must show
                "absent": ["Log in"],                       # and text it must not show
                "screenshot": "/path/consul.png"}]}

RESULT is one JSON object per page: name, url (where the browser ended), title, text (the
rendered DOM's innerText), missing (expected text that never showed), present (absent text that
still showed) and screenshot. Each
page is given WAIT seconds to show its text (a guard against a hang, not a measurement).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

WAIT = 60  # seconds a page has to show what it must
WINDOW = (1280, 800)
# Chromium's own traffic (updates, sync, safe browsing, metrics) stays off: the browser talks to
# the cluster only.
QUIET = ("--no-first-run", "--no-default-browser-check", "--disable-extensions", "--disable-sync",
         "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
         "--disable-domain-reliability", "--metrics-recording-only", "--no-pings",
         "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication")


def trust(home: Path, ca: str) -> None:
    """Make the browser of this HOME trust CA, as a user would (certutil into its NSS db)."""
    db = home / ".pki" / "nssdb"
    db.mkdir(parents=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-N", "--empty-password"], check=True)
    subprocess.run(["certutil", "-d", f"sql:{db}", "-A", "-t", "C,,", "-n", "hashicluster", "-i", ca],
                   check=True)


def browser(hosts: dict[str, str]) -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={WINDOW[0]},{WINDOW[1]}", *QUIET):
        options.add_argument(arg)
    # The cluster's names, and no other: the browser resolves nothing outside the lab.
    rules = [f"MAP {name} {address}" for name, address in hosts.items()]
    rules += ["MAP * ~NOTFOUND", "EXCLUDE localhost"]
    options.add_argument("--host-resolver-rules=" + ", ".join(rules))
    return webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)


def look(driver: Any, page: dict[str, Any]) -> dict[str, Any]:
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    url = page["url"]
    storage = page.get("storage") or {}
    if storage:  # localStorage belongs to the page's origin: open it, set the items, open it again
        driver.get(url)
        for key, value in storage.items():
            driver.execute_script("window.localStorage.setItem(arguments[0], arguments[1]);", key, value)
    driver.get(url)
    expect = list(page.get("expect") or [])
    absent = list(page.get("absent") or [])

    def text() -> str:
        return str(driver.execute_script("return document.body ? document.body.innerText : '';"))

    def shows_what_it_must(shown: str) -> bool:
        return all(e in shown for e in expect) and not any(a in shown for a in absent)

    with contextlib.suppress(TimeoutException):  # what it shows then is reported
        WebDriverWait(driver, WAIT, poll_frequency=0.25).until(lambda _: shows_what_it_must(text()))
    shown = text()
    if page.get("screenshot"):
        driver.save_screenshot(page["screenshot"])
    return {"name": page["name"], "url": driver.current_url, "title": driver.title, "text": shown,
            "missing": [e for e in expect if e not in shown], "present": [a for a in absent if a in shown],
            "screenshot": page.get("screenshot")}


def main() -> None:
    request = json.load(sys.stdin)
    with tempfile.TemporaryDirectory(prefix="hashicluster-browser-") as tmp:
        home = Path(tmp)
        os.environ["HOME"] = str(home)  # the browser's profile and NSS db: this run's own
        if request.get("ca"):
            trust(home, request["ca"])
        driver = browser(request.get("hosts") or {})
        try:
            results = [look(driver, page) for page in request["pages"]]
        finally:
            driver.quit()
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
