"""Every page in headless Chromium: no console error, no serious accessibility
violation (axe-core), no sideways scroll on a phone, and the README's screenshots; the
copilot console and the camera viewer at work; pages that ride out a server restart
and catch up with nothing missed and nothing shown twice."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys

import pytest
from websockets.sync.client import connect

from tests.e2e.server import ROOT, DaphneServer
from tests.e2e.test_browser_messenger import DESKTOP, PASSWORD, PHONE, SCREENSHOTS
from tests.e2e.test_browser_sessions import WAIT_MS, chromium

pytestmark = pytest.mark.timeout(240)

SMALLEST = {"width": 360, "height": 740}  # the narrowest phone the pages are made for
RECONNECT_MS = 45_000  # a few backoff steps (1, 2, 4, 8 s ceilings) after a restart


def watched(page, label: str, errors: list[str], *, console: bool = True):
    """Collect ``page``'s script errors, and its console errors unless ``console``
    is false (a server that is down is one), into ``errors``."""
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda exc: errors.append(f"{label}: {exc}"))
    if console:
        page.on(
            "console",
            lambda msg: msg.type == "error" and errors.append(f"{label}: {msg.text}"),
        )
    return page


def sign_in(browser, server: DaphneServer, username: str, errors: list[str], **watch):
    """A page of a context of its own, signed in through the pages' login form."""
    context = browser.new_context(viewport=DESKTOP)
    page = watched(context.new_page(), username, errors, **watch)
    page.goto(server.url("/accounts/login/?next=/"))
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(server.url("/"))
    return page


def serious_violations(page) -> list[str]:
    """axe-core's serious and critical findings on the page as it is now (the
    package ships axe.min.js and injects it: nothing is fetched)."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [
        f"{page.url} {v['id']} ({v['impact']}): {v['help']} at "
        f"{[node['target'] for node in v['nodes']][:3]}"
        for v in found
        if v["impact"] in {"serious", "critical"}
    ]


def fits(page, viewport: dict) -> list[str]:
    """Nothing wider than a phone's screen: no sideways scroll."""
    page.set_viewport_size(viewport)
    width = page.evaluate("document.documentElement.scrollWidth")
    page.set_viewport_size(DESKTOP)
    return [] if width <= viewport["width"] else [f"{page.url} is {width} px wide"]


def audit(page) -> list[str]:
    return serious_violations(page) + fits(page, SMALLEST)


def shell_json(server: DaphneServer, code: str) -> dict:
    return json.loads(server.python(code).strip().splitlines()[-1])


def say_in_room(server: DaphneServer, code: str, token: str, text: str) -> None:
    """Another client (the host, over its own socket) says ``text`` in the room and
    waits until the room has stored it."""
    url = server.ws_url(f"/ws/sessions/{code}/?token={token}")
    with connect(url, open_timeout=10) as ws:
        ws.send(json.dumps({"type": "chat.send", "payload": {"content": text}}))
        while True:
            frame = json.loads(ws.recv(timeout=10))
            if frame["type"] == "chat.message" and frame["payload"]["content"] == text:
                return


