"""The AsyncAPI 3.0 document of the socket endpoints, built from their own tables.

The toolkit imports no endpoint: the caller hands over the routes (``socket_routes``
reads them off ``websocket_urlpatterns``). Each endpoint is one channel; what the
server receives is its consumer's route table (its ``messages``, the common ``ping``,
``pong`` and ``auth.refresh`` and its callback ``replies``), what it sends is its
``sends`` table plus the frames every socket may get. Every payload schema is the
pydantic model's own ``model_json_schema``, wrapped in the envelope of
docs/protocol.md §1; ``error`` and the close codes of §2 are components.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from realtime.codes import CLOSE_CODES
from realtime.connection import PongPayload
from realtime.protocol import (
    REQUEST_ID_PATTERN,
    TYPE_PATTERN,
    ErrorCode,
    ErrorPayload,
    StrictModel,
)

Schema = dict[str, Any]
SCHEMAS = "#/components/schemas/"
ANY_OBJECT: Schema = {"type": "object", "description": "any JSON object"}
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"

_PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")


class AuthRefreshed(StrictModel):
    """``auth.refreshed``: the new expiry (``null``: the socket no longer expires)."""

    expires_at: str | None


# What every socket may be sent besides its endpoint's own ``sends`` (§2, §4).
COMMON_SENDS: dict[str, type[BaseModel] | Schema] = {
    "ping": PongPayload,  # the heartbeat: answer ``pong`` with the same nonce
    "pong": ANY_OBJECT,  # the client's ``ping`` payload, echoed
    "auth.refreshed": AuthRefreshed,
}


@dataclass(frozen=True, slots=True)
class SocketRoute:
    """One socket path (AsyncAPI address syntax, ``/ws/sessions/{code}/``)."""

    address: str
    consumer: type


def socket_routes(patterns: Iterable[Any]) -> list[SocketRoute]:
    """The routes of ``websocket_urlpatterns`` written with ``path()``.

    A ``re_path`` catch-all has no address to publish: the 4004 close covers it.
    """
    routes = []
    for pattern in patterns:
        route = getattr(pattern.pattern, "_route", None)
        consumer = getattr(pattern.callback, "consumer_class", None)
        if route and consumer is not None:
            routes.append(SocketRoute("/" + _PARAMETER.sub(r"{\1}", route), consumer))
    return routes


def asyncapi_document(
    *,
    routes: Iterable[SocketRoute],
    title: str,
    version: str,
    description: str = "",
    servers: Mapping[str, Schema] | None = None,
) -> Schema:
    """The whole document for ``routes`` (each consumer an ``EnvelopeConsumer``)."""
    routes = list(routes)
    schemas = _Schemas(_models(routes))
    channels: dict[str, Schema] = {}
    operations: dict[str, Schema] = {}
    for route in routes:
        name = _unique(route.consumer.endpoint, channels)
        channels[name] = _channel(route, schemas)
        for action, prefix in (("receive", "receive."), ("send", "send.")):
            operations[f"{name}.{action}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{name}"},
                "summary": _ACTIONS[action],
                "messages": [
                    {"$ref": f"#/channels/{name}/messages/{key}"}
                    for key in channels[name]["messages"]
                    if key.startswith(prefix)
                ],
            }
    document: Schema = {
        "asyncapi": "3.0.0",
        "info": {"title": title, "version": version, "description": description},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": _components(schemas),
    }
    if servers:
        document["servers"] = dict(servers)
    return document


_ACTIONS = {
    "receive": "client → server: what the server takes on this socket",
    "send": "server → client: what the server may send on this socket",
}


def _unique(name: str, taken: Mapping[str, Any]) -> str:
    candidate, n = name, 1
    while candidate in taken:
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _sends(consumer: type) -> dict[str, type[BaseModel] | Schema]:
    return {**COMMON_SENDS, **getattr(consumer, "sends", {})}


def _models(routes: list[SocketRoute]) -> list[type[BaseModel]]:
    """Every model the routes name, once, in a stable order."""
    found: dict[type[BaseModel], None] = {ErrorPayload: None}
    for route in routes:
        for table in (route.consumer.inbound.routes, _sends(route.consumer)):
            for entry in table.values():
                model = getattr(entry, "model", entry)
                if isinstance(model, type) and issubclass(model, BaseModel):
                    found[model] = None
    return list(found)


class _Schemas:
    """Every model's schema under ``components.schemas``, names made unique by
    pydantic (two ``MessageRef`` models get their modules' names)."""

    def __init__(self, models: list[type[BaseModel]]) -> None:
        refs, defs = models_json_schema(
            [(model, "validation") for model in models],
            ref_template=SCHEMAS + "{model}",
        )
        self.refs = {model: refs[(model, "validation")] for model in models}
        self.defs: dict[str, Schema] = defs.get("$defs", {})

    def payload(self, entry: type[BaseModel] | Schema | None) -> Schema:
        if entry is None:
            return ANY_OBJECT
        if isinstance(entry, type):
            return dict(self.refs[entry])
        return dict(entry)


def _channel(route: SocketRoute, schemas: _Schemas) -> Schema:
    consumer = route.consumer
    messages: dict[str, Schema] = {}
    for type_, entry in consumer.inbound.routes.items():
        messages["receive." + type_] = _message(
            type_,
            schemas.payload(entry.model),
            summary="client → server",
            reply=entry.reply,
        )
    if getattr(consumer, "accepts_binary", False):
        messages["receive.binary"] = {
            "name": "binary",
            "title": "binary frame",
            "summary": "client → server: a binary frame, where a text frame says so",
            "contentType": "application/octet-stream",
            "payload": {"type": "string", "format": "binary"},
        }
    for type_, entry in _sends(consumer).items():
        messages["send." + type_] = _message(
            type_, schemas.payload(entry), summary="server → client", server=True
        )
    messages["send.error"] = {"$ref": "#/components/messages/error"}
    channel: Schema = {
        "address": route.address,
        "title": consumer.endpoint,
        "description": _describe(consumer),
        "messages": messages,
        "x-auth": _auth(consumer),
    }
    names = _PARAMETER_NAME.findall(route.address)
    if names:
        channel["parameters"] = {
            name: {"description": f"the path segment {name}"} for name in names
        }
    return channel


_PARAMETER_NAME = re.compile(r"{(\w+)}")


def _describe(consumer: type) -> str:
    """The consumer's own docstring, else its module's (an endpoint's summary)."""
    doc = consumer.__dict__.get("__doc__") or sys.modules[consumer.__module__].__doc__
    return " ".join((doc or "").split("\n\n")[0].split())


def _auth(consumer: type) -> str:
    if getattr(consumer, "users_only", False):
        return "a signed-in user's credential (a guest's scoped token is closed 4005)"
    if getattr(consumer, "auth_required", True):
        return "a credential (§3): user or scoped guest token"
    return "checked by the endpoint itself when it connects"


def _message(
    type_: str,
    payload: Schema,
    *,
    summary: str,
    reply: bool = False,
    server: bool = False,
) -> Schema:
    envelope = _envelope(type_, payload, server=server, reply=reply)
    if reply:
        summary += ": the answer to a server → client request, with its request_id"
    return {
        "name": type_,
        "title": type_,
        "summary": summary,
        "contentType": "application/json",
        "payload": envelope,
    }


def _envelope(type_: str, payload: Schema, *, server: bool, reply: bool) -> Schema:
    """§1's envelope around ``payload``: one object, no other keys."""
    timestamp = (
        {"$ref": SCHEMAS + "Timestamp"}
        if server
        else {"type": "string", "description": "ISO-8601, optional"}
    )
    required = ["type", "payload"]
    if server:
        required.append("timestamp")
    if reply:
        required.append("request_id")
    return {
        "type": "object",
        "properties": {
            "type": {"type": "string", "const": type_},
            "payload": payload,
            "timestamp": timestamp,
            "request_id": {"$ref": SCHEMAS + "RequestId"},
        },
        "required": required,
        "additionalProperties": False,
    }


def _components(schemas: _Schemas) -> Schema:
    codes = sorted(CLOSE_CODES)
    return {
        "schemas": {
            **schemas.defs,
            "MessageType": {"type": "string", "pattern": TYPE_PATTERN, "maxLength": 64},
            "RequestId": {
                "type": "string",
                "pattern": REQUEST_ID_PATTERN,
                "description": "echoed on the reply; set on server → client requests",
            },
            "Timestamp": {
                "type": "string",
                "pattern": TIMESTAMP_PATTERN,
                "description": "UTC, millisecond precision, Z suffix",
            },
            "CloseCode": {
                "type": "integer",
                "enum": codes,
                "description": "; ".join(
                    f"{code} {CLOSE_CODES[code][1]}" for code in codes
                ),
            },
        },
        "messages": {
            "error": _message(
                "error",
                schemas.payload(ErrorPayload),
                summary="server → client: a refused frame or request (§2); "
                "the socket stays open",
                server=True,
            )
        },
        "x-error-codes": [code.value for code in ErrorCode],
        "x-close-codes": {
            str(code): {"name": name, "meaning": meaning, "client_should": advice}
            for code, (name, meaning, advice) in sorted(CLOSE_CODES.items())
        },
    }


def asyncapi_outline(document: Schema) -> list[Schema]:
    """The document as rows for a page: per channel its address, description and
    messages, each with its payload schema as indented JSON (references to
    ``components.schemas`` followed once)."""
    schemas = document.get("components", {}).get("schemas", {})
    shared = document.get("components", {}).get("messages", {})
    outline = []
    for name, channel in document["channels"].items():
        rows: dict[str, list[Schema]] = {"receive": [], "send": []}
        for key, message in channel["messages"].items():
            if "$ref" in message:
                message = shared[message["$ref"].rsplit("/", 1)[1]]
            payload = message["payload"]
            if "properties" in payload:
                payload = payload["properties"]["payload"]
            ref = payload.get("$ref", "")
            if ref.startswith(SCHEMAS):
                payload = schemas[ref[len(SCHEMAS) :]]
            rows[key.split(".", 1)[0]].append(
                {
                    "type": message["name"],
                    "summary": message.get("summary", ""),
                    "schema": json.dumps(payload, indent=2, ensure_ascii=False),
                }
            )
        outline.append(
            {
                "name": name,
                "address": channel["address"],
                "description": channel.get("description", ""),
                "auth": channel.get("x-auth", ""),
                "parameters": sorted(channel.get("parameters", {})),
                "operations": [
                    ("receive: client → server", rows["receive"]),
                    ("send: server → client", rows["send"]),
                ],
            }
        )
    return outline
