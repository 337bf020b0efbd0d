"""ArUco detection, pose accuracy, transforms, annotation and JPEG encoding."""

from __future__ import annotations

import json
import math

import cv2
import numpy as np
import pytest

from camera import pipeline
from camera.markers import (
    CameraModel,
    DetectorConfig,
    MarkerPose,
    detect_markers,
    pairwise_transforms,
    relative_pose,
)
from camera.pipeline import annotate, encode_jpeg, process_frame
from camera.refine import refine_corners
from camera.synthetic import SyntheticScene

pytestmark = pytest.mark.timeout(60)

WIDTH, HEIGHT = 640, 480


def config_for(width: int = WIDTH, height: int = HEIGHT, **extra) -> DetectorConfig:
    return DetectorConfig(camera=CameraModel.default(width, height), **extra)


def rotation_error_deg(rvec_estimated: np.ndarray, rvec_true: np.ndarray) -> float:
    estimated = cv2.Rodrigues(np.asarray(rvec_estimated, dtype=np.float64))[0]
    true = cv2.Rodrigues(np.asarray(rvec_true, dtype=np.float64))[0]
    cosine = (np.trace(estimated.T @ true) - 1.0) / 2.0
    return math.degrees(math.acos(float(np.clip(cosine, -1.0, 1.0))))


def homogeneous(rvec, tvec) -> np.ndarray:
    transform = np.eye(4)
    transform[:3, :3] = cv2.Rodrigues(np.asarray(rvec, dtype=np.float64))[0]
    transform[:3, 3] = tvec
    return transform


def opencv_drawn_markers() -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """White canvas with markers from generateImageMarker, and their outer corners."""
    aruco_dict = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_4X4_50)
    canvas = np.full((HEIGHT, WIDTH), 255, np.uint8)
    expected: dict[int, np.ndarray] = {}
    for marker_id, (x, y, side) in {
        0: (40, 40, 120),
        17: (300, 60, 90),
        42: (420, 280, 150),
    }.items():
        canvas[y : y + side, x : x + side] = cv2.aruco.generateImageMarker(
            aruco_dict, marker_id, side
        )
        # Pixel centres are integers: the square's outer edges lie half a pixel out.
        low_x, low_y, high_x, high_y = x - 0.5, y - 0.5, x + side - 0.5, y + side - 0.5
        expected[marker_id] = np.array(
            [[low_x, low_y], [high_x, low_y], [high_x, high_y], [low_x, high_y]]
        )
    return cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR), expected


def test_detects_markers_opencv_draws() -> None:
    image, expected = opencv_drawn_markers()

    found = detect_markers(image, detector_config=config_for())

    assert [m.id for m in found] == sorted(expected)
    for marker in found:
        assert marker.corners.shape == (4, 2)
        # Top-left, top-right, bottom-right, bottom-left, to a fraction of a pixel.
        assert np.abs(marker.corners - expected[marker.id]).max() < 0.25
        assert marker.tvec[2] > 0
        assert marker.distance_m == pytest.approx(float(np.linalg.norm(marker.tvec)))


def test_detects_in_grey_images_and_finds_nothing_in_blank_ones() -> None:
    image, expected = opencv_drawn_markers()
    config = config_for()

    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)

    assert [m.id for m in detect_markers(grey, detector_config=config)] == sorted(
        expected
    )
    blank = np.full((HEIGHT, WIDTH, 3), 128, np.uint8)
    assert detect_markers(blank, detector_config=config) == []


def test_refine_corners_takes_plain_arrays_and_finds_the_true_edges() -> None:
    image, expected = opencv_drawn_markers()
    gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    camera = CameraModel.default(WIDTH, HEIGHT)
    truth = expected[42]
    # A detector's corners can be a pixel or so off on the coarse pass's scale.
    rough = truth + np.array([[0.8, -0.6], [-0.7, 0.5], [0.6, 0.7], [-0.5, -0.8]])

    refined = refine_corners(
        gray, rough, 6, camera_matrix=camera.matrix(), dist=camera.dist_array()
    )

    assert np.abs(refined - truth).max() < 0.1


def test_marker_json_is_plain_and_rounded() -> None:
    image, _ = opencv_drawn_markers()
    marker = detect_markers(image, detector_config=config_for())[0]

    data = marker.to_json()

    assert set(data) == {"id", "corners", "rvec", "tvec", "distance_m"}
    assert json.loads(json.dumps(data, allow_nan=False)) == data
    assert all(type(v) is float for v in data["rvec"] + data["tvec"])
    assert all(len(str(v).partition(".")[2]) <= 6 for v in data["tvec"])
    assert len(data["corners"]) == 4 and all(len(c) == 2 for c in data["corners"])
    assert data["distance_m"] == pytest.approx(math.hypot(*data["tvec"]), abs=1e-5)


