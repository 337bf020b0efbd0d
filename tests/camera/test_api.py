"""REST endpoints, pages and admin of camera streams, fed by the live recorder."""

from __future__ import annotations

import time

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from rest_framework.test import APIClient

from camera.live import LiveRecorder, stream_live_status
from camera.models import Stream
from realtime.presence import presence_set
from tests.camera.conftest import jpeg, poses_payload
from tests.conftest import access_token

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def signed_in(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {access_token(user)}")
    return client


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def record(slug: str, frames: int = 3, clock: Clock | None = None) -> Clock:
    """Frames through a recorder, as the ingest socket or the worker records them."""
    clock = clock or Clock()
    recorder = LiveRecorder(slug, interval=0, clock=clock)
    for seq in range(1, frames + 1):
        recorder.poses(poses_payload(seq, captured_at=clock.now))
        recorder.frame(seq=seq, kind="raw", captured_at=clock.now, jpeg=jpeg(seq))
        clock.now += 0.1
    return clock


def test_list_shows_public_streams_to_anybody_all_to_users(api, signed_in, stream):
    Stream.objects.create(slug="open", public=True)
    assert [s["id"] for s in api.get("/api/streams/").json()] == ["open"]
    body = signed_in.get("/api/streams/").json()
    assert [s["id"] for s in body] == ["cam", "open"]
    cam = body[0]
    assert cam["title"] == "Bench camera" and cam["kinds"] == ["raw", "annotated"]
    assert "publish_token" not in cam
    assert cam["urls"] == {
        "socket": "/ws/streams/cam/",
        "page": "/streams/cam/",
        "images": {
            "raw": "/api/streams/cam/images/raw.jpg",
            "annotated": "/api/streams/cam/images/annotated.jpg",
        },
        "transforms": "/api/streams/cam/transforms/",
    }
    assert cam["status"]["live"] is False and cam["status"]["last_frame_at"] is None


def test_detail_and_status_with_live_data(signed_in, stream, monkeypatch):
    clock = record("cam", frames=11)
    monkeypatch.setattr("camera.live.time.time", clock)
    presence_set(conn_id="v1", entries={"stream.cam": {}})
    status = signed_in.get("/api/streams/cam/status/").json()
    assert status["stream_id"] == "cam" and status["live"] is True
    assert status["fps"] == pytest.approx(10.0)
    assert status["seq"] == 11 and status["viewers"] == 1
    assert status["kinds_available"] == ["raw"]
    assert status["last_frame_at"].endswith("Z")
    detail = signed_in.get("/api/streams/cam/").json()
    assert detail["status"] == status
    assert detail["camera_matrix"]["fx"] == 576.0 and detail["calibrated"] is False

    clock.now += 60  # the worker stopped: not live, no rate, last time kept
    later = signed_in.get("/api/streams/cam/status/").json()
    assert later["live"] is False and later["fps"] == 0.0
    assert later["last_frame_at"] == status["last_frame_at"]


def test_latest_image_and_transforms(api, signed_in, stream):
    assert signed_in.get("/api/streams/cam/images/raw.jpg").status_code == 404
    missing = signed_in.get("/api/streams/cam/transforms/")
    assert missing.status_code == 404 and "no poses yet" in missing.json()["detail"]
    record("cam", frames=2)

    image = signed_in.get("/api/streams/cam/images/raw.jpg", HTTP_ACCEPT="image/*")
    assert image.status_code == 200 and image["Content-Type"] == "image/jpeg"
    assert image.content == jpeg(2) and image["X-Frame-Seq"] == "2"
    assert image["Cache-Control"] == "no-store"
    none_yet = signed_in.get(
        "/api/streams/cam/images/annotated.jpg", HTTP_ACCEPT="image/jpeg"
    )
    assert none_yet.status_code == 404  # JSON error, even to an <img>
    assert "no annotated frame yet" in none_yet.json()["detail"]
    unknown = signed_in.get("/api/streams/cam/images/depth.jpg")
    assert unknown.status_code == 404 and "no kind 'depth'" in unknown.json()["detail"]

    transforms = signed_in.get("/api/streams/cam/transforms/").json()
    assert transforms["stream_id"] == "cam" and transforms["seq"] == 2
    assert transforms["markers"][0]["id"] == 7 and transforms["transforms"] == []


def test_private_streams_need_a_user_public_ones_do_not(api, signed_in, stream):
    Stream.objects.create(slug="open", public=True)
    record("open", frames=1)
    for path in (
        "/api/streams/cam/",
        "/api/streams/cam/status/",
        "/api/streams/cam/images/raw.jpg",
        "/api/streams/cam/transforms/",
        "/api/streams/nope/",  # 401 as well: nothing learnt about what exists
    ):
        assert api.get(path).status_code == 401, path
    assert signed_in.get("/api/streams/nope/").status_code == 404
    assert api.get("/api/streams/open/").status_code == 200
    assert api.get("/api/streams/open/images/raw.jpg").status_code == 200
    assert api.get("/api/streams/open/transforms/").status_code == 200


def test_schema_lists_the_stream_endpoints(api):
    schema = api.get("/api/schema/")
    assert schema.status_code == 200
    for path in (b"/api/streams/", b"/images/{kind}.jpg", b"/transforms/"):
        assert path in schema.content


def test_pages(user, stream):
    Stream.objects.create(slug="open", public=True, title="Open lab")
    client = Client()
    index = client.get("/streams/")
    assert index.status_code == 200 and b"Open lab" in index.content
    assert b"/streams/cam/" not in index.content
    page = client.get("/streams/open/")
    assert page.status_code == 200
    assert b'data-stream="open"' in page.content and b"camera-viewer.js" in page.content
    assert client.get("/streams/cam/").status_code == 302  # to the login page
    assert client.get("/streams/nope/").status_code == 404
    client.force_login(user)
    assert b'data-signed-in="1"' in client.get("/streams/cam/").content
    empty = Client().get("/streams/")
    Stream.objects.filter(public=True).delete()
    assert (
        b"runcamera" in Client().get("/streams/").content and empty.status_code == 200
    )


def test_admin_shows_live_status_and_regenerates_tokens(staff, stream):
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/camera/stream/")
    assert page.status_code == 200 and b"never" in page.content
    record("cam", frames=3, clock=Clock(time.time()))
    presence_set(conn_id="v1", entries={"stream.cam": {}})
    page = client.get("/admin/camera/stream/")
    assert b"UTC" in page.content and b"watch" in page.content
    assert client.get(f"/admin/camera/stream/{stream.pk}/change/").status_code == 200
    old = stream.publish_token
    reply = client.post(
        "/admin/camera/stream/",
        {"action": "regenerate_tokens", "_selected_action": [stream.pk]},
    )
    assert reply.status_code == 302
    stream.refresh_from_db()
    assert stream.publish_token != old and len(stream.publish_token) >= 40


def test_model_validation():
    stream = Stream(slug="ok", camera_matrix={"fx": 500, "fy": 500, "cx": 1, "cy": 2})
    stream.full_clean()
    assert stream.camera_model().fx == 500 and str(stream) == "ok"
    assert stream.info_payload()["calibrated"] is True
    for matrix in ([500, 500, 1, 2], [[500, 0, 1], [0, 500, 2], [0, 0, 1]]):
        same = Stream(slug="ok", camera_matrix=matrix, dist_coeffs=[0.1, 0, 0, 0])
        same.full_clean()
        model = same.camera_model()
        assert (model.fx, model.cy, model.dist) == (500, 2, (0.1, 0, 0, 0, 0))
    bad = Stream(
        slug="no.dots",
        dictionary="DICT_NOPE",
        marker_length_m=0,
        fps=0,
        width=0,
        kinds=["raw", "raw"],
        camera_matrix=[[1, 2], [3]],
    )
    with pytest.raises(ValidationError) as info:
        bad.full_clean()
    assert set(info.value.message_dict) >= {
        "slug",
        "dictionary",
        "marker_length_m",
        "fps",
        "width",
        "kinds",
        "camera_matrix",
    }


def test_recorder_throttles_cache_writes():
    clock = Clock()
    recorder = LiveRecorder("cam", interval=1.0, clock=clock)
    recorder.flush()  # nothing seen yet: nothing written
    assert stream_live_status(slug="cam", now=clock.now)["seq"] is None
    recorder.frame(seq=1, kind="raw", captured_at=1.0, jpeg=jpeg(1))  # first: written
    clock.now += 0.5
    recorder.frame(seq=2, kind="raw", captured_at=1.0, jpeg=jpeg(2))  # too soon
    assert stream_live_status(slug="cam", now=clock.now)["seq"] == 1
    clock.now += 0.6
    recorder.frame(seq=3, kind="raw", captured_at=1.0, jpeg=jpeg(3))
    status = stream_live_status(slug="cam", now=clock.now, viewers=False)
    assert status["seq"] == 3 and status["frames"] == 3 and "viewers" not in status
    assert recorder.fps() == pytest.approx(2 / 1.1)
