"""Open a Snakemake HTML report in a real headless Chromium (Debian's `chromium` package).

The report is a JavaScript application: its pages exist only once a browser has run it.
:func:`render_report` loads a copy of the report with a small script appended that opens
each result's page in turn (the report's own ``app.showResultInfo``) and collects what
the browser shows there, then reads that back from the DOM and takes a screenshot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                  "--disable-dev-shm-usage",      # containers often have a tiny /dev/shm
                  "--virtual-time-budget=20000", "--window-size=1280,900"]

# Appended to the report: visit every result's page, record the text the browser renders.
VISIT_RESULTS = """
<script>
window.addEventListener("load", () => {
  const paths = Object.keys(results), shown = {};
  let i = -1;
  const step = () => {
    if (i >= 0) shown[paths[i]] = document.querySelector("#app").innerText;
    if (++i < paths.length) { app.showResultInfo(paths[i]); setTimeout(step, 300); return; }
    app.setView({navbarMode: "menu"});
    const out = document.createElement("pre");
    out.id = "rendered-results";
    out.hidden = true;
    out.textContent = JSON.stringify(shown);
    document.body.appendChild(out);
  };
  setTimeout(step, 500);
});
</script>
"""


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.skip("no headless browser: apt-get install chromium (.ci/run does)")
    return path


def render_report(report: Path, workdir: Path) -> tuple[dict[str, str], Path]:
    """Render ``report`` in headless Chromium.

    Returns:
        result path -> the text the browser shows on that result's page, and the path of
        a screenshot of the report's start page.
    """
    page = workdir / "report-visited.html"
    page.write_text(report.read_text() + VISIT_RESULTS)
    common = [chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={workdir / 'chromium-profile'}"]
    dom = subprocess.run([*common, "--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=180)
    found = re.search(r'<pre id="rendered-results" hidden="">(.*?)</pre>', dom.stdout, re.S)
    assert found, f"the report did not finish rendering in Chromium:\n{dom.stderr[-2000:]}"
    unescaped = (found.group(1).replace("&lt;", "<").replace("&gt;", ">")
                 .replace("&quot;", '"').replace("&amp;", "&"))
    screenshot = workdir / "report.png"
    shot = subprocess.run([*common, f"--screenshot={screenshot}", report.as_uri()],
                          capture_output=True, text=True, timeout=180)
    assert screenshot.exists(), f"Chromium wrote no screenshot:\n{shot.stderr[-2000:]}"
    return json.loads(unescaped), screenshot
