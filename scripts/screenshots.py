#!/usr/bin/env python3
"""PNG screenshots of every dashboard under config/grafana/dashboards, for the README.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots] [--range now-1h]

Needs the stack running with the dashboards layer (`make up` on a Docker host that can
pull the Grafana image), Node.js 18 or newer and a Chromium (Debian: `apt-get install
chromium`; or set CHROME=/path/to/chrome). puppeteer-core, pinned below, is installed
from the npm registry into .tools/screenshots on first use; it drives the Chromium that
is there and downloads no browser. The script logs in as the Grafana admin user of
.env (HTTP basic auth on every request), opens each dashboard in kiosk mode, waits
until its queries have finished, and fails naming any dashboard Grafana does not serve
or any panel that shows an error.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bundle.secrets import read_env  # noqa: E402

PUPPETEER = "puppeteer-core@23.9.0"
TOOLS = ROOT / ".tools" / "screenshots"

# Opens each dashboard, waits for the network and the panels to settle, and takes a
# full-page PNG. Panel errors are collected from Grafana's error indicators.
SHOOT = r"""
const puppeteer = require("puppeteer-core");
const [chrome, base, auth, out, range, ...uids] = process.argv.slice(2);
(async () => {
  const browser = await puppeteer.launch({executablePath: chrome, headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"]});
  const failed = [];
  try {
    for (const uid of uids) {
      const page = await browser.newPage();
      await page.setViewport({width: 1600, height: 1000, deviceScaleFactor: 1});
      await page.setExtraHTTPHeaders({Authorization: "Basic " + auth});
      const url = `${base}/d/${uid}?orgId=1&kiosk&from=${range}&to=now`;
      const response = await page.goto(url, {waitUntil: "networkidle0", timeout: 60000});
      if (!response || !response.ok()) { failed.push(`${uid}: HTTP ${response && response.status()}`); continue; }
      await page.waitForFunction(() => !document.querySelector('[aria-label="Panel loading bar"]'), {timeout: 60000})
        .catch(() => failed.push(`${uid}: panels still loading after 60s`));
      await new Promise((resolve) => setTimeout(resolve, 2000));
      const errors = await page.$$eval('[data-testid="data-testid Panel status error"]', (nodes) => nodes.length);
      if (errors) failed.push(`${uid}: ${errors} panel(s) show an error`);
      await page.screenshot({path: `${out}/${uid}.png`, fullPage: true});
      console.log(`${out}/${uid}.png`);
      await page.close();
    }
  } finally {
    await browser.close();
  }
  if (failed.length) { console.error(failed.join("\n")); process.exit(1); }
})();
"""


def die(message: str) -> None:
    print(f"screenshots: {message}", file=sys.stderr)
    sys.exit(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    parser.add_argument("--range", default="now-1h", help="start of the time range (Grafana syntax)")
    args = parser.parse_args()

    dashboards = sorted((ROOT / "config" / "grafana" / "dashboards").rglob("*.json"))
    if not dashboards:
        die("no dashboards under config/grafana/dashboards: render with layers.dashboards on")
    uids = [json.loads(p.read_text(encoding="utf-8"))["uid"] for p in dashboards]

    compose_env = read_env(ROOT / "config" / "compose.env")
    secrets = read_env(ROOT / ".env")
    base = f"http://{compose_env['BIND_ADDRESS']}:{compose_env['GRAFANA_PORT']}"
    user, password = compose_env["GRAFANA_ADMIN_USER"], secrets.get("GRAFANA_ADMIN_PASSWORD", "")
    try:
        missing = [uid for uid in uids
                   if requests.get(f"{base}/api/dashboards/uid/{uid}", auth=(user, password), timeout=10).status_code != 200]
    except requests.RequestException as exc:
        die(f"Grafana is not reachable at {base} ({exc}); start the stack with the dashboards layer")
    if missing:
        die(f"Grafana at {base} does not serve {', '.join(missing)}: is config/ the one the stack runs?")

    chrome = os.environ.get("CHROME") or shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    if not chrome:
        die("no Chromium found: apt-get install chromium, or set CHROME")
    if not shutil.which("node"):
        die("Node.js 18+ is needed (apt-get install nodejs)")
    if not (TOOLS / "node_modules" / "puppeteer-core").exists():
        TOOLS.mkdir(parents=True, exist_ok=True)
        subprocess.run(["npm", "install", "--prefix", str(TOOLS), "--no-save", "--no-audit", "--no-fund", PUPPETEER],
                       check=True, env=dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1"))
    args.out.mkdir(parents=True, exist_ok=True)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    result = subprocess.run(["node", "-e", SHOOT, chrome, base, token, str(args.out), args.range, *uids],
                            env=dict(os.environ, NODE_PATH=str(TOOLS / "node_modules")))
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
