"""The OpenAI-compatible agent against a small local server that streams SSE."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.core.exceptions import ImproperlyConfigured

from realtime.callbacks import CallbackTimeout
from realtime.copilot import llm
from realtime.copilot.agents import Query
from realtime.copilot.llm import (
    ChatCompletionsAgent,
    build_messages,
    completions_url,
    delta_content,
    sse_data,
)
from tests.conftest import recv_type
from tests.copilot.helpers import ITEMS, ask, open_copilot, read_answer, reply

pytestmark = pytest.mark.timeout(30)


def chunk(content: str | None = None, **delta) -> str:
    if content is not None:
        delta["content"] = content
    return "data: " + json.dumps({"choices": [{"index": 0, "delta": delta}]}) + "\n\n"


STREAM = [
    chunk(role="assistant"),
    chunk("Hel"),
    ": keep-alive comment\n\n",
    chunk("lo"),
    chunk(" world"),
    "data: [DONE]\n\n",
    chunk("after done is ignored"),
]


class FakeLLM:
    """``POST /v1/chat/completions`` answered with scripted SSE events."""

    def __init__(self):
        self.events = list(STREAM)
        self.status = 200
        self.requests: list[dict] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers["Content-Length"])
                fake.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(fake.status)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()
                if fake.status != 200:
                    self.wfile.write(b'{"error": "nope"}')
                    return
                for event in fake.events:
                    self.wfile.write(event.encode())
                    self.wfile.flush()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever,
            kwargs={"poll_interval": 0.02},
            daemon=True,
        )

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.fixture
def fake_llm(settings):
    fake = FakeLLM()
    fake.thread.start()
    settings.COPILOT_LLM_URL = fake.base_url
    settings.COPILOT_LLM_MODEL = "tiny-model"
    settings.COPILOT_LLM_API_KEY = "sk-test"
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


class FakeIO:
    def __init__(self, items=None):
        self.items = items
        self.deltas: list[str] = []
        self.answer: tuple[str, list | None] | None = None

    async def request_available_data(self):
        if self.items is None:
            raise CallbackTimeout("srv-x", 0.1)
        return self.items

    async def delta(self, text):
        self.deltas.append(text)

    async def respond(self, text, sources=None):
        self.answer = (text, sources)


QUERY = Query(query_id="q-1", text="How much did I spend?", user_id=1)


# ------------------------------------------------------------------ pure parts
@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://h/v1", "http://h/v1/chat/completions"),
        ("http://h/v1/", "http://h/v1/chat/completions"),
        ("http://h/v1/chat/completions", "http://h/v1/chat/completions"),
        (" http://h/chat/completions/ ", "http://h/chat/completions/"),
    ],
)
def test_completions_url(url, expected):
    assert completions_url(url) == expected


async def test_sse_data_parsing():
    async def lines():
        for line in [
            "data: a",
            "data:b",
            "",
            ": comment",
            "event: x",
            "",
            "id: 3",
            "data: tail",
        ]:
            yield line

    assert [data async for data in sse_data(lines())] == ["a\nb", "tail"]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ('{"choices":[{"delta":{"content":"hi"}}]}', "hi"),
        ('{"choices":[{"delta":{"role":"assistant"}}]}', None),
        ('{"choices":[{"delta":{"content":null}}]}', None),
        ('{"choices":[]}', None),
        ('{"choices":[{"delta":"x"}]}', None),
        ("not json", None),
        ('{"choices":[{"delta":{"content":5}}]}', None),
    ],
)
def test_delta_content(data, expected):
    assert delta_content(data) == expected


def test_messages_name_the_clients_data_and_context():
    query = Query(query_id="q", text="costs?", user_id=1, context={"page": "/costs"})
    items = [*ITEMS, {"name": "nameless path"}, {"path": 5}]
    system, user = build_messages(query, items)
    assert user == {"role": "user", "content": "costs?"}
    assert (
        "monthly_costs (/local/costs), instances (/local/instances)"
        in (system["content"])
    )
    assert "nameless path, ?" in system["content"]
    assert 'Context from the client: {"page": "/costs"}' in system["content"]
    assert build_messages(QUERY, None)[0]["content"] == llm.SYSTEM_PROMPT


def test_url_is_required(settings):
    settings.COPILOT_LLM_URL = ""
    with pytest.raises(ImproperlyConfigured, match="COPILOT_LLM_URL"):
        ChatCompletionsAgent()


# ------------------------------------------------------------------ the agent
async def test_tokens_stream_as_deltas(fake_llm):
    io = FakeIO(items=ITEMS)
    await ChatCompletionsAgent().run(QUERY, io)
    assert io.deltas == ["Hel", "lo", " world"]
    assert io.answer == ("Hello world", None)
    request = fake_llm.requests[0]
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    assert request["body"]["model"] == "tiny-model"
    assert request["body"]["stream"] is True
    assert request["body"]["messages"][1]["content"] == QUERY.text
    assert "monthly_costs" in request["body"]["messages"][0]["content"]


async def test_without_model_key_or_client_data(fake_llm, settings):
    settings.COPILOT_LLM_MODEL = settings.COPILOT_LLM_API_KEY = ""
    io = FakeIO(items=None)  # the client does not answer request_available_data
    await ChatCompletionsAgent().run(QUERY, io)
    assert io.answer == ("Hello world", None)
    request = fake_llm.requests[0]
    assert "Authorization" not in request["headers"]
    assert "model" not in request["body"]
    assert request["body"]["messages"][0]["content"] == llm.SYSTEM_PROMPT


async def test_agent_that_does_not_ask_for_data(fake_llm):
    class Plain(ChatCompletionsAgent):
        use_available_data = False

    io = FakeIO(items=None)
    await Plain().run(QUERY, io)
    assert io.answer[0] == "Hello world"


async def test_http_error_status(fake_llm):
    fake_llm.status = 503
    io = FakeIO(items=[])
    await ChatCompletionsAgent().run(QUERY, io)
    assert io.deltas == []
    assert io.answer == (
        "The language model is unavailable: it answered HTTP 503.",
        None,
    )


async def test_unreachable_endpoint(settings):
    from tests.e2e.server import free_port

    settings.COPILOT_LLM_URL = f"http://127.0.0.1:{free_port()}/v1"
    io = FakeIO(items=[])
    await ChatCompletionsAgent().run(QUERY, io)
    assert io.answer == (
        "The language model is unavailable: it could not be reached.",
        None,
    )


async def test_stalled_stream_times_out_keeping_what_came(fake_llm, settings):
    settings.COPILOT_LLM_TIMEOUT = 0.3

    class Stalling:  # the second event comes well after the read timeout
        def __iter__(self):
            yield chunk("partial")
            time.sleep(1.0)
            yield chunk("never")

    fake_llm.events = Stalling()
    io = FakeIO(items=[])
    await ChatCompletionsAgent().run(QUERY, io)
    assert io.deltas == ["partial"]
    assert io.answer == (
        "partial\n\nThe language model is unavailable: it did not answer in time.",
        None,
    )


async def test_runaway_answer_is_capped(fake_llm, monkeypatch):
    monkeypatch.setattr(llm, "MAX_ANSWER_CHARS", 7)
    io = FakeIO(items=[])
    await ChatCompletionsAgent().run(QUERY, io)
    assert io.deltas == ["Hel", "lo", " w"]
    assert io.answer[0] == "Hello w"


@pytest.mark.django_db(transaction=True)
async def test_over_the_socket(fake_llm, token, settings):
    settings.COPILOT_AGENT = "realtime.copilot.llm.ChatCompletionsAgent"
    comm, _ = await open_copilot(token)
    query_id = await ask(comm, "How much did I spend?")
    request = await recv_type(comm, "request_available_data")
    await reply(comm, request, "available_data", {"items": ITEMS})
    deltas, response = await read_answer(comm, query_id)
    assert [(d["delta"], d["index"]) for d in deltas] == [
        ("Hel", 1),
        ("lo", 2),
        (" world", 3),
    ]
    assert response == {"query_id": query_id, "text": "Hello world"}
    await comm.disconnect()


@pytest.mark.django_db(transaction=True)
async def test_misconfigured_llm_agent_closes_4011(token, settings):
    from tests.conftest import closed_with, communicator

    settings.COPILOT_AGENT = "realtime.copilot.llm.ChatCompletionsAgent"
    settings.COPILOT_LLM_URL = ""
    comm = communicator("/ws/copilot/", token=token)
    await comm.connect()
    assert await closed_with(comm) == 4011
    await comm.disconnect()
