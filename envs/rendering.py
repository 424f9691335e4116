"""RGB frames of a navigation episode: the scene, visited cells, the goal, the trail and the agent with its heading.

- :func:`render_navigation_frame`: one frame from a scene image and an episode's cells.
- :class:`RenderingMixin`: :meth:`~RenderingMixin.snapshot` / :meth:`~RenderingMixin.render` of an agent of
  :class:`~envs.core.NavCore` (mixed into it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

#: Row/column step of each heading: 0 up (north), 1 right (east), 2 down (south), 3 left (west); clockwise.
HEADING_DELTAS: tuple[tuple[int, int], ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))

VISITED_TINT = (255, 255, 255)
GOAL_COLOUR = (255, 0, 255)
SUCCESS_REGION_TINT = (255, 0, 255)
TRAIL_COLOUR = (255, 170, 0)
AGENT_COLOUR = (230, 30, 30)
ARROW_COLOUR = (255, 255, 255)
OUTLINE_COLOUR = (20, 20, 20)


def _cell_mask_to_pixels(mask: np.ndarray, patch: int) -> np.ndarray:
    """``(h, w)`` bool -> ``(h*patch, w*patch)`` bool."""
    return np.repeat(np.repeat(mask, patch, axis=0), patch, axis=1)


def _blend(frame: np.ndarray, mask: np.ndarray, colour: Sequence[int], alpha: float) -> None:
    """Blend ``colour`` into ``frame`` where ``mask`` (in place)."""
    if mask.any():
        region = frame[mask].astype(np.float32)
        frame[mask] = (region * (1.0 - alpha) + np.asarray(colour, np.float32) * alpha).round().astype(np.uint8)


def render_navigation_frame(
    image: np.ndarray,
    patch_size: int,
    position: tuple[int, int],
    heading: int,
    *,
    visited: np.ndarray | None = None,
    trail: np.ndarray | None = None,
    goal_cell: tuple[int, int] | None = None,
    goal_boxes: Sequence[tuple[int, int, int, int]] = (),
    success_radius: int = 0,
    scale: int = 1,
) -> np.ndarray:
    """Draw one agent's episode on its scene image.

    Args:
        image: ``(H, W, 3)`` uint8 RGB scene (the colour variant the agent currently sees).
        patch_size: pixels per grid cell.
        position: the agent's cell ``(row, col)``.
        heading: 0 up, 1 right, 2 down, 3 left (drawn as an arrow).
        visited: ``(h, w)`` bool cells visited this episode (lightened).
        trail: ``(T, 2)`` cells ``(row, col)`` in visiting order (drawn as a polyline).
        goal_cell: the image-goal cell (marked, with its success region tinted).
        goal_boxes: object-goal instances as inclusive cell boxes ``(r0, c0, r1, c1)`` (outlined).
        success_radius: Manhattan radius of the tinted success region around ``goal_cell``.
        scale: integer upscaling of the output (nearest neighbour) for small scenes.

    Returns:
        ``(H * scale, W * scale, 3)`` uint8 RGB frame.
    """
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    frame = np.ascontiguousarray(image, dtype=np.uint8).copy()
    if scale > 1:
        frame = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    p = patch_size * scale
    grid_h, grid_w = frame.shape[0] // p, frame.shape[1] // p
    if visited is not None:
        _blend(frame, _cell_mask_to_pixels(np.asarray(visited, bool), p), VISITED_TINT, 0.35)
    if goal_cell is not None:
        rows, cols = np.mgrid[0:grid_h, 0:grid_w]
        region = (np.abs(rows - goal_cell[0]) + np.abs(cols - goal_cell[1])) <= success_radius
        _blend(frame, _cell_mask_to_pixels(region, p), SUCCESS_REGION_TINT, 0.25)
        y0, x0 = goal_cell[0] * p, goal_cell[1] * p
        cv2.rectangle(frame, (x0, y0), (x0 + p - 1, y0 + p - 1), OUTLINE_COLOUR, max(1, p // 7) + 2)
        cv2.rectangle(frame, (x0, y0), (x0 + p - 1, y0 + p - 1), GOAL_COLOUR, max(1, p // 7))
        cv2.drawMarker(
            frame, (x0 + p // 2, y0 + p // 2), GOAL_COLOUR, cv2.MARKER_STAR, max(4, p * 3 // 4), max(1, p // 10)
        )
    for r0, c0, r1, c1 in goal_boxes:
        corners = (c0 * p, r0 * p), ((c1 + 1) * p - 1, (r1 + 1) * p - 1)
        cv2.rectangle(frame, *corners, OUTLINE_COLOUR, max(1, p // 7) + 2)
        cv2.rectangle(frame, *corners, GOAL_COLOUR, max(1, p // 7))

    def centre(cell) -> tuple[int, int]:  # (row, col) -> pixel (x, y)
        return int(cell[1] * p + p // 2), int(cell[0] * p + p // 2)

    if trail is not None and len(trail) > 1:
        points = np.array([centre(c) for c in np.asarray(trail)], dtype=np.int32).reshape(-1, 1, 2)
        cv2.polylines(frame, [points], False, TRAIL_COLOUR, max(1, p // 8), cv2.LINE_AA)
    cx, cy = centre(position)
    radius = max(2, int(p * 0.42))
    cv2.circle(frame, (cx, cy), radius, AGENT_COLOUR, -1, cv2.LINE_AA)
    cv2.circle(frame, (cx, cy), radius, OUTLINE_COLOUR, max(1, p // 14), cv2.LINE_AA)
    dr, dc = HEADING_DELTAS[int(heading) % 4]
    tip = (int(cx + dc * radius * 0.95), int(cy + dr * radius * 0.95))
    cv2.arrowedLine(frame, (cx, cy), tip, ARROW_COLOUR, max(1, p // 10), cv2.LINE_AA, tipLength=0.5)
    return frame


class RenderingMixin:
    """Frames of the agents of :class:`~envs.core.NavCore` (mixed in; uses its config, world and agent arrays)."""

    # ------------------------------------------------------------------------------------------ rendering
    def snapshot(self, i: int) -> dict[str, Any]:
        """Everything needed to render agent ``i``'s episode so far (copies; safe to keep after a reset)."""
        i = int(i)
        steps = int(min(self.agents.steps[i], self.max_episode_steps))
        goal_id = int(self.agents.goal_id[i])
        return {
            "scene": int(self.agents.scene[i]),
            "variant": int(self.agents.variant[i]),
            "position": (int(self.agents.row[i]), int(self.agents.col[i])),
            "heading": int(self.agents.heading[i]),
            "visited": self.agents.visited[i].copy(),
            "trail": self.agents.trail[i, : steps + 1].copy(),
            "goal_cell": (int(self.agents.goal_row[i]), int(self.agents.goal_col[i]))
            if self.config.task == "imagenav"
            else None,
            "goal_boxes": list(self.world.object_goals.instance_boxes[goal_id]) if goal_id >= 0 else [],
        }

    def render_snapshot(self, snap: dict[str, Any], scale: int = 1) -> np.ndarray:
        """RGB frame of a :meth:`snapshot` (scene variant, visited cells, goal, trail, agent and heading)."""
        return render_navigation_frame(
            self.world.images[snap["scene"], snap["variant"]],
            self.patch_size,
            snap["position"],
            snap["heading"],
            visited=snap["visited"],
            trail=snap["trail"],
            goal_cell=snap["goal_cell"],
            goal_boxes=snap["goal_boxes"],
            success_radius=self.config.success_radius,
            scale=scale,
        )

    def render(self, i: int, scale: int = 1) -> np.ndarray:
        """RGB frame of agent ``i``'s current episode."""
        return self.render_snapshot(self.snapshot(i), scale)


__all__ = ["HEADING_DELTAS", "RenderingMixin", "render_navigation_frame"]
