"""The copilot socket against real daphne processes and a real WebSocket client."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from websockets.asyncio.client import connect

from realtime.copilot.voice import synthetic_speech
from tests.copilot.agents import LONG_ANSWER
from tests.e2e.client import close_code, frame
from tests.e2e.server import DaphneServer
from tests.services import chromium_path, redis_url

pytestmark = pytest.mark.timeout(120)

ITEMS = [
    {"name": "monthly_costs", "path": "/local/costs"},
    {"name": "instances", "path": "/local/instances"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    env = {"COPILOT_AGENT": "tests.copilot.agents.StoryAgent", "CALLBACK_TIMEOUT": "3"}
    with DaphneServer(tmp_path_factory.mktemp("e2e-copilot"), env=env) as srv:
        srv.alice = srv.create_user("alice")
        yield srv


async def send(ws, type_: str, payload: dict, request_id: str | None = None) -> None:
    message = {"type": type_, "payload": payload}
    if request_id:
        message["request_id"] = request_id
    await ws.send(json.dumps(message))


async def answer(ws, query_id: str) -> tuple[list[dict], dict]:
    deltas = []
    while True:
        got = await frame(ws)
        if got["type"] == "response.delta":
            deltas.append(got["payload"])
        elif got["type"] == "response":
            assert got["payload"]["query_id"] == query_id
            return deltas, got["payload"]
        else:
            assert got["type"] == "ping", got


def copilot(srv: DaphneServer, token: str | None = None, **kwargs):
    path = "/ws/copilot/" + (f"?token={token}" if token else "")
    return connect(srv.ws_url(path), open_timeout=5, **kwargs)


async def test_close_codes_on_real_daphne(server):
    async with copilot(server) as ws:
        assert await close_code(ws) == 4008
    async with copilot(server, "garbage") as ws:
        assert await close_code(ws) == 4001
    out = server.python(
        "from datetime import timedelta\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework_simplejwt.tokens import AccessToken\n"
        "t = AccessToken.for_user(get_user_model().objects.get(username='alice'))\n"
        "t.set_exp(lifetime=timedelta(seconds=-5))\nprint(t)\n"
    )
    async with copilot(server, out.strip().splitlines()[-1]) as ws:
        assert await close_code(ws) == 4001
    async with copilot(server, server.alice["access"]) as ws:
        greeting = await frame(ws)
        assert greeting["type"] == "connected"
        assert greeting["payload"]["user_id"] == server.alice["id"]


async def test_ticket_and_the_full_callback_chain(server):
    status, ticket = server.request(
        "POST", "/api/realtime/tickets/", token=server.alice["access"]
    )
    assert status == 201
    url = server.ws_url(f"/ws/copilot/?ticket={ticket['ticket']}")
    async with connect(url) as ws:
        assert (await frame(ws))["type"] == "connected"
        await send(ws, "query", {"text": "how big is monthly_costs?"}, "c-1")
        accepted = await frame(ws, "query.accepted")
        assert accepted["request_id"] == "c-1"
        query_id = accepted["payload"]["query_id"]
        request = await frame(ws, "request_available_data")
        await send(ws, "available_data", {"items": ITEMS}, request["request_id"])
        api = await frame(ws, "request_api")
        assert api["payload"]["path"] == "/local/costs"
        await send(ws, "ping", {"mid": "chain"})  # served while the agent waits
        assert (await frame(ws, "pong"))["payload"] == {"mid": "chain"}
        body = {"records": [{"month": "2026-10", "amount": 3}]}
        await send(ws, "api_result", {"status": 200, "body": body}, api["request_id"])
        deltas, response = await answer(ws, query_id)
        text = "monthly_costs (/local/costs) holds 1 record with fields month, amount."
        assert response["text"] == text == "".join(d["delta"] for d in deltas)
        # Replies with a used id, and binary frames outside a stream: named errors.
        await send(ws, "api_result", {"status": 200}, api["request_id"])
        assert (await frame(ws, "error"))["payload"]["code"] == "UNKNOWN_REQUEST"
        await ws.send(b"\x00\x01")
        assert (await frame(ws, "error"))["payload"]["code"] == "INVALID_MESSAGE"


async def test_voice_on_real_daphne(server):
    pcm = synthetic_speech(16000, [(300, False), (500, True), (500, False)])
    chunk = 3200  # 100 ms
    async with copilot(server, server.alice["access"]) as ws:
        await frame(ws, "connected")
        await send(
            ws,
            "audio.start",
            {"format": "pcm_s16le", "sample_rate": 16000, "channels": 1},
        )
        await frame(ws, "audio.started")
        for start in range(0, len(pcm), chunk):
            await ws.send(pcm[start : start + chunk])
            await asyncio.sleep(0.1)
        await send(ws, "audio.stop", {})
        seen = []
        while not seen or seen[-1]["type"] != "audio.stopped":
            seen.append(await frame(ws))
        vad = [f["payload"] for f in seen if f["type"] == "audio.vad"]
        assert vad == [
            {"speaking": True, "at_ms": 300},
            {"speaking": False, "at_ms": 800},
        ]
        assert any(f["type"] == "audio.progress" for f in seen[:-1])
        assert seen[-1]["payload"] == {
            "bytes": len(pcm),
            "frames": 13,
            "ms": 1300,
            "dropped": 0,
        }


async def test_resume_after_a_dropped_connection(server):
    token = server.alice["access"]
    async with copilot(server, token) as ws:
        await frame(ws, "connected")
        await send(ws, "query", {"text": "story time"})
        query_id = (await frame(ws, "query.accepted"))["payload"]["query_id"]
        got = [(await frame(ws, "response.delta"))["payload"] for _ in range(5)]
    # The socket is gone mid-answer; a new one picks the answer up.
    async with copilot(server, token) as ws:
        await frame(ws, "connected")
        await send(ws, "query.resume", {"query_id": query_id, "after": 5})
        assert (await frame(ws, "query.resumed"))["payload"]["after"] == 5
        rest, response = await answer(ws, query_id)
    indexes = [d["index"] for d in got + rest]
    assert indexes == list(range(1, len(LONG_ANSWER) + 1))
    assert response["text"] == "".join(LONG_ANSWER)


def test_single_session_rate_limit_and_resume_across_two_processes(tmp_path):
    env = {
        "REDIS_URL": redis_url(),
        "CACHE_KEY_PREFIX": f"e2e-copilot-{uuid.uuid4().hex[:8]}",
        "SINGLE_SESSION_PER_USER": "1",
        "COPILOT_RATE_LIMIT": "3",
    }
    with DaphneServer(tmp_path / "a", env=env) as a:
        database_url = a.env["DATABASE_URL"]  # one SQLite file for both processes
        with DaphneServer(
            tmp_path / "b", env=env, database_url=database_url, migrate=False
        ) as b:
            user = a.create_user("carol")

            async def scenario():
                token = user["access"]
                async with copilot(a, token) as on_a:
                    await frame(on_a, "connected")
                    await send(on_a, "query", {"text": "monthly_costs"})
                    accepted = await frame(on_a, "query.accepted")
                    assert accepted["payload"]["remaining"] == 2
                    query_id = accepted["payload"]["query_id"]
                    await frame(on_a, "request_available_data")
                    async with copilot(b, token) as on_b:
                        greeting = await frame(on_b, "connected")
                        # Process B closed the older socket on process A ...
                        assert await close_code(on_a) == 4009
                        # ... and draws from the same budget.
                        assert greeting["payload"]["rate_limit"]["remaining"] == 2
                        callbacks = ("ping", "request_available_data")
                        for remaining in (1, 0):
                            await send(on_b, "query", {"text": "x"})
                            got = await frame(on_b, "query.accepted", skip=callbacks)
                            assert got["payload"]["remaining"] == remaining
                        await send(on_b, "query", {"text": "x"})
                        limited = await frame(on_b, "error", skip=callbacks)
                        assert limited["payload"]["code"] == "RATE_LIMITED"
                        # The query begun on A ended there, detached; B resumes it.
                        await send(on_b, "query.resume", {"query_id": query_id})
                        await frame(on_b, "query.resumed")
                        while True:
                            got = await frame(on_b)
                            if got["type"] == "response" and (
                                got["payload"]["query_id"] == query_id
                            ):
                                break
                        assert got["payload"]["text"].startswith("I could not answer")

            asyncio.run(scenario())


def test_the_console_page_in_a_browser(server):
    chromium = chromium_path()
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page()
            page.goto(server.url("/copilot/"))
            page.fill("#token", server.alice["access"])
            page.click("#connect")
            expect(page.locator("#status")).to_contain_text(
                "connected as user", timeout=10000
            )
            # A query naming an item: the page answers both callbacks by itself.
            page.fill("#query-text", "how many records are in monthly_costs?")
            page.click("#send")
            expect(page.locator(".answer p").first).to_have_text(
                "monthly_costs (/local/costs) holds 3 records with fields month, "
                "amount, currency.",
                timeout=10000,
            )
            # No item named: the agent asks, the page shows the choices.
            page.fill("#query-text", "what do I have?")
            page.click("#send")
            page.click(".clarify button:has-text('instances')", timeout=10000)
            expect(page.locator(".answer p").first).to_have_text(
                "instances (/local/instances) holds 2 records with fields id, type, "
                "region.",
                timeout=10000,
            )
        finally:
            browser.close()