def test_every_page_is_clean_accessible_and_fits_a_phone(tmp_path):
    with DaphneServer(tmp_path) as server:
        alice = server.create_user("alice", staff=True)
        server.python(
            "from camera.models import Stream\n"
            "Stream.objects.create(slug='demo', public=True, title='Demo camera')\n"
        )
        status, session = server.request(
            "POST", "/api/sessions/", {"title": "Friday demo"}, token=alice["access"]
        )
        assert status == 201
        room = f"/sessions/{session['code']}/"
        worker = subprocess.Popen(
            [sys.executable, "manage.py", "runcamera", "demo", "--source"]
            + ["synthetic", "--server", server.ws_url(""), "--fps", "8"],
            cwd=ROOT,
            env=server.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        problems: list[str] = []
        errors: list[str] = []
        try:
            with chromium() as (browser, expect):
                expect.set_options(timeout=WAIT_MS)
                SCREENSHOTS.mkdir(parents=True, exist_ok=True)
                visitor = watched(
                    browser.new_context(viewport=DESKTOP).new_page(), "visitor", errors
                )

                # Home: what runs here, and whether the server answers.
                visitor.goto(server.url("/"))
                expect(visitor.locator("#health")).to_have_text("reachable")
                for href in ("/sessions/", "/messenger/", "/copilot/", "/streams/"):
                    assert visitor.locator(f"#pages a[href='{href}']").count() == 1
                for href in ("/admin/", "/api/docs/", "/api/asyncapi/"):
                    assert visitor.locator(f"#links a[href='{href}']").count() == 1
                problems += audit(visitor)
                visitor.screenshot(path=str(SCREENSHOTS / "home.png"))
                favicon = visitor.request.get(server.url("/favicon.ico"))
                assert favicon.ok and "svg" in favicon.headers["content-type"]

                for path in ("/sessions/", "/accounts/login/", "/streams/"):
                    visitor.goto(server.url(path))
                    problems += audit(visitor)

                # The camera viewer draws the worker's frames as they come.
                visitor.goto(server.url("/streams/demo/"))
                expect(visitor.locator("#connection")).to_have_text("connected")
                expect(visitor.locator("#markers tbody tr")).to_have_count(3)
                first = visitor.locator("#seq").inner_text(timeout=WAIT_MS)
                expect(visitor.locator("#seq")).not_to_have_text(first)
                problems += audit(visitor)
                visitor.screenshot(path=str(SCREENSHOTS / "camera.png"))

                # A guest joins the room; the host, signed in, is there too.
                visitor.goto(server.url(room))
                visitor.fill("#nickname", "Sam")
                visitor.press("#nickname", "Enter")  # Enter submits
                host = sign_in(browser, server, "alice", errors)
                problems += audit(host)  # the home page, signed in
                host.goto(server.url(room))
                expect(host.locator("#connection")).to_have_text("connected")
                expect(host.locator("#online")).to_contain_text("Sam")
                host.fill("#chat-input", "Welcome, everyone: slides at 10:05")
                host.press("#chat-input", "Enter")
                visitor.fill("#chat-input", "Thanks! Is it recorded?")
                visitor.press("#chat-input", "Enter")
                visitor.fill("#question-input", "Will the code be on GitHub?")
                visitor.press("#question-input", "Enter")
                expect(host.locator("#messages li")).to_have_count(2)
                expect(host.locator("#messages li.mine")).to_have_count(1)
                expect(host.locator("#questions li")).to_have_count(1)
                problems += audit(host)
                host.screenshot(path=str(SCREENSHOTS / "session-room.png"))

                # The room on a phone: one column, "Here now" whole on screen.
                visitor.set_viewport_size(PHONE)
                expect(visitor.locator("#messages li")).to_have_count(2)
                here = visitor.locator("#online").bounding_box()
                assert here["x"] >= 0 and here["x"] + here["width"] <= PHONE["width"]
                problems += fits(visitor, PHONE) + fits(visitor, SMALLEST)
                visitor.set_viewport_size(PHONE)
                visitor.screenshot(path=str(SCREENSHOTS / "session-room-phone.png"))

                # The messenger and the copilot console, signed in.
                host.goto(server.url("/messenger/"))
                expect(host.locator("#connection")).to_have_text("connected")
                problems += audit(host)

                host.goto(server.url("/copilot/"))
                host.click("#connect")
                expect(host.locator("#status")).to_contain_text("connected as user")
                host.fill("#query-text", "how many records are in monthly_costs?")
                host.press("#query-text", "Enter")
                # The reference agent asked for the page's data and its local API.
                expect(host.locator(".answer p").first).to_have_text(
                    "monthly_costs (/local/costs) holds 3 records with fields month, "
                    "amount, currency."
                )
                host.fill("#query-text", "what do I have?")
                host.press("#query-text", "Enter")
                host.locator(".clarify button", has_text="instances").click()
                expect(host.locator(".answer p").first).to_have_text(
                    "instances (/local/instances) holds 2 records with fields id, "
                    "type, region."
                )
                problems += audit(host)
                host.screenshot(path=str(SCREENSHOTS / "copilot.png"))

                host.goto(server.url("/api/asyncapi/"))  # the socket contract
                problems += fits(host, SMALLEST)
                host.goto(server.url("/admin/"))  # Django's own layout, our name
                expect(host.locator("#site-name")).to_have_text("Django Realtime")
        finally:
            worker.send_signal(signal.SIGTERM)
            worker.communicate(timeout=30)
    assert errors == []
    assert problems == []


def test_pages_reconnect_after_a_restart_and_catch_up(tmp_path):
    """kill -9 and the same server again (same port, same database): the messenger
    and a session room say they are reconnecting, come back on their own, and show
    what was said meanwhile once, and nothing they had twice."""
    server = DaphneServer(tmp_path)
    server.start()
    try:
        alice = server.create_user("alice")
        bob = server.create_user("bob")
        status, conv = server.request(
            "POST",
            "/api/conversations/",
            {"kind": "direct", "member_ids": [bob["id"]]},
            token=alice["access"],
        )
        assert status == 201
        status, session = server.request(
            "POST", "/api/sessions/", {"title": "Restart"}, token=alice["access"]
        )
        assert status == 201
        code = session["code"]
        messages = f"/api/conversations/{conv['id']}/messages/"

        def bob_says(text: str) -> None:
            status, _ = server.request(
                "POST", messages, {"content": text}, token=bob["access"]
            )
            assert status == 201

        errors: list[str] = []
        with chromium() as (browser, expect):
            expect.set_options(timeout=WAIT_MS)
            # Script errors only: a browser logs every refused connection.
            page = sign_in(browser, server, "alice", errors, console=False)
            page.goto(server.url(f"/messenger/#{conv['id']}"))
            expect(page.locator("#conversation[data-state=live]")).to_have_count(1)
            guest = browser.new_context(viewport=PHONE).new_page()
            watched(guest, "guest", errors, console=False)
            guest.goto(server.url(f"/sessions/{code}/"))
            guest.fill("#nickname", "Gus")
            guest.press("#nickname", "Enter")
            expect(guest.locator("#connection")).to_have_text("connected")

            bob_says("before the restart")
            say_in_room(server, code, alice["access"], "room before")
            expect(page.locator("#message-list .message")).to_have_count(1)
            expect(guest.locator("#messages li")).to_have_count(1)

            server.kill()
            for each in (page, guest):
                expect(each.locator("#connection")).to_have_text("reconnecting…")
            # The countdown to the next attempt, then "now".
            expect(guest.locator("#connection-detail")).to_have_text(
                re.compile(r"^(in \d+ s|now)$")
            )

            server.migrate = False
            server.start()  # the same port and database
            bob_says("after the restart")
            say_in_room(server, code, alice["access"], "room after")

            for each in (page, guest):
                expect(each.locator("#connection")).to_have_text(
                    "connected", timeout=RECONNECT_MS
                )
            texts = page.locator("#message-list .bubble")
            expect(texts).to_have_text(["before the restart", "after the restart"])
            lines = guest.locator("#messages li .content")
            expect(lines).to_have_text(["room before", "room after"])
            # And later messages still flow live.
            bob_says("all good")
            expect(texts).to_have_count(3)
            assert errors == []
    finally:
        server.stop()