def test_pose_accuracy_against_synthetic_ground_truth() -> None:
    scene = SyntheticScene(WIDTH, HEIGHT, n_markers=4)
    worst_translation, worst_rotation, distances = 0.0, 0.0, []

    for index in range(0, 1800, 9):  # 200 frames, one minute of motion at 30 fps
        image, truth = scene.render(index)
        found = {m.id: m for m in detect_markers(image, detector_config=scene.config)}
        assert sorted(found) == [t.id for t in truth], f"frame {index}"
        for true in truth:
            marker = found[true.id]
            translation = np.linalg.norm(marker.tvec - true.tvec) / true.distance_m
            worst_translation = max(worst_translation, translation)
            worst_rotation = max(
                worst_rotation, rotation_error_deg(marker.rvec, true.rvec)
            )
            distances.append(true.distance_m)

    assert min(distances) < 0.4 and max(distances) > 0.9  # the whole depth range
    assert worst_translation < 0.01
    assert worst_rotation < 2.0


def test_relative_pose_of_known_markers() -> None:
    def pose(marker_id: int, rvec, tvec) -> MarkerPose:
        tvec = np.array(tvec, dtype=np.float64)
        return MarkerPose(
            id=marker_id,
            corners=np.zeros((4, 2)),
            rvec=np.array(rvec, dtype=np.float64),
            tvec=tvec,
            distance_m=float(np.linalg.norm(tvec)),
        )

    # a faces the camera (180 degrees about x); b is 0.2 m to a's right (camera +x)
    # and turned 90 degrees about its own normal.
    a = pose(4, [math.pi, 0, 0], [0.0, 0.0, 0.5])
    b_rotation = (
        cv2.Rodrigues(np.array([math.pi, 0, 0]))[0]
        @ cv2.Rodrigues(np.array([0, 0, math.pi / 2]))[0]
    )
    b = pose(9, cv2.Rodrigues(b_rotation)[0].ravel(), [0.2, 0.0, 0.5])

    rvec, tvec = relative_pose(a, b)

    np.testing.assert_allclose(tvec, [0.2, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(rvec, [0.0, 0.0, math.pi / 2], atol=1e-9)
    # Listed once, from the smaller id to the larger, whatever the input order.
    assert pairwise_transforms([b, a]) == [
        {
            "from": 4,
            "to": 9,
            "rvec": [0.0, 0.0, round(math.pi / 2, 6)],
            "tvec": [0.2, 0.0, 0.0],
        }
    ]


def test_pairwise_transforms_match_ground_truth() -> None:
    scene = SyntheticScene(WIDTH, HEIGHT, n_markers=3)

    for index in range(0, 1800, 30):
        image, truth = scene.render(index)
        found = detect_markers(image, detector_config=scene.config)
        transforms = pairwise_transforms(found)

        assert [(t["from"], t["to"]) for t in transforms] == [(3, 7), (3, 12), (7, 12)]
        true_by_id = {t.id: t for t in truth}
        for transform in transforms:
            assert set(transform) == {"from", "to", "rvec", "tvec"}
            a, b = true_by_id[transform["from"]], true_by_id[transform["to"]]
            expected = np.linalg.inv(homogeneous(a.rvec, a.tvec)) @ homogeneous(
                b.rvec, b.tvec
            )
            estimated = homogeneous(transform["rvec"], transform["tvec"])
            angle = rotation_error_deg(
                cv2.Rodrigues(estimated[:3, :3])[0], cv2.Rodrigues(expected[:3, :3])[0]
            )
            # Both markers' errors add up, and a's rotation error swings b's
            # position by its lever arm (up to ~0.4 m): hence looser than one pose.
            assert angle < 3.0, (index, transform)
            offset = np.linalg.norm(estimated[:3, 3] - expected[:3, 3])
            assert offset < 0.02 * max(a.distance_m, b.distance_m), (index, transform)


def test_annotate_draws_on_a_copy() -> None:
    scene = SyntheticScene(WIDTH, HEIGHT)
    image, _ = scene.render(12)
    original = image.copy()
    found = detect_markers(image, detector_config=scene.config)

    drawn = annotate(image, found, scene.camera, scene.config.marker_length_m)

    assert np.array_equal(image, original)
    assert drawn.shape == image.shape and drawn is not image
    assert np.count_nonzero(np.any(drawn != image, axis=2)) > 500
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    assert annotate(grey, found, scene.camera, 0.05).shape == image.shape
    assert np.array_equal(annotate(image, [], scene.camera, 0.05), image)


def test_process_frame_encodes_each_kind_once(monkeypatch) -> None:
    scene = SyntheticScene(WIDTH, HEIGHT)
    image, truth = scene.render(40)
    calls: list[tuple[int, ...]] = []
    real_encode = pipeline.encode_jpeg

    def counting_encode(frame: np.ndarray, quality: int = 80) -> bytes:
        calls.append(frame.shape)
        return real_encode(frame, quality)

    monkeypatch.setattr(pipeline, "encode_jpeg", counting_encode)

    result = process_frame(image, config=scene.config)

    assert len(calls) == 2
    assert set(result.jpeg) == {"raw", "annotated"}
    for data in result.jpeg.values():
        assert data[:2] == b"\xff\xd8"
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (HEIGHT, WIDTH, 3)
    assert result.jpeg["raw"] != result.jpeg["annotated"]
    assert (result.width, result.height) == (WIDTH, HEIGHT)
    assert result.detect_ms > 0 and result.encode_ms > 0
    assert [m.id for m in result.markers] == [t.id for t in truth]
    assert len(result.transforms) == 3

    calls.clear()
    only = process_frame(image, config=scene.config, kinds=("annotated", "annotated"))
    assert len(calls) == 1 and set(only.jpeg) == {"annotated"}
    calls.clear()
    assert process_frame(image, config=scene.config, kinds=()).jpeg == {}
    assert calls == []
    with pytest.raises(ValueError, match="thermal"):
        process_frame(image, config=scene.config, kinds=("thermal",))


def test_poses_payload_matches_protocol() -> None:
    scene = SyntheticScene(WIDTH, HEIGHT)
    image, _ = scene.render(3)
    result = process_frame(image, config=scene.config, kinds=("raw",))

    payload = result.poses_payload(17, 1_700_000_000.25)

    assert set(payload) == {"seq", "captured_at", "markers", "transforms"}
    assert payload["seq"] == 17 and payload["captured_at"] == 1_700_000_000.25
    assert [m["id"] for m in payload["markers"]] == [3, 7, 12]
    assert payload["transforms"] == result.transforms
    json.dumps(payload, allow_nan=False)


def test_encode_jpeg_quality_bounds() -> None:
    image = np.zeros((48, 64, 3), np.uint8)
    assert encode_jpeg(image, 50)[:2] == b"\xff\xd8"
    with pytest.raises(ValueError):
        encode_jpeg(image, 0)


def test_unknown_dictionary_names_the_accepted_ones() -> None:
    with pytest.raises(ValueError, match="DICT_4X4_50") as error:
        config_for(dictionary="DICT_9X9_7")
    assert "DICT_9X9_7" in str(error.value)
    with pytest.raises(ValueError, match="marker_length_m"):
        config_for(marker_length_m=0)


def test_camera_model() -> None:
    camera = CameraModel.default(640, 480)

    assert camera.matrix().tolist() == [[576, 0, 320], [0, 576, 240], [0, 0, 1]]
    assert camera.dist_array().shape == (5,)
    assert json.loads(json.dumps(camera.to_json())) == {
        "fx": 576.0,
        "fy": 576.0,
        "cx": 320.0,
        "cy": 240.0,
        "dist": [0.0] * 5,
    }
    parsed = CameraModel.parse("600,610,330.5,250", "0.1,-0.2,0,0,0.05")
    assert parsed == CameraModel(600, 610, 330.5, 250, (0.1, -0.2, 0, 0, 0.05))
    assert hash(parsed) == hash(
        CameraModel(600, 610, 330.5, 250, [0.1, -0.2, 0, 0, 0.05])
    )
    with pytest.raises(ValueError, match="fx,fy,cx,cy"):
        CameraModel.parse("600,610,330")
    with pytest.raises(ValueError):
        CameraModel(0, 1, 1, 1)


def test_detection_with_lens_distortion() -> None:
    # Barrel distortion as a cheap wide-angle webcam has; the scene's homography
    # render is exact only at the corners, so only corners and distance are checked.
    camera = CameraModel(576, 576, 320, 240, (-0.12, 0.05, 0.0, 0.0, 0.0))
    scene = SyntheticScene(WIDTH, HEIGHT, config=DetectorConfig(camera=camera))

    for index in range(0, 900, 90):
        image, truth = scene.render(index)
        found = {m.id: m for m in detect_markers(image, detector_config=scene.config)}
        for true in truth:
            marker = found[true.id]
            assert np.abs(marker.corners - true.corners).max() < 0.5
            assert abs(marker.distance_m - true.distance_m) < 0.01 * true.distance_m
