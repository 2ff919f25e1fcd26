"""Camera intrinsics and smooth camera paths (world frame: metres, z up).

Poses are `cam_from_world` 4x4 matrices mapping world points into the OpenCV camera frame
(x right, y down, z forward). Consecutive views turn by a fixed step of 8-12 degrees plus a
slow wobble, so neighbouring photos overlap strongly.
"""

from __future__ import annotations

import numpy as np

FOCAL_RATIO = 0.8  # fx = fy = 0.8 * width: about 64 degrees horizontal field of view
WORLD_UP = np.array([0.0, 0.0, 1.0])


def intrinsics(width: int, height: int) -> np.ndarray:
    """(3, 3) K in pixels; principal point at the image centre in COLMAP pixel-centre terms."""
    f = FOCAL_RATIO * width
    return np.array([[f, 0.0, width / 2.0], [0.0, f, height / 2.0], [0.0, 0.0, 1.0]])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = WORLD_UP) -> np.ndarray:
    """(4, 4) cam_from_world of an OpenCV camera at `eye` looking at `target`, `up` up
    (world y stands in for `up` when the camera looks along it)."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    forward = target - eye
    forward = forward / np.linalg.norm(forward)
    right = np.cross(forward, up)
    if np.linalg.norm(right) < 1e-6:
        right = np.cross(forward, [0.0, 1.0, 0.0])
    right = right / np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    out = np.eye(4)
    out[:3, :3] = rot
    out[:3, 3] = -rot @ eye
    return out


def _direction(yaw: float, pitch: float) -> np.ndarray:
    """Unit world vector with heading `yaw` (rad, from +x towards +y) and elevation `pitch`."""
    return np.array([np.cos(pitch) * np.cos(yaw), np.cos(pitch) * np.sin(yaw), np.sin(pitch)])


def step_degrees(num_views: int, total: float, lo: float, hi: float) -> float:
    """Per-view turn: `total` degrees spread over the views, clipped to [lo, hi]."""
    return float(np.clip(total / max(num_views - 1, 1), lo, hi))


def room_path(
    rng: np.random.Generator, num_views: int, half: np.ndarray, height: float
) -> list[np.ndarray]:
    """Cameras on an ellipse between the middle furniture and the walls, looking across the
    room (past the middle cluster at the far walls and their furniture) and slightly down.
    Moving sideways to the viewing direction gives every pair of neighbours parallax."""
    step = np.deg2rad(step_degrees(num_views, 320.0, 8.0, 12.0))
    start = rng.uniform(0, 2 * np.pi)
    across = np.pi + np.deg2rad(rng.uniform(-25.0, 25.0))  # heading relative to the radius
    radii = 0.5 * half
    eye_h = min(1.55, 0.6 * height)
    poses = []
    for k in range(num_views):
        phi = start + k * step
        eye = np.array([radii[0] * np.cos(phi), radii[1] * np.sin(phi), eye_h])
        eye[2] += 0.08 * np.sin(2 * np.pi * k / 11.0)
        yaw = phi + across + np.deg2rad(10.0) * np.sin(2 * np.pi * k / 23.0)
        pitch = -np.deg2rad(18.0 + 5.0 * np.sin(2 * np.pi * k / 13.0))
        poses.append(look_at(eye, eye + _direction(yaw, pitch)))
    return poses


def ring_path(rng: np.random.Generator, num_views: int, cluster_radius: float) -> list[np.ndarray]:
    """Cameras on an arc around the object cluster, looking inwards and down at it."""
    step = np.deg2rad(step_degrees(num_views, 330.0, 8.0, 12.0))
    start = rng.uniform(0, 2 * np.pi)
    radius = 2.0 + cluster_radius * 0.5
    poses = []
    for k in range(num_views):
        phi = start + k * step
        eye = np.array([radius * np.cos(phi), radius * np.sin(phi), 1.45])
        eye[2] += 0.2 * np.sin(2 * np.pi * k / 14.0)
        wobble = 0.15 * np.array([np.sin(2 * np.pi * k / 12.0), np.cos(2 * np.pi * k / 15.0), 0.0])
        target = np.array([0.0, 0.0, 0.3]) + wobble
        poses.append(look_at(eye, target))
    return poses
