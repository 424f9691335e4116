"""The vectorised navigation core shared by :class:`~envs.image_nav_env.ImageNavEnv` (one agent) and
:class:`~envs.vec_env.ImageNavVecEnv` (``N`` agents): the per-agent state over a world.

- :func:`prepare_navigation`: splits environment keyword arguments into a :class:`~envs.rules.NavConfig` and a
  :class:`~envs.world.NavWorld` (the static scenes, features and goals; built by the named constructor of the scene
  source: :meth:`~envs.world.NavWorld.from_generator`, ``from_folder`` or ``from_scenes``).
- :class:`NavCore`: ``N`` agents as arrays (scene, variant, cell, heading, goal, steps, path length, visited cells,
  start distance, ...), their geometry (distances to the goal) and the saved state of episodes in progress
  (:meth:`NavCore.agent_state`). The core is assembled from one module per concept, each mixed in:

  - the task rules: :mod:`envs.rules` (:class:`NavRules`, :class:`NavConfig`, the action sets);
  - episode sampling at resets: :mod:`envs.episodes` (per-agent draws; TV frame streams);
  - the array-level step, rewards and infos: :mod:`envs.stepping`;
  - the observation and action spaces and the observations: :mod:`envs.observation`;
  - frames of an agent's episode: :mod:`envs.rendering`.

  The names users import from here (``from envs.core import NavConfig, NavCore``, the constants of
  ``__all__``) keep working.

Geometry: the agent stands on a cell of the ``h x w`` patch grid (``h = H / patch_size``). The grid is open (no
obstacles) and bounded: moving into the border is a step that leaves the agent where it is. The geodesic
distance is therefore the Manhattan distance in cells; ``path_length`` counts the cells actually moved.
Headings: 0 up (north), 1 right (east), 2 down (south), 3 left (west).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from envs import MAX_EPISODE_STEPS
from envs.agents import AgentState
from envs.crops import CellCrops
from envs.episodes import TV_BLOCK, EpisodeSamplingMixin
from envs.features import SceneFeatures
from envs.goals import image_goal_candidates
from envs.observation import FEATURE_BOUND, ObservationMixin, rotated_offsets
from envs.rendering import RenderingMixin
from envs.rules import EGOCENTRIC_ACTIONS, GRID_ACTIONS, STOP, ActionMode, NavConfig, NavRules
from envs.scenes import Scene, SceneGenerator
from envs.stepping import INFO_KEYS, SUCCESS_DISTANCES, SteppingMixin
from envs.world import NavWorld, TaskName, WorldOptions

_CONFIG_FIELDS = tuple(NavRules.__dataclass_fields__)
#: Where the environments' keyword arguments are declared (:func:`envs.contract.check_argument_types`; the folder's
#: ``n_scenes: int | None`` comes last and wins).
ARGUMENT_SIGNATURES = (NavConfig, WorldOptions, NavWorld.from_generator, NavWorld.from_folder)


def prepare_navigation(
    task: TaskName = "imagenav", world: NavWorld | None = None, **kwargs: Any
) -> tuple[NavConfig, NavWorld]:
    """Split environment keyword arguments into a :class:`NavConfig` and a :class:`NavWorld` (built unless given).

    ``kwargs`` holds :class:`NavConfig` fields and, without ``world``, the scene source and
    :class:`~envs.world.WorldOptions` (:func:`_world_from_arguments`).
    """
    if world is not None and "tv" not in kwargs:  # the rules follow the world's TV unless given
        kwargs["tv"] = world.tv_mode
    config = NavConfig(task=task, **{k: kwargs.pop(k) for k in _CONFIG_FIELDS if k in kwargs})
    if world is None:
        world = _world_from_arguments(task=task, observation=config.observation, tv=config.tv, **kwargs)
    elif kwargs:
        raise ValueError(
            f"world was given, so the scene/encoder arguments {sorted(kwargs)} would be ignored; drop them or build "
            "a new world (envs.world.NavWorld.from_generator(...), from_folder or from_scenes)"
        )
    if world.tv_mode != config.tv:
        raise ValueError(
            f"tv={config.tv!r} but the world was built with tv={world.tv_mode!r}; build it with tv={config.tv!r} "
            "(NavWorld.from_generator(tv=..., ...) or the other constructors)"
        )
    return config, world


def _world_from_arguments(
    scenes: Sequence[Scene] | None = None,
    scene_features: SceneFeatures | None = None,
    scene_folder: str | os.PathLike | None = None,
    scene_generator: SceneGenerator | None = None,
    **kwargs: Any,
) -> NavWorld:
    """The world of the environments' keyword arguments, built by the :class:`NavWorld` constructor of their scene
    source: prebuilt ``scenes`` (with their ``scene_features``), a ``scene_folder`` or the procedural generator."""
    if scenes is not None:
        return NavWorld.from_scenes(scenes, scene_features, **kwargs)
    if scene_features is not None:
        raise ValueError("scene_features are the features of prebuilt scenes: pass those scenes too (scenes=...)")
    if scene_folder is not None:
        return NavWorld.from_folder(scene_folder, **kwargs)
    return NavWorld.from_generator(generator=scene_generator, **kwargs)


class NavCore(EpisodeSamplingMixin, SteppingMixin, ObservationMixin, RenderingMixin):
    """``N`` navigating agents over one :class:`NavWorld`, stepped with array operations.

    The environments own the random generators and call :meth:`reset_agents` (with one generator per agent),
    :meth:`step` and :meth:`observe`; everything else here is deterministic.
    """

    def __init__(self, config: NavConfig, world: NavWorld, n_agents: int, max_episode_steps: int = MAX_EPISODE_STEPS):
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        if config.has_features and world.features is None:
            raise ValueError(
                f"observation={config.observation!r} needs features but the world has none; build it with "
                f"observation={config.observation!r} (an encoder for 'mean' / 'window') or use "
                "observation='pixels'"
            )
        if config.task == "objectnav" and world.object_goals is None:
            raise ValueError("task='objectnav' needs object goals; build the world with task='objectnav'")
        if config.task == "objectnav" and config.has_features and world.object_goals.vectors is None:
            raise ValueError("the world's object goals were not encoded; build the world with an encoder")
        self.config = config
        self.world = world
        self.n = int(n_agents)
        self.h, self.w = world.grid_shape
        self.n_cells = self.h * self.w
        self.n_scenes, self.n_variants = world.n_scenes, world.n_variants
        self.patch_size = world.patch_size
        self.stop_index = config.n_actions - 1 if config.stop_action else -1
        r = config.patch_radius
        self.window = 2 * r + 1
        self.cell_pixels = config.pixel_cell or self.patch_size  # pixels per cell side of the pixel observations
        self.crop = self.window * self.cell_pixels
        self._win_dr, self._win_dc = rotated_offsets(self.window, 1)
        self._rows_grid, self._cols_grid = np.mgrid[0 : self.h, 0 : self.w]
        self._goal_candidates = [
            image_goal_candidates(s, self.patch_size, (self.h, self.w), config.image_goal) for s in world.scenes
        ]
        tv = world.tv
        #: ``(S, h, w)`` bool: a TV cell is inside the window observed from the cell (all False without a TV)
        self.tv_view = (
            np.zeros((self.n_scenes, self.h, self.w), bool) if tv is None else tv.in_view(r, (self.h, self.w))
        )
        if config.observation == "pixels" and config.task == "objectnav":
            g = world.object_goals.goal_images
            resized = [
                cv2.resize(im, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
                for im in g.reshape(-1, *g.shape[2:])
            ]
            self._goal_pixel_table = np.stack(resized)  # (G*K, P, P, 3)
        self._bind_views()
        self.max_episode_steps = int(max_episode_steps)
        pixel_goals = config.observation == "pixels" and config.task == "imagenav"
        #: every agent's episode in progress (:class:`envs.agents.AgentState`)
        self.agents = AgentState.zeros(
            self.n, (self.h, self.w), self.max_episode_steps, TV_BLOCK, self.crop if pixel_goals else None
        )
        self._all = np.arange(self.n)  # the index of every agent

    # ------------------------------------------------------------------------------------------ setup
    def _bind_views(self) -> None:
        """Numpy views into the (in-place refreshed) feature tensors; rebuilt after unpickling."""
        world, cfg = self.world, self.config
        self._wm = self._grid = self._goal_vecs = None
        if world.features is not None and cfg.has_features:
            d = world.features.dim
            self._wm = world.features.window_mean_numpy(cfg.patch_radius).reshape(-1, d)  # (S*V*h*w, D)
            self._grid = world.features.grids_numpy().reshape(-1, d)  # (S*V*h*w, D)
            if world.object_goals is not None:
                self._goal_vecs = world.object_goals.vectors.numpy().reshape(-1, d)  # (G*K, D)
        self._crops_of = None
        if cfg.observation == "pixels":
            images = world.images
            if self.cell_pixels != self.patch_size:  # area-average every scene once to cell_pixels per cell
                size = (self.w * self.cell_pixels, self.h * self.cell_pixels)
                flat = images.reshape(-1, *images.shape[2:])
                small = [cv2.resize(im, size, interpolation=cv2.INTER_AREA) for im in flat]
                images = np.stack(small).reshape(*images.shape[:2], size[1], size[0], 3)
            self._crops_of = CellCrops(images, self.cell_pixels, cfg.patch_radius)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_wm", "_grid", "_goal_vecs", "_crops_of"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

    def set_max_episode_steps(self, max_episode_steps: int) -> None:
        """Change the time limit (takes effect for episodes started afterwards; resizes the trail buffer)."""
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        if max_episode_steps != self.max_episode_steps:
            self.max_episode_steps = int(max_episode_steps)
            self.agents.resize_trail(self.max_episode_steps)

    # ------------------------------------------------------------------------------------------ geometry
    def distance_at(self, idx: np.ndarray | slice, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Geodesic (Manhattan) distance in cells from ``(rows, cols)`` to the goals of agents ``idx``."""
        if self.config.task == "imagenav":
            return np.abs(rows - self.agents.goal_row[idx]) + np.abs(cols - self.agents.goal_col[idx])
        return self.world.object_goals.distance_maps[self.agents.goal_id[idx], rows, cols].astype(np.int64)

    def _distance_map(self, goal_cell: tuple[int, int] | None, goal_id: int) -> np.ndarray:
        if self.config.task == "imagenav":
            return np.abs(self._rows_grid - goal_cell[0]) + np.abs(self._cols_grid - goal_cell[1])
        return self.world.object_goals.distance_maps[goal_id]

    # ------------------------------------------------------------------------------------------ state
    #: The names of :meth:`poses`, in order.
    POSE_FIELDS: tuple[str, ...] = ("scene", "variant", "row", "col", "heading")

    def poses(self) -> dict[str, np.ndarray]:
        """Where each agent is now: copies of its ``scene``, colour ``variant``, cell ``row`` / ``col`` and ``heading``,
        each ``(N,)`` int64 (what the curiosity learners record per step; the arrays stay the core's own)."""
        return {name: getattr(self.agents, name).copy() for name in self.POSE_FIELDS}

    def agent_state(self) -> dict[str, Any]:
        """The agents' episodes in progress (:meth:`AgentState.state_dict`) and the time limit; with the same world,
        :meth:`load_agent_state` continues each episode exactly where it was."""
        return {"max_episode_steps": self.max_episode_steps, **self.agents.state_dict()}

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state` (same number of agents and grid)."""
        if "max_episode_steps" not in state:
            raise ValueError(
                "agent state lacks ['max_episode_steps']; it was saved by another version of the environment"
            )
        self.set_max_episode_steps(int(state["max_episode_steps"]))
        self.agents.load_state_dict(state)


__all__ = [
    "EGOCENTRIC_ACTIONS",
    "FEATURE_BOUND",
    "GRID_ACTIONS",
    "INFO_KEYS",
    "STOP",
    "SUCCESS_DISTANCES",
    "TV_BLOCK",
    "ActionMode",
    "NavConfig",
    "NavCore",
    "NavRules",
    "prepare_navigation",
]
