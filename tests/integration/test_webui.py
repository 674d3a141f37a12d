"""The web UI in a real browser: Playwright driving Debian's chromium, headless.

The UI is served by a small aiohttp server made here with ``mesos.webui.add_routes``
that forwards ``/master/*``, ``/api/*`` and ``/metrics/*`` to a real master, as the
master itself will once it serves the UI. Agents are reached by the page directly
(JSONP), as in production. A screenshot of the dashboard is kept in tests/artifacts/.

Browser tests need Debian's chromium (scripts/install-chromium.sh) and the
``playwright`` package (``pip install -e '.[test]'``); without them they fail, saying
how to install them.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from mesos.testing.cluster import Cluster, free_port, wait_for
from mesos.webui import STATIC_DIR, add_routes

CHROMIUM = os.environ.get("MESOS_TEST_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
BIN = Path(sys.executable).parent
WAIT_MS = 30_000  # generous: two cores shared with other test runs


# --------------------------------------------------------------------------- serving


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def ui_app(master: str, forwarded: list[str]) -> web.Application:
    """The UI's routes, plus the master's endpoints forwarded to ``master`` (each path
    forwarded is appended to ``forwarded``)."""
    app = web.Application()
    add_routes(app)
    session: aiohttp.ClientSession | None = None

    async def forward(request: web.Request) -> web.Response:
        nonlocal session
        forwarded.append(request.path)
        if session is None:
            session = aiohttp.ClientSession()
        headers = {k: v for k, v in request.headers.items() if k in ("Content-Type", "Accept")}
        async with session.request(request.method, f"http://{master}{request.rel_url}",
                                   data=await request.read(), headers=headers) as answer:
            body = await answer.read()
            content_type = answer.headers.get("Content-Type", "application/octet-stream")
            return web.Response(status=answer.status, body=body,
                                headers={"Content-Type": content_type})

    async def close(_: web.Application) -> None:
        if session is not None:
            await session.close()

    for prefix in ("/master", "/api", "/metrics"):
        app.router.add_route("*", prefix + "/{tail:.*}", forward)
    app.on_cleanup.append(close)
    return app


async def operator_call(cluster: Cluster, body: dict[str, Any]) -> tuple[int, str]:
    """One v1 operator call straight to the master: (status, body text)."""
    async with aiohttp.ClientSession() as session, session.post(
            f"http://{cluster.master_url}/api/v1", json=body) as answer:
        return answer.status, await answer.text()


# --------------------------------------------------------------------------- no browser


async def test_add_routes_serves_the_page_and_every_module_it_imports() -> None:
    app = web.Application()
    add_routes(app)
    runner, base = await serve(app)
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/") as page:
                assert page.status == 200
                assert page.content_type == "text/html"
                html = await page.text()
            assert 'src="static/app.js"' in html and 'href="static/style.css"' in html
            modules = sorted(p.name for p in STATIC_DIR.glob("*.js"))
            assert "app.js" in modules
            for name in modules:
                async with session.get(f"{base}/static/{name}") as asset:
                    assert asset.status == 200, name
                    # Browsers refuse to run a module served with a non-JavaScript type.
                    assert asset.content_type in ("text/javascript", "application/javascript"), name
                    source = await asset.text()
                for imported in re.findall(r'from "\./([\w.-]+)"', source):
                    assert (STATIC_DIR / imported).is_file(), f"{name} imports missing {imported}"
            async with session.get(f"{base}/static/../__init__.py") as escape:
                assert escape.status in (403, 404)
    finally:
        await runner.cleanup()


def test_add_routes_refuses_an_app_that_already_routes_root() -> None:
    async def other(request: web.Request) -> web.Response:
        return web.Response(text="other")

    app = web.Application()
    app.router.add_get("/", other)
    with pytest.raises(RuntimeError, match="already routed"):
        add_routes(app)


@pytest.mark.slow
def test_the_master_serves_the_ui_at_its_root(tmp_path: Path) -> None:
    """A real mesos-master: / is the UI's page, its modules come from /static."""
    import urllib.request

    with Cluster(tmp_path, agents=0) as c:
        with urllib.request.urlopen(f"http://{c.master_url}/", timeout=10) as page:
            assert page.headers["Content-Type"].startswith("text/html")
            html = page.read().decode()
        modules = re.findall(r'src="/?(static/[^"]+\.js)"', html)
        assert modules, html[:500]
        for module in modules:
            with urllib.request.urlopen(f"http://{c.master_url}/{module}", timeout=10) as js:
                assert "javascript" in js.headers["Content-Type"]
                assert js.read()


