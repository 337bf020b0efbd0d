"""The session room page in headless Chromium: two guests join and chat."""

from __future__ import annotations

import contextlib

import pytest

from tests.e2e.server import DaphneServer
from tests.services import chromium_path

pytestmark = pytest.mark.timeout(120)

WAIT_MS = 15_000  # per expectation; a 2-core machine shared with other suites
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextlib.contextmanager
def chromium():
    """Headless Chromium driven by Playwright: ``(browser, expect)``."""
    executable = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, args=CHROMIUM_ARGS, timeout=WAIT_MS
        )
        try:
            yield browser, sync_api.expect
        finally:
            browser.close()


def new_room(server: DaphneServer, title: str) -> tuple[dict, dict, str]:
    """A session created by a staff host: ``(host, session, the room page's URL)``."""
    host = server.create_user("presenter")
    status, session = server.request(
        "POST", "/api/sessions/", {"title": title}, token=host["access"]
    )
    assert status == 201
    return host, session, server.url(f"/sessions/{session['code']}/")


def join_pages(browser, room: str, nicknames: list[str], errors: list[str]) -> list:
    """One browser context per person (own storage, own token), each joined as
    ``nickname``; script errors of any page land in ``errors``."""
    pages = []
    for nickname in nicknames:
        page = browser.new_context().new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(room)
        page.fill("#nickname", nickname)
        page.click("#join-button")
        page.wait_for_selector("#room-panel", state="visible")
        pages.append(page)
    return pages


def test_two_browsers_join_a_session_and_see_each_others_messages(tmp_path):
    with DaphneServer(tmp_path) as server:
        host, session, room = new_room(server, "Browser room")
        with chromium() as (browser, expect):
            # Two contexts: two people, each with their own storage and token.
            errors: list[str] = []
            alice, bob = join_pages(browser, room, ["Alice", "Bob"], errors)
            expect(alice.locator("#online")).to_contain_text("Bob", timeout=WAIT_MS)
            expect(bob.locator("#online")).to_contain_text("Alice", timeout=WAIT_MS)

            alice.fill("#chat-input", "Hello from Alice")
            alice.click("#chat-send")
            bob_line = bob.locator("#messages li", has_text="Hello from Alice")
            expect(bob_line).to_have_count(1, timeout=WAIT_MS)
            expect(bob_line.locator(".nickname")).to_have_text("Alice")

            bob.fill("#question-input", "Will there be slides?")
            bob.click("#question-send")
            question = alice.locator("#questions li", has_text="slides")
            expect(question).to_have_count(1, timeout=WAIT_MS)
            question.locator(".upvote").click()
            expect(bob.locator("#questions .upvotes")).to_contain_text(
                "1", timeout=WAIT_MS
            )

            # A reload keeps the participant (token in localStorage) and the
            # history comes back through the replay.
            bob.reload()
            expect(
                bob.locator("#messages li", has_text="Hello from Alice")
            ).to_have_count(1, timeout=WAIT_MS)
            assert bob.locator("#join-panel").is_hidden()
            assert errors == []  # no script error on either page
        status, body = server.request(
            "GET", f"/api/sessions/{session['code']}/status/", token=host["access"]
        )
        assert body["total_participants"] == 3  # host + two guests, none duplicated


def test_a_big_rooms_count_includes_the_people_its_welcome_does_not_list(tmp_path):
    """SESSION_WELCOME_ONLINE_MAX=1: a welcome lists only its reader, with the room's
    count; the page shows the count, and each notice's count keeps it right."""
    env = {"SESSION_WELCOME_ONLINE_MAX": "1"}
    with DaphneServer(tmp_path, env=env) as server:
        _, _, room = new_room(server, "Big room")
        with chromium() as (browser, expect):
            errors: list[str] = []
            ann, ben, cy = join_pages(browser, room, ["Ann", "Ben", "Cy"], errors)
            expect(cy.locator("#online-count")).to_have_text("3")
            expect(cy.locator("#online li")).to_have_count(1)  # only Cy listed
            expect(ann.locator("#online-count")).to_have_text("3")
            ben.context.close()  # Ben leaves: Cy never listed him
            expect(cy.locator("#online-count")).to_have_text("2")
            expect(ann.locator("#online-count")).to_have_text("2")
            assert errors == []
