"""config/settings.py with a Redis Cluster in REDIS_URL."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.test_settings import load


@pytest.mark.parametrize(
    "url", ["redis+cluster://10.0.0.5:6379", "rediss+cluster://:pw@10.0.0.5:6380"]
)
def test_a_cluster_url_gets_the_cluster_cache_and_a_process_layer(monkeypatch, url):
    s = load(monkeypatch, DEBUG="1", REDIS_URL=url)
    assert s["REDIS_CLUSTER"] is True
    assert (
        s["CACHES"]["default"]["BACKEND"] == "realtime.clustercache.RedisClusterCache"
    )
    assert s["CACHES"]["default"]["LOCATION"] == url
    # channels-redis cannot follow MOVED: the hub's relay crosses processes.
    assert s["CHANNEL_LAYERS"]["default"]["BACKEND"].endswith("InMemoryChannelLayer")
    assert s["REALTIME_FANOUT"] == "hub"


def test_the_layer_fan_out_is_refused_on_a_cluster(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match="REALTIME_FANOUT=layer"):
        load(
            monkeypatch,
            DEBUG="1",
            REDIS_URL="redis+cluster://10.0.0.5:6379",
            REALTIME_FANOUT="layer",
        )


def test_an_unknown_scheme_names_the_cluster_ones(monkeypatch):
    with pytest.raises(ImproperlyConfigured, match=r"redis\+cluster://"):
        load(monkeypatch, DEBUG="1", REDIS_URL="cluster://10.0.0.5:6379")


def test_node_address_keeps_scheme_and_credentials():
    from realtime.redisconn import node_address

    assert (
        node_address("rediss+cluster://u:pw@seed:6379/0?ssl_cert_reqs=none", "n2", 7001)
        == "rediss://u:pw@n2:7001/0?ssl_cert_reqs=none"
    )
    assert node_address("redis+cluster://seed:6379", "n3", 7002) == "redis://n3:7002"
