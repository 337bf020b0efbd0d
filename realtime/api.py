"""REST side of the toolkit: socket tickets, stats, health, readiness and metrics."""

from __future__ import annotations

import asyncio
import ipaddress

from channels.db import database_sync_to_async
from channels.layers import get_channel_layer
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from realtime import metrics
from realtime.conf import realtime_settings
from realtime.dbthread import database_thread
from realtime.drain import is_draining
from realtime.presence import presence_stats
from realtime.redisconn import async_redis, is_cluster, redis_url
from realtime.tokens import ticket_issue


class TicketView(APIView):
    """A one-time socket ticket (docs/protocol.md §3): 30 s, usable once."""

    permission_classes = [IsAuthenticated]
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "ticket"

    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "Ticket",
                {
                    "ticket": serializers.CharField(),
                    "expires_in": serializers.IntegerField(),
                },
            )
        },
    )
    def post(self, request: Request) -> Response:
        token = request.auth
        expires_at = (
            float(token["exp"]) if token is not None and "exp" in token else None
        )
        ticket = ticket_issue(user_id=request.user.pk, expires_at=expires_at)
        return Response(
            {"ticket": ticket, "expires_in": realtime_settings.TICKET_TTL}, status=201
        )


class StatsView(APIView):
    """Connections across every server process (from the shared presence store)."""

    permission_classes = [IsAdminUser]

    @extend_schema(
        responses=inline_serializer(
            "RealtimeStats",
            {
                "online_users": serializers.IntegerField(),
                "total_connections": serializers.IntegerField(),
                "active_rooms": serializers.IntegerField(),
                "by_endpoint": serializers.DictField(child=serializers.IntegerField()),
            },
        )
    )
    def get(self, request: Request) -> Response:
        return Response(presence_stats())


def _check_database() -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")


async def _check_layer() -> None:
    layer = get_channel_layer()
    channel = await layer.new_channel("readyz.")
    await layer.send(channel, {"type": "readyz.ping"})
    await asyncio.wait_for(layer.receive(channel), timeout=2)


async def _check_cluster() -> None:
    """On a Redis Cluster the channel layer is the process's own (broadcasts cross
    processes on the hub's relay): what must answer is the cluster, every primary."""
    client = async_redis()
    info = await client.cluster_info()
    if info.get("cluster_state") != "ok":
        raise ConnectionError(f"cluster_state is {info.get('cluster_state')}")
    await client.ping(target_nodes=client.PRIMARIES)


class DatabaseThreadStuck(Exception):
    """The sockets' database thread has run one call past ``REALTIME_DB_CALL_STUCK``."""


async def _check_database_thread() -> None:
    if database_thread.busy_for() > float(realtime_settings.REALTIME_DB_CALL_STUCK):
        raise DatabaseThreadStuck


async def readyz(request: HttpRequest) -> JsonResponse:
    """Database, cache and channel layer all answer; 503 at once while draining, so
    that the load balancer sends nobody new to a stopping process."""
    if is_draining():
        return JsonResponse({"status": "draining", "checks": {}}, status=503)
    checks: dict[str, str] = {}
    for name, check in (
        # On this request's own thread (Django's per-request ThreadSensitiveContext),
        # not behind the sockets' calls on the database thread: a busy room must not
        # time the probe out and take the process out of the balancer.
        ("database", lambda: database_sync_to_async(_check_database)()),
        ("database_thread", _check_database_thread),
        ("cache", lambda: database_sync_to_async(cache.get)("readyz-probe")),
        ("redis_cluster", _check_cluster)
        if is_cluster(redis_url())
        else ("channel_layer", _check_layer),
    ):
        try:
            await asyncio.wait_for(check(), timeout=3)
            checks[name] = "ok"
        except Exception as exc:  # report every failing dependency, never raise
            checks[name] = f"error: {type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return JsonResponse(
        {"status": "ok" if ready else "unavailable", "checks": checks},
        status=200 if ready else 503,
    )


def _is_loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus text; staff or loopback only."""
    user = getattr(request, "user", None)
    # Behind a local proxy every request comes from loopback: proxied ones must log in.
    local = _is_loopback(request.META.get("REMOTE_ADDR", "")) and not request.META.get(
        "HTTP_X_FORWARDED_FOR"
    )
    if not (local or (user and user.is_staff)):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE)
