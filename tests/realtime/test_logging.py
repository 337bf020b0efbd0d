"""Structured logs: JSON lines with a socket's or a request's trace id, no secrets."""

from __future__ import annotations

import io
import json
import logging
import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpResponse
from django.test import RequestFactory

from realtime import logcontext
from realtime.logcontext import ContextFilter, TraceMiddleware
from realtime.logfilters import JsonFormatter, RedactSecretsFilter
from tests.conftest import communicator, recv_type, send

SETTINGS = Path(__file__).resolve().parents[2] / "config" / "settings.py"
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJ1c2VyX2lkIjoxfQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ"


@pytest.fixture
def json_log():
    """The "realtime" loggers' lines, through the settings' JSON handler chain."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        )
    )
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactSecretsFilter())
    root = logging.getLogger("realtime")
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    lines.text = stream.getvalue  # type: ignore[attr-defined]
    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


# ---------------------------------------------------------------- sockets
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(20)
async def test_a_socket_session_logs_json_lines_with_its_trace(
    token, user, json_log, monkeypatch
):
    from realtime.echo import EchoConsumer

    async def broken(self, payload, envelope):
        logging.getLogger("realtime.echo").info("about to fail")
        raise RuntimeError(f"boom token={JWT}")

    monkeypatch.setattr(EchoConsumer, "on_echo", broken)
    comm = communicator("/ws/echo/", token=token)
    assert (await comm.connect())[0]
    trace = (await recv_type(comm, "echo.ready"))["payload"]["connection_id"]
    await send(comm, "echo", {})
    error = await recv_type(comm, "error")
    assert error["payload"]["message"] == f"internal error (trace {trace})"
    await comm.disconnect(code=1000)

    lines = json_log()
    assert lines, "the session logged nothing"
    for line in lines:  # every line is one JSON object naming this socket
        assert line["trace_id"] == trace, line
        assert line["user_id"] == user.pk and line["endpoint"] == "echo"
        assert {"time", "level", "logger", "message"} <= set(line)
    failure = next(line for line in lines if "handler failed" in line["message"])
    assert failure["level"] == "ERROR" and "RuntimeError" in failure["exc_info"]
    assert any(line["message"] == "about to fail" for line in lines)  # a handler's
    closed = next(line for line in lines if "socket closed" in line["message"])
    assert closed["close_code"] == 1000
    assert JWT not in json_log.text() and token not in json_log.text()


@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(20)
async def test_a_server_close_line_carries_its_code(json_log):
    comm = communicator("/ws/echo/", token="not-a-token")
    await comm.connect()
    await comm.receive_output(3)  # the close
    await comm.disconnect(code=4001)
    closing = next(line for line in json_log() if "closing" in line["message"])
    assert closing["close_code"] == 4001 and closing["endpoint"] == "echo"
    assert closing["user_id"] is None and closing["trace_id"]


def test_lines_logged_for_others_keep_their_own_fields(json_log):
    token = logcontext.bind(trace_id="mine", user_id=1, endpoint="echo")
    try:
        log = logging.getLogger("realtime.test")
        log.info("plain")
        log.info("named", extra={"trace_id": "theirs"})
        aside = logcontext.set_aside()
        log.info("aside")
        logcontext.reset(aside)
    finally:
        logcontext.reset(token)
    log.info("after")
    plain, named, aside_line, after = json_log()
    assert plain["trace_id"] == "mine" and named["trace_id"] == "theirs"
    assert "trace_id" not in aside_line and "trace_id" not in after


def test_json_lines_redact_messages_and_tracebacks(json_log):
    log = logging.getLogger("realtime.test")
    log.info("GET /ws/echo/?token=%s", JWT)
    log.info("login password=hunter2")
    try:
        raise ValueError(f"bad ticket=abcDEF123 {JWT}")
    except ValueError:
        log.exception("failed")
    log.info("where", stack_info=True)
    text = json_log.text()
    for secret in (JWT, "hunter2", "abcDEF123"):
        assert secret not in text
    assert len(json_log()) == 4 and "redacted" in json_log()[2]["exc_info"]
    assert "test_json_lines_redact" in json_log()[3]["stack_info"]


# ---------------------------------------------------------------- HTTP
def test_each_request_gets_a_trace_id_on_its_lines_and_response(json_log, user):
    seen = {}

    def view(request):
        request.user = user  # what authentication does, later in the chain
        logging.getLogger("realtime.test").info("in the view")
        seen["fields"] = dict(logcontext.current())
        return HttpResponse("ok")

    middleware = TraceMiddleware(view)
    response = middleware(RequestFactory().get("/x"))
    trace = response["X-Trace-Id"]
    (line,) = json_log()
    assert line["trace_id"] == trace and len(trace) == 16
    assert line["endpoint"] == "http" and line["user_id"] == user.pk
    assert logcontext.current() == {}  # nothing left behind for the next request
    given = middleware(RequestFactory().get("/x", HTTP_X_TRACE_ID="lb-1234abcd"))
    assert given["X-Trace-Id"] == "lb-1234abcd"  # a proxy's id is kept
    odd = middleware(RequestFactory().get("/x", HTTP_X_TRACE_ID="bad id\n"))
    assert odd["X-Trace-Id"] != "bad id\n"


def test_the_user_is_not_looked_up_for_a_log_line(json_log):
    from django.contrib.auth.models import AnonymousUser
    from django.utils.functional import SimpleLazyObject

    looked_up = []

    def view(request):
        request.user = SimpleLazyObject(lambda: looked_up.append(1) or AnonymousUser())
        logging.getLogger("realtime.test").info("lazy")
        return HttpResponse("ok")

    TraceMiddleware(view)(RequestFactory().get("/x"))
    assert json_log()[0]["user_id"] is None and looked_up == []


async def test_the_async_middleware_binds_and_resets(json_log):
    async def view(request):
        logging.getLogger("realtime.test").info("async view")
        return HttpResponse("ok")

    response = await TraceMiddleware(view)(RequestFactory().get("/x"))
    assert json_log()[0]["trace_id"] == response["X-Trace-Id"]
    assert logcontext.current() == {}


@pytest.mark.django_db
def test_http_responses_carry_the_trace_header(client):
    assert len(client.get("/favicon.ico")["X-Trace-Id"]) == 16


# ---------------------------------------------------------------- settings
def load(monkeypatch, **env: str) -> dict:
    for name in ("DEBUG", "SECRET_KEY", "LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(SETTINGS))


def test_log_format_is_json_in_production_plain_in_development(monkeypatch):
    def formatter(**env: str) -> str:
        return load(monkeypatch, **env)["LOGGING"]["handlers"]["console"]["formatter"]

    assert formatter(DEBUG="0", SECRET_KEY="x" * 50) == "json"
    assert formatter(DEBUG="1") == "plain"
    assert formatter(DEBUG="1", LOG_FORMAT="json") == "json"
    assert formatter(DEBUG="0", SECRET_KEY="x" * 50, LOG_FORMAT="plain") == "plain"
    with pytest.raises(ImproperlyConfigured, match="LOG_FORMAT"):
        load(monkeypatch, DEBUG="1", LOG_FORMAT="xml")
