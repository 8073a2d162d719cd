"""The demo of `scripts/run` (fake GitHub, worker, dashboard) on free ports and a throwaway
SQLite database; Playwright waits until the story reaches its waits, then saves docs/*.png."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PY = str(ROOT / ".venv" / "bin" / "python")
FAKE_REPO = (
    '{"repo": "demo/app", "required_approvals": 1, "required_checks": ["ci"], '
    '"protected_branches": ["main"], "code_owners": ["alice"]}'
)
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--no-first-run"]
DESKTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
WAITS_EXPECTED = 3  # the landing PR of Billing v2 and the two PRs of Faster sign-in


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"{url} did not answer in {seconds} s")


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="gastown-shots-"))
    web, fake = free_port(), free_port()
    password = secrets.token_urlsafe(12)
    env = {
        **os.environ,
        "DEBUG": "1",
        "DATABASE_URL": f"sqlite:///{work}/db.sqlite3",
        "GITHUB_API_URL": f"http://127.0.0.1:{fake}",
        "GITHUB_TOKEN": "demo-token",
        "GASTOWN_SIMULATED_AGENTS": "1",
        "GASTOWN_DEMO": "1",
        "GASTOWN_ACTIVE_TICK_SECONDS": "3",
        "FAKE_GITHUB_PORT": str(fake),
        "DEMO_PASSWORD": password,
    }
    processes: list[subprocess.Popen[bytes]] = []

    def start(*args: str, log: str) -> None:
        with open(work / log, "wb") as out:
            processes.append(
                subprocess.Popen(
                    [PY, "manage.py", *args],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own group: stopped with its children
                )
            )

    def manage(*args: str) -> None:
        subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)

    try:
        start("fake_github", "--port", str(fake), "--repo", FAKE_REPO, log="fake_github.log")
        wait_for(f"http://127.0.0.1:{fake}/_fake/health")
        for command in (["migrate", "--noinput"], ["sync_schedules"], ["create_team_lead_group"]):
            manage(*command)
        manage("seed_demo", "--reset")
        start("qcluster", log="worker.log")
        start("runserver", f"127.0.0.1:{web}", "--noreload", log="web.log")
        wait_for(f"http://127.0.0.1:{web}/accounts/login/")
        shoot(f"http://127.0.0.1:{web}", password)
    finally:
        for process in processes:
            with_group = os.getpgid(process.pid) if process.poll() is None else None
            if with_group is not None:
                os.killpg(with_group, signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        print(f"logs in {work}")


def shoot(base: str, password: str) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=DESKTOP)
        page.goto(f"{base}/accounts/login/")
        page.fill("#id_username", "lead")
        page.fill("#id_password", password)
        page.click("button[type=submit]")
        page.wait_for_load_state()
        town = page.locator("main table a").first.get_attribute("href")
        deadline = time.monotonic() + 300
        while True:
            page.goto(f"{base}{town}awaiting/")
            rows = page.locator("#awaiting-rows tbody tr").count()
            if rows >= WAITS_EXPECTED or time.monotonic() > deadline:
                break
            time.sleep(5)
        print(f"{rows} PR(s) awaiting approval")
        pages = {
            "awaiting-approval": "awaiting/",
            "overview": "",
            "convoys": "convoys/",
        }
        for name, path in pages.items():
            page.goto(f"{base}{town}{path}")
            page.screenshot(path=str(DOCS / f"{name}.png"), full_page=True)
        page.set_viewport_size(PHONE)
        page.goto(f"{base}{town}awaiting/")
        page.screenshot(path=str(DOCS / "awaiting-approval-phone.png"))
        browser.close()


if __name__ == "__main__":
    main()
