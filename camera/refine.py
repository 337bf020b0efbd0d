"""Sub-pixel marker corners from lines fitted to whole edges (0.02-0.04 px)."""

from __future__ import annotations

import math

import cv2
import numpy as np

# Going outward across a marker edge, the only dark-to-bright step within about a
# bit is black border -> white quiet zone. The coarse pass finds that step within
# +-0.9 bit of the detector's edge (its corners can be 1-2 px off on small markers);
# the fine pass takes the 50 % crossing between the border's and the quiet zone's
# middles (+-0.5 bit), where neighbouring bits hardly reach through the blur. It
# assumes the printed quiet zone is at least one bit wide, as generators make it.
_REFINE_PASSES = ((True, 0.9), (False, 0.5))
_EDGE_SAMPLES = 16  # profiles per edge
_EDGE_MARGIN = 0.15  # fraction of the edge skipped at each end: the corners blur in
_PROFILE_STEP_PX = 0.25
_MIN_CONTRAST = 10.0  # grey levels between border and quiet zone to trust a profile
_NEXT = np.array([1, 2, 3, 0])
_PREVIOUS = np.array([3, 0, 1, 2])


def _edge_points(
    gray: np.ndarray, corners: np.ndarray, bits: int, reach: float, coarse: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Sub-pixel points on each of the 4 edges (4 x S x 2) and which are valid."""
    vectors = corners[_NEXT] - corners
    lengths = np.linalg.norm(vectors, axis=1)
    directions = vectors / lengths[:, None]
    # Corners run clockwise on screen, so (dy, -dx) points out of the marker.
    normals = np.stack([directions[:, 1], -directions[:, 0]], axis=1)
    # The bit size across an edge is set by the two neighbouring edges; under
    # perspective it differs from side to side.
    bit_across = (lengths[_PREVIOUS] + lengths[_NEXT]) / (2 * bits)
    half = reach * bit_across
    steps = max(2, math.ceil(half.max() / _PROFILE_STEP_PX))
    offsets = half[:, None] * (np.arange(-steps, steps + 1) / steps)[None, :]
    along = np.linspace(_EDGE_MARGIN, 1 - _EDGE_MARGIN, _EDGE_SAMPLES)
    bases = corners[:, None, :] + along[None, :, None] * vectors[:, None, :]
    points = (
        bases[:, :, None, :] + offsets[:, None, :, None] * normals[:, None, None, :]
    )
    maps = points.reshape(4 * _EDGE_SAMPLES, -1, 2).astype(np.float32)
    profiles = cv2.remap(
        gray, maps, None, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    offsets = np.repeat(offsets, _EDGE_SAMPLES, axis=0)
    rows = np.arange(len(profiles))
    if coarse:
        rises = np.diff(profiles, axis=1)
        j = np.argmax(rises, axis=1)
        position = (offsets[rows, j] + offsets[rows, j + 1]) / 2
        valid = rises[rows, j] > _MIN_CONTRAST / 2
    else:
        dark, bright = profiles[:, 0], profiles[:, -1]
        threshold = (dark + bright) / 2
        j = np.argmax(profiles >= threshold[:, None], axis=1)
        valid = (bright - dark > _MIN_CONTRAST) & (j > 0)
        j = np.maximum(j, 1)
        low, high = profiles[rows, j - 1], profiles[rows, j]
        fraction = (threshold - low) / np.where(high > low, high - low, 1.0)
        position = offsets[rows, j - 1] + fraction * (
            offsets[rows, j] - offsets[rows, j - 1]
        )
    edges = bases.reshape(-1, 2) + position[:, None] * np.repeat(
        normals, _EDGE_SAMPLES, axis=0
    )
    return edges.reshape(4, _EDGE_SAMPLES, 2), valid.reshape(4, _EDGE_SAMPLES)


def _fit_lines(points: np.ndarray, valid: np.ndarray) -> np.ndarray | None:
    """Lines (4 x 3, homogeneous) through each edge's points, or None if too few."""
    lines = np.empty((4, 3))
    for side in range(4):
        chosen = points[side][valid[side]]
        if len(chosen) < 4:
            return None
        # Huber rather than least squares: a scratch or a finger over part of an edge
        # should not tilt the whole line.
        dx, dy, x0, y0 = cv2.fitLine(
            chosen.astype(np.float32), cv2.DIST_HUBER, 0, 0.01, 0.001
        ).ravel()
        lines[side] = (-dy, dx, dy * x0 - dx * y0)
    return lines


def refine_corners(
    gray: np.ndarray,
    corners: np.ndarray,
    bits: int,
    *,
    camera_matrix: np.ndarray,
    dist: np.ndarray,
) -> np.ndarray:
    """Corners as intersections of lines fitted to the 4 edges; detector's if unsure.

    The camera comes as OpenCV's plain arrays (the 3x3 matrix K and the distortion
    coefficients), the ones ``solvePnP`` takes, so this module needs no camera type.
    """
    distorted = bool(np.any(dist))
    focal = camera_matrix[[0, 1], [0, 1]]
    centre = camera_matrix[[0, 1], [2, 2]]
    refined = corners
    for coarse, reach in _REFINE_PASSES:
        edges, valid = _edge_points(gray, refined, bits, reach, coarse)
        if distorted:
            # Edges are straight only once undistorted; fit there, map corners back.
            edges = cv2.undistortPoints(
                edges.reshape(-1, 1, 2), camera_matrix, dist, P=camera_matrix
            ).reshape(4, _EDGE_SAMPLES, 2)
        lines = _fit_lines(edges, valid)
        if lines is None:
            return corners
        # Corner i joins edge i-1 and edge i; the cross product of two homogeneous
        # lines is their intersection.
        points = np.cross(lines[_PREVIOUS], lines)
        if (np.abs(points[:, 2]) < 1e-3).any():  # (nearly) parallel edges
            return corners
        candidate = points[:, :2] / points[:, 2:]
        if distorted:
            normalized = (candidate - centre) / focal
            rays = np.hstack([normalized, np.ones((4, 1))])
            candidate = cv2.projectPoints(
                rays, np.zeros(3), np.zeros(3), camera_matrix, dist
            )[0].reshape(4, 2)
        refined = candidate
    # Moving a corner by more than half a bit (or 2 px) means an edge was mistaken
    # (occlusion, image border, a neighbour): the detector's corner is then safer.
    sides = np.linalg.norm(corners[_NEXT] - corners, axis=1)
    if np.abs(refined - corners).max() > max(2.0, 0.5 * sides.min() / bits):
        return corners
    return refined