# --------------------------------------------------------------------------- browser


def _playwright() -> Any:
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.fail("The web UI's browser tests need playwright: pip install -e '.[test]' "
                    "(its browsers are not needed: Debian's chromium is used)")
    return async_playwright


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path, agents=2) as c:
        yield c


@dataclass
class UI:
    page: Any  # playwright's Page
    base: str  # the UI's URL
    errors: list[str]  # JavaScript errors the page raised
    forwarded: list[str]  # paths the page asked the master for, in order


@pytest.fixture
def async_playwright() -> Any:
    """Playwright's entry point, once both it and chromium are known to be there."""
    entry = _playwright()
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"The web UI's browser tests need Debian's chromium at {CHROMIUM}: "
                    "run scripts/install-chromium.sh (apt-get install chromium), "
                    "or point MESOS_TEST_CHROMIUM at a chromium binary")
    return entry


@pytest.fixture
async def ui(async_playwright: Any, cluster: Cluster) -> AsyncIterator[UI]:
    """A headless chromium page, and the UI served in front of ``cluster``."""
    forwarded: list[str] = []
    runner, base = await serve(ui_app(cluster.master_url, forwarded))
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                               args=["--no-sandbox"])
            try:
                page = await browser.new_page(viewport={"width": 1280, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                # JavaScript errors; not the browser's own lines about error statuses
                # (a 501 from an operator call this master lacks is expected).
                page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                        and not m.text.startswith("Failed to load resource") else None)
                page.set_default_timeout(WAIT_MS)
                yield UI(page, base, errors, forwarded)
            finally:
                await browser.close()
    finally:
        await runner.cleanup()


@pytest.mark.slow
async def test_ui_shows_the_agents_and_resources_of_a_running_cluster(
    cluster: Cluster, ui: UI,
) -> None:
    page, base, errors = ui.page, ui.base, ui.errors
    agents = cluster.state()["slaves"]
    assert len(agents) == 2

    await page.goto(f"{base}/#/")
    # Two agents of cpus:4 each, nothing running.
    cpus = page.locator('#resources .bar[data-resource="cpus"]')
    await cpus.get_by_text("0 / 8").wait_for()
    assert "8192" not in await page.locator("#resources").inner_text()  # mem is shown in GB
    await page.locator("#resources").get_by_text("0 MB / 8.0 GB").first.wait_for()
    await page.locator("#counts").get_by_text("2 active of 2").wait_for()

    await page.click('nav a[data-tab="agents"]')
    for agent in agents:
        await page.get_by_role("link", name=agent["id"]).wait_for()
    await page.get_by_role("link", name=agents[0]["id"]).click()
    name = f"{agents[0]['hostname']}:{agents[0]['port']}"
    await page.get_by_role("heading", name=f"Agent {name}").wait_for()
    assert agents[0]["pid"] in await page.locator("main").inner_text()

    # Maintenance: the panel says so when this master has no maintenance calls.
    await page.click('nav a[data-tab="maintenance"]')
    status, _ = await operator_call(cluster, {"type": "GET_MAINTENANCE_SCHEDULE"})
    if status == 200:
        await page.get_by_role("heading", name="Schedule").wait_for()
    else:
        await page.locator("#maintenance-unavailable").wait_for()

    # A finished task's sandbox is still there to read.
    done = await asyncio.to_thread(
        subprocess.run, [str(BIN / "mesos-execute"), f"--master={cluster.master_url}",
                         "--name=quick", "--command=echo finished-output"],
        capture_output=True, text=True, timeout=120)
    # The task's end, not mesos-execute's exit status: that also covers its teardown.
    assert "TASK_FINISHED" in done.stdout, done.stdout + done.stderr
    await page.goto(f"{base}/#/tasks/quick/sandbox")
    await page.locator("#log").get_by_text("finished-output").wait_for()
    assert errors == []


@pytest.mark.slow
async def test_ui_follows_a_tasks_stdout_as_it_grows(
    cluster: Cluster, ui: UI,
) -> None:
    page, base, errors = ui.page, ui.base, ui.errors
    status, text = await operator_call(cluster, {
        "type": "UPDATE_WEIGHTS",
        "update_weights": {"weight_infos": [{"role": "ticking", "weight": 2.5}]},
    })
    assert status == 200, text
    ticker = subprocess.Popen(
        [str(BIN / "mesos-execute"), f"--master={cluster.master_url}", "--name=ticker",
         "--role=ticking", "--resources=cpus:0.5;mem:64",
         "--command=for i in $(seq 1 240); do echo line-$i; sleep 0.5; done"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        await asyncio.to_thread(wait_for, lambda: any(
            t["id"] == "ticker" and t["state"] == "TASK_RUNNING"
            for f in cluster.state()["frameworks"] for t in f["tasks"]), 60, "ticker to run")

        await page.goto(f"{base}/#/tasks/ticker/sandbox")
        log = page.locator("#log")
        await page.wait_for_function(
            "() => /line-2\\n/.test(document.getElementById('log').textContent)", timeout=WAIT_MS)
        first = lines(await log.text_content())
        # Let the task write at least four more lines, and see them appended.
        await page.wait_for_function(
            f"() => document.getElementById('log').textContent.includes('line-{len(first) + 4}\\n')",
            timeout=WAIT_MS)
        grown = lines(await log.text_content())
        assert len(grown) >= len(first) + 4
        # Each poll appended only what was new: every line once, in order.
        assert grown == [f"line-{i}" for i in range(1, len(grown) + 1)]
        await page.locator('#listing a[data-name="stdout"]').wait_for()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "webui-sandbox.png"), full_page=True)
        await page.locator('#listing a[data-name="stderr"]').click()
        await page.get_by_role("heading", name="Following stderr").wait_for()

        await page.goto(f"{base}/#/frameworks")
        await page.get_by_role("cell", name="mesos-execute instance").wait_for()
        await page.click('nav a[data-tab="roles"]')
        role_row = page.locator("tr", has=page.get_by_role("cell", name="ticking", exact=True))
        await role_row.get_by_role("cell", name="2.50").wait_for()

        await page.click('nav a[data-tab="dashboard"]')
        await page.locator('#task-states dd[data-state="TASK_RUNNING"]').get_by_text(
            "1", exact=True).wait_for()
        await page.locator("main").get_by_role("link", name="ticker", exact=True).first.wait_for()
        await page.locator('#resources .bar[data-resource="cpus"]').get_by_text(
            "0.50 / 8").wait_for()
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "webui-dashboard.png"
        await page.screenshot(path=str(shot), full_page=True)
        print(f"dashboard screenshot: {shot}")
        assert shot.stat().st_size > 0
        assert errors == []
    finally:
        if ticker.poll() is None:
            ticker.send_signal(signal.SIGTERM)
            try:
                ticker.wait(timeout=20)
            except subprocess.TimeoutExpired:
                ticker.kill()
                ticker.wait()


def lines(text: str | None) -> list[str]:
    return [line for line in (text or "").splitlines() if line]


@pytest.mark.slow
async def test_polling_pauses_while_the_tab_is_hidden(cluster: Cluster, ui: UI) -> None:
    page = ui.page
    await page.goto(f"{ui.base}/#/agents")
    await page.wait_for_function("() => Number(document.getElementById('status').dataset.polls) >= 2")
    # Headless chromium never hides a page by itself: do what the browser does when
    # the tab goes to the background.
    hide = """hidden => {
        Object.defineProperty(document, "hidden", {value: hidden, configurable: true});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    await page.evaluate(hide, True)
    await page.get_by_text("paused while hidden").wait_for()
    before = ui.forwarded.count("/master/state")
    await asyncio.sleep(3 * 2.0)  # three poll periods in which nothing may be asked
    # One poll may have been in flight when the tab was hidden.
    assert ui.forwarded.count("/master/state") <= before + 1
    assert await page.locator("#status").inner_text() == "paused while hidden"

    await page.evaluate(hide, False)
    await page.wait_for_function("() => !document.getElementById('status').textContent.includes('paused')")
    await asyncio.to_thread(wait_for, lambda: ui.forwarded.count("/master/state") >= before + 2,
                            30, "polling to resume")
    assert ui.errors == []
