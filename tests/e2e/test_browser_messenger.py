"""The messenger page in headless Chromium: alice and bob talk, one to one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.server import ROOT, DaphneServer
from tests.e2e.test_browser_sessions import WAIT_MS, chromium

pytestmark = pytest.mark.timeout(180)

SCREENSHOTS = ROOT / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1200, "height": 760}
PASSWORD = "pw-Secret-123"  # what DaphneServer.create_user sets


def signed_in_page(browser, server: DaphneServer, username: str, errors: list[str]):
    """A context of its own (own cookies), signed in through the login form that
    ``/messenger/`` sends a visitor to, and back on the messenger."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(WAIT_MS)
    page.on("pageerror", lambda exc: errors.append(f"{username}: {exc}"))
    # Shown by pytest when the test fails: what each page sent and received.
    page.on("console", lambda msg: print(username, msg.text))
    page.goto(server.url("/messenger/?debug"))  # frames on the console: see below
    assert "/accounts/login/" in page.url
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url("**/messenger/?debug")
    page.wait_for_selector("#connection:text('connected')")
    return page


def test_two_people_talk_in_a_direct_conversation(tmp_path):
    with DaphneServer(tmp_path) as server:
        # Ordinary users: the pages' login form is not the admin's.
        alice_user = server.create_user("alice")
        bob_user = server.create_user("bob")
        with chromium() as (browser, expect):
            expect.set_options(timeout=WAIT_MS)
            errors: list[str] = []
            alice = signed_in_page(browser, server, "alice", errors)
            bob = signed_in_page(browser, server, "bob", errors)

            # Alice starts it by bob's id; bob's list hears of it on his socket.
            alice.fill("#direct-user", str(bob_user["id"]))
            alice.click("#direct-start")
            expect(alice.locator("#conversation-title")).to_have_text("bob")
            bob_item = bob.locator(".conversation-item")
            expect(bob_item).to_have_count(1)
            expect(bob_item.locator(".name")).to_have_text("alice")
            bob_item.click()
            expect(bob.locator("#conversation-title")).to_have_text("alice")
            for page in (alice, bob):  # both subscribed: typing reaches bob
                expect(page.locator("#conversation[data-state=live]")).to_have_count(1)

            # Typing shows at bob before the message does.
            alice.locator("#compose-text").press_sequentially("Hello Bob")
            expect(bob.locator("#typing")).to_have_text("alice is typing…")
            alice.locator("#compose-text").press("Enter")  # Enter sends
            line = bob.locator("#message-list .message", has_text="Hello Bob")
            expect(line).to_have_count(1)
            expect(line.locator(".sender")).to_have_text("alice")
            expect(bob.locator("#typing")).to_have_text("")
            mine = alice.locator("#message-list .message.mine", has_text="Hello Bob")
            expect(mine).to_have_count(1)  # the pending copy became the stored one
            expect(alice.locator("#message-list .pending")).to_have_count(0)

            # Bob has it on screen: his receipt reaches alice's last message.
            expect(mine.locator(".receipt")).to_have_text("read")

            # A reaction counts at both.
            line.locator(".reaction[data-emoji='👍']").click()
            expect(mine.locator(".reaction[data-emoji='👍']")).to_have_text("👍 1")
            expect(line.locator(".reaction[data-emoji='👍']")).to_have_text("👍 1")

            # Bob answers; alice edits and deletes her own message, bob sees both.
            bob.fill("#compose-text", "Hi Alice")
            bob.click("#compose-send")
            expect(alice.locator(".message", has_text="Hi Alice")).to_have_count(1)
            mine.locator(".edit").click()
            alice.locator(".edit-box").fill("Hello Bob, edited")
            alice.locator(".edit-box").press("Enter")
            expect(line.locator(".bubble")).to_have_text("Hello Bob, edited")
            expect(line.locator(".edited")).to_have_text(" · edited")

            # Bob drops off (his browser goes offline: the client closes its socket
            # and waits for the network); meanwhile alice writes and reacts to his
            # message. Back, he subscribes with the last seq he saw: the new one
            # once, the reaction.
            bob.context.set_offline(True)
            expect(bob.locator("#connection")).to_have_text("reconnecting…")
            alice.fill("#compose-text", "While you were away")
            alice.press("#compose-text", "Enter")
            hi = alice.locator(".message", has_text="Hi Alice")
            hi.locator(".reaction[data-emoji='❤️']").click()
            expect(hi.locator(".reaction[data-emoji='❤️']")).to_have_text("❤️ 1")
            bob.context.set_offline(False)
            away = bob.locator("#message-list .message", has_text="While you were")
            expect(away).to_have_count(1)
            expect(
                bob.locator(".message", has_text="Hi Alice").locator(
                    ".reaction[data-emoji='❤️']"
                )
            ).to_have_text("❤️ 1")
            expect(bob.locator("#message-list .message")).to_have_count(3)

            # A reload: the history comes from REST, alice is online, nothing twice.
            bob.reload()
            bob.wait_for_selector("#connection:text('connected')")
            expect(bob.locator(".conversation-item .dot.online")).to_have_count(1)
            expect(bob.locator("#message-list .message")).to_have_count(3)

            # The phone: the conversation alone, no sideways scroll.
            bob.set_viewport_size(PHONE)
            expect(bob.locator("#sidebar")).to_be_hidden()
            expect(bob.locator("#message-list .message")).to_have_count(3)
            width = bob.evaluate("document.documentElement.scrollWidth")
            assert width <= PHONE["width"]
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            bob.screenshot(path=str(SCREENSHOTS / "messenger-phone.png"))
            bob.click("#back")
            expect(bob.locator("#sidebar")).to_be_visible()
            expect(bob.locator("#conversation")).to_be_hidden()

            alice.screenshot(path=str(SCREENSHOTS / "messenger.png"))

            # Bob is on the list now (unsubscribed): a new message is a badge there.
            alice.fill("#compose-text", "Are you there?")
            alice.press("#compose-text", "Enter")
            expect(bob_item.locator(".badge")).to_have_text("1")
            expect(bob_item.locator(".preview")).to_have_text("alice: Are you there?")

            mine.locator(".delete").click()
            mine.locator(".delete").click()  # the second click confirms
            expect(alice.locator(".message.deleted .bubble")).to_have_text(
                "message deleted"
            )
            bob_item.click()  # the tombstone comes with the history
            expect(bob.locator(".message.deleted .bubble")).to_have_text(
                "message deleted"
            )
            expect(bob_item.locator(".badge")).to_be_hidden()

            # A group, members by username (bob is met now); its long history
            # comes a page at a time as bob scrolls up.
            alice.click("#group-start summary")
            alice.fill("#group-title", "Team")
            alice.fill("#group-members", "bob")
            alice.click("#group-create")
            expect(alice.locator("#conversation-title")).to_have_text("Team")
            group_id = alice.evaluate("location.hash.slice(1)")
            for n in range(1, 61):
                status, _ = server.request(
                    "POST",
                    f"/api/conversations/{group_id}/messages/",
                    {"content": f"note {n}"},
                    token=alice_user["access"],
                )
                assert status == 201
            bob.click("#back")
            bob.locator(".conversation-item", has_text="Team").click()
            expect(bob.locator("#conversation-title")).to_have_text("Team")
            expect(bob.locator("#message-list .message")).to_have_count(50)
            bob.locator("#messages").evaluate("box => { box.scrollTop = 0; }")
            expect(bob.locator("#message-list .message")).to_have_count(60)
            texts = bob.locator("#message-list .bubble").all_text_contents()
            assert texts == [f"note {n}" for n in range(1, 61)]  # in order, once
            assert errors == []
    assert Path(SCREENSHOTS / "messenger.png").stat().st_size > 0
