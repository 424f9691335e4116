"""The vectorised navigation core shared by :class:`~envs.image_nav_env.ImageNavEnv` (one agent) and
:class:`~envs.vec_env.ImageNavVecEnv` (``N`` agents): the task rules and the per-agent state over a world.

- :class:`NavConfig`: the task and its :class:`NavRules` (actions, observations, radii, rewards; frozen, validated).
- :func:`prepare_navigation`: splits environment keyword arguments into a :class:`NavConfig` and a
  :class:`~envs.world.NavWorld` (the static scenes, features and goals; built by :func:`envs.world.build_world`).
- :class:`NavCore`: ``N`` agents as arrays (scene, variant, cell, heading, goal, steps, path length, visited cells,
  start distance, ...) with one array-level :meth:`NavCore.step`; per-agent random draws happen only at episode
  resets, each from the agent's own generator, and always the same number of them, so two policies run with the
  same seeds face the same episodes. Flicker colours (every :data:`FLICKER_BLOCK` steps in flicker mode) come from
  a separate per-episode generator seeded by one reset draw: they never shift the episode stream.

Geometry: the agent stands on a cell of the ``h x w`` patch grid (``h = H / patch_size``). The grid is open (no
obstacles) and bounded: moving into the border is a step that leaves the agent where it is. The geodesic
distance is therefore the Manhattan distance in cells; ``path_length`` counts the cells actually moved.
Headings: 0 up (north), 1 right (east), 2 down (south), 3 left (west).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np
from gymnasium import spaces

from envs import MAX_EPISODE_STEPS, metrics
from envs.crops import CellCrops
from envs.goals import ImageGoalMode, cell_box, image_goal_candidates
from envs.rendering import HEADING_DELTAS, render_navigation_frame
from envs.world import NavWorld, ObservationMode, TaskName, build_world

ActionMode = Literal["grid", "egocentric"]

#: Action names in index order (``"stop"`` is appended when ``stop_action=True``).
GRID_ACTIONS: tuple[str, ...] = ("up", "down", "left", "right")
EGOCENTRIC_ACTIONS: tuple[str, ...] = ("forward", "turn_left", "turn_right")
STOP = "stop"

#: Observation features are clipped to ``[-FEATURE_BOUND, FEATURE_BOUND]`` (the Box bounds; never reached by
#: layer-normed encoder features in practice).
FEATURE_BOUND = 1.0e4
#: Flicker variant indices are drawn in blocks of this many steps per agent.
FLICKER_BLOCK = 64
#: Distances (cells) at which ``success_within_<k>`` is reported in the info of an episode's last step.
SUCCESS_DISTANCES: tuple[int, ...] = (0, 1, 2)

_HEADING_DR = np.array([d[0] for d in HEADING_DELTAS], dtype=np.int64)
_HEADING_DC = np.array([d[1] for d in HEADING_DELTAS], dtype=np.int64)
# grid actions up/down/left/right(/stop): row and column step, and the heading they leave the agent with (-1: keep)
_GRID_DR = np.array([-1, 1, 0, 0, 0], dtype=np.int64)
_GRID_DC = np.array([0, 0, -1, 1, 0], dtype=np.int64)
_GRID_HEADING = np.array([0, 2, 3, 1, -1], dtype=np.int64)
# egocentric actions forward/turn_left/turn_right(/stop)
_EGO_TURN = np.array([0, -1, 1, 0], dtype=np.int64)
_EGO_FORWARD = np.array([1, 0, 0, 0], dtype=np.int64)
_EYE4 = np.eye(4, dtype=np.float32)

INFO_KEYS: tuple[str, ...] = (
    "is_success",
    "distance_to_goal",
    "spl",
    "soft_spl",
    "coverage",
    "path_length",
    "scene_index",
    "variant_index",
    "position",
    "heading",
    "near_flicker",
)


@dataclass(frozen=True)
class NavRules:
    """The task rules a caller chooses (everything but the task itself; see :class:`~envs.image_nav_env.ImageNavEnv`).

    Each field's docstring is also its help text where a CLI config composes these rules
    (``techniques.rl_navigation.config.TwoPhaseConfig``, flags ``--patch-radius`` ...). Validated in
    :class:`NavConfig`.
    """

    actions: ActionMode = "grid"
    """action set: 'grid' (up/down/left/right) or 'egocentric' (forward/turn left/turn right)"""
    stop_action: bool = False
    """add a STOP action (success then needs STOP within the success radius; the -v1 tasks always have it)"""
    observation: ObservationMode = "mean"
    """feature observation: window mean (D,) or the full (2r+1, 2r+1, D) window; 'pixels': uint8 crops, no encoder
    (the Pixels tasks set it)"""
    patch_radius: int = 1
    """observed window radius in cells (and the forward model's feature window)"""
    success_radius: int = 1
    """success within this Manhattan distance (cells) of the goal"""
    min_start_distance: int = 8
    """minimum start distance from the goal (cells)"""
    include_position: bool = False
    """add the agent's normalised (row, col) to the observation"""
    include_heading: bool = False
    """add the agent's heading (one-hot; with grid actions the direction of its last move) to the observation"""
    success_reward: float = 1.0
    """reward of the successful step"""
    step_penalty: float = 0.01
    """reward -step_penalty at every step"""
    distance_reward_scale: float = 0.0
    """reward shaping by the decrease of the true geodesic distance (0: sparse success reward)"""
    image_goal: ImageGoalMode = "object"
    """where image goals are drawn: the centre cell of an object ('object') or any cell ('any')"""


@dataclass(frozen=True)
class NavConfig(NavRules):
    """Task rules shared by the environments: the task and its :class:`NavRules`, validated."""

    task: TaskName = "imagenav"
    """'imagenav' (image goal) or 'objectnav' (object goal)"""

    def __post_init__(self) -> None:
        choices = {
            "task": ("imagenav", "objectnav"),
            "actions": ("grid", "egocentric"),
            "observation": ("mean", "window", "pixels"),
            "image_goal": ("object", "any"),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.patch_radius < 0:
            raise ValueError(f"patch_radius must be >= 0 cells, got {self.patch_radius}")
        if self.success_radius < 0:
            raise ValueError(f"success_radius must be >= 0 cells, got {self.success_radius}")
        if self.min_start_distance <= self.success_radius:
            raise ValueError(
                f"min_start_distance ({self.min_start_distance}) must exceed success_radius ({self.success_radius}) "
                "so that no episode starts solved"
            )

    @property
    def action_names(self) -> tuple[str, ...]:
        base = GRID_ACTIONS if self.actions == "grid" else EGOCENTRIC_ACTIONS
        return (*base, STOP) if self.stop_action else base

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def needs_encoder(self) -> bool:
        return self.observation != "pixels"


_CONFIG_FIELDS = tuple(NavRules.__dataclass_fields__)


def prepare_navigation(
    task: TaskName = "imagenav", world: NavWorld | None = None, **kwargs: Any
) -> tuple[NavConfig, NavWorld]:
    """Split environment keyword arguments into a :class:`NavConfig` and a :class:`NavWorld` (built unless given).

    ``kwargs`` holds :class:`NavConfig` fields and, without ``world``, :func:`build_world` arguments.
    """
    config = NavConfig(task=task, **{k: kwargs.pop(k) for k in _CONFIG_FIELDS if k in kwargs})
    if world is None:
        world = build_world(task=task, observation=config.observation, **kwargs)
    elif kwargs:
        raise ValueError(
            f"world was given, so the scene/encoder arguments {sorted(kwargs)} would be ignored; drop them or build "
            "a new world with envs.world.build_world(...)"
        )
    return config, world


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """A numpy ``Generator`` in the saved ``bit_generator.state``."""
    generator = np.random.Generator(getattr(np.random, state["bit_generator"])())
    generator.bit_generator.state = state
    return generator


def _rotated_offsets(size: int, cell: int) -> tuple[np.ndarray, np.ndarray]:
    """Offsets ``(4, size, size)`` (rows, cols) of a ``size``-square view centred on a ``cell``-sized cell.

    Entry ``[heading, a, b]`` is the offset (from the cell's top-left pixel/cell) of the view's pixel ``(a, b)``
    when row 0 of the view is straight ahead for that heading; heading 0 (up) is the unrotated north-up view.
    """
    a, b = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    two_f = (size - 1) - 2 * a  # twice the forward offset from the view centre
    two_l = 2 * b - (size - 1)  # twice the offset to the right
    rights = ((0, 1), (1, 0), (0, -1), (-1, 0))
    dr = np.empty((4, size, size), dtype=np.int64)
    dc = np.empty((4, size, size), dtype=np.int64)
    for h in range(4):
        fr, fc = HEADING_DELTAS[h]
        rr, rc = rights[h]
        dr[h] = ((cell - 1) + two_f * fr + two_l * rr) // 2
        dc[h] = ((cell - 1) + two_f * fc + two_l * rc) // 2
    return dr, dc


class NavCore:
    """``N`` navigating agents over one :class:`NavWorld`, stepped with array operations.

    The environments own the random generators and call :meth:`reset_agents` (with one generator per agent),
    :meth:`step` and :meth:`observe`; everything else here is deterministic.
    """

    def __init__(self, config: NavConfig, world: NavWorld, n_agents: int, max_episode_steps: int = MAX_EPISODE_STEPS):
        if n_agents < 1:
            raise ValueError(f"n_agents must be >= 1, got {n_agents}")
        if config.needs_encoder and world.features is None:
            raise ValueError(
                f"observation={config.observation!r} needs encoder features but the world has none; build it with an "
                "encoder (build_world(encoder=...)) or use observation='pixels'"
            )
        if config.task == "objectnav" and world.object_goals is None:
            raise ValueError("task='objectnav' needs object goals; build the world with task='objectnav'")
        if config.task == "objectnav" and config.needs_encoder and world.object_goals.vectors is None:
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
        self.crop = self.window * self.patch_size
        self._win_dr, self._win_dc = _rotated_offsets(self.window, 1)
        self._rows_grid, self._cols_grid = np.mgrid[0 : self.h, 0 : self.w]
        self._goal_candidates = [
            image_goal_candidates(s, self.patch_size, (self.h, self.w), config.image_goal) for s in world.scenes
        ]
        self._near_flicker = self._near_flicker_grid(r)
        if config.observation == "pixels" and config.task == "objectnav":
            g = world.object_goals.goal_images
            resized = [
                cv2.resize(im, (self.crop, self.crop), interpolation=cv2.INTER_AREA)
                for im in g.reshape(-1, *g.shape[2:])
            ]
            self._goal_pixel_table = np.stack(resized)  # (G*K, P, P, 3)
        self._bind_views()
        self.max_episode_steps = int(max_episode_steps)
        before = set(vars(self))
        self._allocate()
        self._agent_fields = tuple(sorted(set(vars(self)) - before - {"_agents"}))  # what agent_state() saves

    # ------------------------------------------------------------------------------------------ setup
    def _near_flicker_grid(self, radius: int) -> np.ndarray:
        """``(S, h, w)`` bool: a flickering object lies within the agent's observed window (Chebyshev ``radius``)."""
        grid = np.zeros((self.n_scenes, self.h, self.w), dtype=bool)
        for s, (scene, indices) in enumerate(zip(self.world.scenes, self.world.flicker_objects)):
            for i in indices:
                r0, c0, r1, c1 = cell_box(scene.objects[i].bbox, self.patch_size, (self.h, self.w))
                grid[s, max(0, r0 - radius) : r1 + radius + 1, max(0, c0 - radius) : c1 + radius + 1] = True
        return grid

    def _bind_views(self) -> None:
        """Numpy views into the (in-place refreshed) feature tensors; rebuilt after unpickling."""
        world, cfg = self.world, self.config
        self._wm = self._grid = self._goal_vecs = None
        if world.features is not None and cfg.needs_encoder:
            d = world.features.dim
            self._wm = world.features.window_mean_numpy(cfg.patch_radius).reshape(-1, d)  # (S*V*h*w, D)
            self._grid = world.features.grids_numpy().reshape(-1, d)  # (S*V*h*w, D)
            if world.object_goals is not None:
                self._goal_vecs = world.object_goals.vectors.numpy().reshape(-1, d)  # (G*K, D)
        self._crops_of = (
            CellCrops(world.images, self.patch_size, cfg.patch_radius) if cfg.observation == "pixels" else None
        )

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_wm", "_grid", "_goal_vecs", "_crops_of"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._bind_views()

    def _allocate(self) -> None:
        n = self.n
        i64 = np.int64
        self.scene = np.zeros(n, i64)
        self.variant = np.zeros(n, i64)
        self.row = np.zeros(n, i64)
        self.col = np.zeros(n, i64)
        self.heading = np.zeros(n, i64)
        self.goal_row = np.zeros(n, i64)
        self.goal_col = np.zeros(n, i64)
        self.goal_id = np.full(n, -1, i64)
        self.goal_vec = np.zeros(n, i64)
        self.steps = np.zeros(n, i64)
        self.path_length = np.zeros(n, i64)
        self.visited = np.zeros((n, self.h, self.w), dtype=bool)
        self.visited_count = np.zeros(n, i64)
        self.start_distance = np.zeros(n, i64)
        self.distance = np.zeros(n, i64)
        self.episode_return = np.zeros(n, np.float64)
        self.episode_start = np.zeros(n, np.float64)
        self.near_flicker_steps = np.zeros(n, i64)
        self.flicker_seq = np.zeros((n, FLICKER_BLOCK), i64)
        self.flicker_rngs: list[np.random.Generator | None] = [None] * n
        self.trail = np.zeros((n, self.max_episode_steps + 1, 2), np.int16)
        self._agents = np.arange(n)
        if self.config.observation == "pixels" and self.config.task == "imagenav":
            self._goal_pixels = np.zeros((n, self.crop, self.crop, 3), np.uint8)

    def set_max_episode_steps(self, max_episode_steps: int) -> None:
        """Change the time limit (takes effect for episodes started afterwards; resizes the trail buffer)."""
        if max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        if max_episode_steps != self.max_episode_steps:
            self.max_episode_steps = int(max_episode_steps)
            trail = np.zeros((self.n, self.max_episode_steps + 1, 2), np.int16)
            keep = min(trail.shape[1], self.trail.shape[1])
            trail[:, :keep] = self.trail[:, :keep]
            self.trail = trail

    # ------------------------------------------------------------------------------------------ spaces
    def observation_space(self) -> spaces.Dict:
        """The observation space of one agent."""
        cfg = self.config
        items: dict[str, spaces.Space] = {}
        if cfg.observation == "pixels":
            shape = (self.crop, self.crop, 3)
            items["pixels"] = spaces.Box(0, 255, shape, np.uint8)
            items["goal_pixels"] = spaces.Box(0, 255, shape, np.uint8)
        else:
            d = self.world.features.dim
            shape = (d,) if cfg.observation == "mean" else (self.window, self.window, d)
            items["features"] = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, shape, np.float32)
            items["goal"] = spaces.Box(-FEATURE_BOUND, FEATURE_BOUND, (d,), np.float32)
        if cfg.include_position:
            items["position"] = spaces.Box(0.0, 1.0, (2,), np.float32)
        if cfg.include_heading:
            items["heading"] = spaces.Box(0.0, 1.0, (4,), np.float32)
        return spaces.Dict(items)

    def action_space(self) -> spaces.Discrete:
        return spaces.Discrete(self.config.n_actions)

    # ------------------------------------------------------------------------------------------ geometry
    def distance_at(self, idx: np.ndarray | slice, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """Geodesic (Manhattan) distance in cells from ``(rows, cols)`` to the goals of agents ``idx``."""
        if self.config.task == "imagenav":
            return np.abs(rows - self.goal_row[idx]) + np.abs(cols - self.goal_col[idx])
        return self.world.object_goals.distance_maps[self.goal_id[idx], rows, cols].astype(np.int64)

    def _distance_map(self, goal_cell: tuple[int, int] | None, goal_id: int) -> np.ndarray:
        if self.config.task == "imagenav":
            return np.abs(self._rows_grid - goal_cell[0]) + np.abs(self._cols_grid - goal_cell[1])
        return self.world.object_goals.distance_maps[goal_id]

    # ------------------------------------------------------------------------------------------ resets
    def _episode(self, rng: np.random.Generator, options: dict[str, Any] | None) -> dict[str, Any]:
        """Draw one episode from ``rng`` (always the same draws in the same order; options override results)."""
        opts = dict(options or {})
        unknown = set(opts) - {"scene_index", "variant_index", "goal", "start", "heading"}
        if unknown:
            raise ValueError(
                f"unknown reset option(s) {sorted(unknown)}; valid: scene_index, variant_index, goal, start, heading"
            )
        cfg, world = self.config, self.world
        scene = int(rng.integers(self.n_scenes))
        if "scene_index" in opts:
            scene = int(opts["scene_index"])
            if not 0 <= scene < self.n_scenes:
                raise ValueError(f"options['scene_index']={scene} is out of range [0, {self.n_scenes})")
        variant = int(rng.integers(self.n_variants)) if world.variant_mode == "episode" else 0
        if "variant_index" in opts:
            variant = int(opts["variant_index"])
            if not 0 <= variant < self.n_variants:
                raise ValueError(f"options['variant_index']={variant} is out of range [0, {self.n_variants})")
        goal_cell, goal_id, goal_k = None, -1, 0
        if cfg.task == "imagenav":
            cands = self._goal_candidates[scene]
            goal_cell = divmod(int(cands[rng.integers(len(cands))]), self.w)
            if "goal" in opts:
                goal_cell = self._cell_option(opts["goal"], "goal")
        else:
            goals = world.object_goals
            lo, hi = goals.goals_of_scene(scene).start, goals.goals_of_scene(scene).stop
            goal_id = lo + int(rng.integers(hi - lo))
            goal_k = int(rng.integers(goals.n_variants))
            if "goal" in opts:
                goal_id = self._class_option(opts["goal"], scene)
        dist = self._distance_map(goal_cell, goal_id)
        threshold = min(cfg.min_start_distance, int(dist.max()))
        cands = np.flatnonzero(dist.ravel() >= threshold)
        start = divmod(int(cands[rng.integers(len(cands))]), self.w)
        if "start" in opts:
            start = self._cell_option(opts["start"], "start")
        heading = int(rng.integers(4))
        if "heading" in opts:
            heading = int(opts["heading"])
            if not 0 <= heading < 4:
                raise ValueError(f"options['heading']={heading} must be 0 (up), 1 (right), 2 (down) or 3 (left)")
        flicker_seed = int(rng.integers(np.iinfo(np.int64).max)) if world.variant_mode == "flicker" else None
        if goal_cell is None:  # object goal: mark the nearest instance's cell for rendering
            goal_cell = self._nearest_instance_cell(goal_id, start)
        return {
            "scene": scene,
            "variant": variant,
            "goal_cell": goal_cell,
            "goal_id": goal_id,
            "goal_vec": max(goal_id, 0) * world.object_goals.n_variants + goal_k if goal_id >= 0 else 0,
            "start": start,
            "heading": heading,
            "start_distance": int(dist[start]),
            "flicker_seed": flicker_seed,
        }

    def _cell_option(self, value: Any, name: str) -> tuple[int, int]:
        try:
            r, c = (int(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"options[{name!r}] must be a (row, col) cell, got {value!r}") from None
        if not (0 <= r < self.h and 0 <= c < self.w):
            raise ValueError(f"options[{name!r}]={value!r} is outside the {self.h}x{self.w} grid")
        return r, c

    def _class_option(self, value: Any, scene: int) -> int:
        from envs.scenes import OBJECT_CLASSES

        goals = self.world.object_goals
        class_id = OBJECT_CLASSES.index(value) if isinstance(value, str) and value in OBJECT_CLASSES else value
        for g in goals.goals_of_scene(scene):
            if int(goals.goal_class[g]) == class_id:
                return g
        present = [goals.class_name(g) for g in goals.goals_of_scene(scene)]
        raise ValueError(f"options['goal']={value!r} is not a class present in scene {scene}; present: {present}")

    def _nearest_instance_cell(self, goal_id: int, start: tuple[int, int]) -> tuple[int, int]:
        boxes = self.world.object_goals.instance_boxes[goal_id]
        centres = [((r0 + r1) // 2, (c0 + c1) // 2) for r0, c0, r1, c1 in boxes]
        return min(centres, key=lambda rc: abs(rc[0] - start[0]) + abs(rc[1] - start[1]))

    def reset_agents(
        self,
        agents: Sequence[int] | np.ndarray,
        rngs: Sequence[np.random.Generator],
        options: Sequence[dict[str, Any] | None] | None = None,
    ) -> None:
        """Start new episodes for ``agents``, agent ``agents[k]`` drawing from ``rngs[k]``."""
        agents = np.asarray(agents, dtype=np.int64).reshape(-1)
        if len(agents) == 0:
            return
        options = options if options is not None else [None] * len(agents)
        eps = [self._episode(rng, opt) for rng, opt in zip(rngs, options)]
        self.scene[agents] = [e["scene"] for e in eps]
        self.goal_row[agents] = [e["goal_cell"][0] for e in eps]
        self.goal_col[agents] = [e["goal_cell"][1] for e in eps]
        self.goal_id[agents] = [e["goal_id"] for e in eps]
        self.goal_vec[agents] = [e["goal_vec"] for e in eps]
        self.row[agents] = [e["start"][0] for e in eps]
        self.col[agents] = [e["start"][1] for e in eps]
        self.heading[agents] = [e["heading"] for e in eps]
        self.start_distance[agents] = [e["start_distance"] for e in eps]
        self.distance[agents] = self.start_distance[agents]
        if self.world.variant_mode == "flicker":
            for i, e in zip(agents.tolist(), eps):
                self.flicker_rngs[i] = np.random.default_rng(e["flicker_seed"])
                self.flicker_seq[i] = self.flicker_rngs[i].integers(self.n_variants, size=FLICKER_BLOCK)
            self.variant[agents] = self.flicker_seq[agents, 0]
        else:
            self.variant[agents] = [e["variant"] for e in eps]
        self.steps[agents] = 0
        self.path_length[agents] = 0
        self.visited[agents] = False
        self.visited[agents, self.row[agents], self.col[agents]] = True
        self.visited_count[agents] = 1
        self.episode_return[agents] = 0.0
        self.episode_start[agents] = time.perf_counter()
        self.near_flicker_steps[agents] = 0
        self.trail[agents, 0, 0] = self.row[agents]
        self.trail[agents, 0, 1] = self.col[agents]
        if self.config.observation == "pixels" and self.config.task == "imagenav":
            self._goal_pixels[agents] = self._crops(
                self.scene[agents], np.zeros_like(agents), self.goal_row[agents], self.goal_col[agents],
                np.zeros_like(agents),
            )  # fmt: skip

    def reset_infos(self, agents: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Info dicts right after a reset (same keys as :meth:`step` infos; ``is_success`` False)."""
        idx = self._agents if agents is None else np.asarray(agents, dtype=np.int64)
        return self._infos(idx, np.zeros(len(idx), bool))

    # ------------------------------------------------------------------------------------------ stepping
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """Apply one action per agent. ``-> rewards (N,) float64, terminated (N,), truncated (N,), infos``.

        Every info holds ``distance_to_goal``, the shortest-path distance in cells. Infos of agents whose episode
        ended also carry ``info["episode"] = {"r", "l", "t"}``, ``info["near_flicker_fraction"]`` (fraction of the
        episode's steps that ended next to a flickering object) and ``info["success_within_<k>"]`` for ``k`` in
        :data:`SUCCESS_DISTANCES`: with a STOP action, STOP called within ``k`` cells of the goal (habitat-lab's
        success at distance ``k``); without one, the episode ended within ``k`` cells.
        """
        cfg = self.config
        a = np.asarray(actions).astype(np.int64, copy=False).reshape(-1)
        if a.shape != (self.n,):
            raise ValueError(f"expected {self.n} actions, got an array of shape {np.shape(actions)}")
        if a.min() < 0 or a.max() >= cfg.n_actions:
            raise ValueError(f"actions must be in [0, {cfg.n_actions}) ({', '.join(cfg.action_names)}), got {a}")
        if cfg.actions == "grid":
            dr, dc = _GRID_DR[a], _GRID_DC[a]
            new_heading = _GRID_HEADING[a]
            self.heading = np.where(new_heading >= 0, new_heading, self.heading)
        else:
            self.heading = (self.heading + _EGO_TURN[a]) % 4
            forward = _EGO_FORWARD[a]
            dr, dc = _HEADING_DR[self.heading] * forward, _HEADING_DC[self.heading] * forward
        row = np.minimum(np.maximum(self.row + dr, 0), self.h - 1)  # the border blocks the move
        col = np.minimum(np.maximum(self.col + dc, 0), self.w - 1)
        self.path_length += (row != self.row) | (col != self.col)
        self.row, self.col = row, col
        self.steps += 1
        agents = self._agents
        self.visited_count += ~self.visited[agents, row, col]
        self.visited[agents, row, col] = True
        self.trail[agents, np.minimum(self.steps, self.max_episode_steps), 0] = row
        self.trail[agents, np.minimum(self.steps, self.max_episode_steps), 1] = col
        previous = self.distance
        self.distance = self.distance_at(agents, row, col)
        within = self.distance <= cfg.success_radius
        if cfg.stop_action:
            terminated = a == self.stop_index
            success = terminated & within
        else:
            success = terminated = within
        truncated = ~terminated & (self.steps >= self.max_episode_steps)
        reward = success * cfg.success_reward - cfg.step_penalty
        if cfg.distance_reward_scale:
            reward = reward + cfg.distance_reward_scale * (previous - self.distance)
        self.episode_return += reward
        if self.world.variant_mode == "flicker":  # elsewhere the near-flicker grid is all False
            self.near_flicker_steps += self._near_flicker[self.scene, row, col]
            slot = self.steps % FLICKER_BLOCK
            for i in np.flatnonzero(slot == 0):
                self.flicker_seq[i] = self.flicker_rngs[i].integers(self.n_variants, size=FLICKER_BLOCK)
            self.variant = self.flicker_seq[agents, slot]
        infos = self._infos(agents, success)
        for i in np.flatnonzero(terminated | truncated):
            infos[i]["episode"] = {
                "r": round(float(self.episode_return[i]), 6),
                "l": int(self.steps[i]),
                "t": round(time.perf_counter() - float(self.episode_start[i]), 6),
            }
            infos[i]["near_flicker_fraction"] = float(self.near_flicker_steps[i] / self.steps[i])
            ended = not cfg.stop_action or a[i] == self.stop_index
            for k in SUCCESS_DISTANCES:
                infos[i][f"success_within_{k}"] = bool(ended and self.distance[i] <= k)
        return reward, terminated, truncated, infos

    def _infos(self, idx: np.ndarray, success: np.ndarray) -> list[dict[str, Any]]:
        distance, start, path = self.distance[idx], self.start_distance[idx], self.path_length[idx]
        scene, row, col = self.scene[idx], self.row[idx], self.col[idx]
        columns = zip(
            success.tolist(),
            distance.tolist(),
            metrics.spl(success, start, path).tolist(),
            metrics.soft_spl(distance, start, path).tolist(),
            (self.visited_count[idx] / self.n_cells).tolist(),
            path.tolist(),
            scene.tolist(),
            self.variant[idx].tolist(),
            zip(row.tolist(), col.tolist()),
            self.heading[idx].tolist(),
            self._near_flicker[scene, row, col].tolist(),
        )
        # a dict display per agent (the keys of INFO_KEYS, in order) is the cheapest way to build N dicts
        return [
            {
                "is_success": ok,
                "distance_to_goal": d,
                "spl": spl,
                "soft_spl": soft,
                "coverage": cov,
                "path_length": p,
                "scene_index": s,
                "variant_index": v,
                "position": pos,
                "heading": h,
                "near_flicker": nf,
            }
            for ok, d, spl, soft, cov, p, s, v, pos, h, nf in columns
        ]

    # ------------------------------------------------------------------------------------------ observing
    def observe(self, agents: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """Fresh observation arrays ``(n, ...)`` for ``agents`` (default all), keyed like :meth:`observation_space`."""
        cfg = self.config
        idx = self._agents if agents is None else np.asarray(agents, dtype=np.int64)
        s, v, r, c = self.scene[idx], self.variant[idx], self.row[idx], self.col[idx]
        heading = self.heading[idx] if cfg.actions == "egocentric" else np.zeros_like(idx)
        obs: dict[str, np.ndarray] = {}
        if cfg.observation == "pixels":
            obs["pixels"] = self._crops(s, v, r, c, heading)
            if cfg.task == "imagenav":
                obs["goal_pixels"] = self._goal_pixels[idx]
            else:
                obs["goal_pixels"] = self._goal_pixel_table[self.goal_vec[idx]]
        else:
            base = s * self.n_variants + v
            if cfg.observation == "mean":
                feats = self._wm[(base * self.h + r) * self.w + c]  # (n, D)
            else:
                feats = self._windows(base, r, c, heading)  # (n, K, K, D)
            obs["features"] = self._as_obs(feats)
            if cfg.task == "imagenav":
                goal = self._wm[((s * self.n_variants) * self.h + self.goal_row[idx]) * self.w + self.goal_col[idx]]
            else:
                goal = self._goal_vecs[self.goal_vec[idx]]
            obs["goal"] = self._as_obs(goal)
        if cfg.include_position:
            pos = np.stack([r / max(self.h - 1, 1), c / max(self.w - 1, 1)], axis=1)
            obs["position"] = pos.astype(np.float32)
        if cfg.include_heading:
            obs["heading"] = _EYE4[self.heading[idx]]
        return obs

    @staticmethod
    def _as_obs(x: np.ndarray) -> np.ndarray:
        out = x.astype(np.float32, copy=x.dtype != np.float32)
        np.minimum(out, FEATURE_BOUND, out=out)
        return np.maximum(out, -FEATURE_BOUND, out=out)

    def _windows(self, base: np.ndarray, r: np.ndarray, c: np.ndarray, heading: np.ndarray) -> np.ndarray:
        rr = r[:, None, None] + self._win_dr[heading]  # (n, K, K)
        cc = c[:, None, None] + self._win_dc[heading]
        valid = (rr >= 0) & (rr < self.h) & (cc >= 0) & (cc < self.w)
        lin = (base[:, None, None] * self.h + rr.clip(0, self.h - 1)) * self.w + cc.clip(0, self.w - 1)
        out = self._grid[lin]  # (n, K, K, D)
        out[~valid] = 0
        return out

    def _crops(self, s: np.ndarray, v: np.ndarray, r: np.ndarray, c: np.ndarray, heading: np.ndarray) -> np.ndarray:
        """``(n, P, P, 3)`` uint8 pixel crops around cells, rotated to ``heading``; outside the image is black."""
        out = self._crops_of(s, v, r, c)  # (n, P, P, 3), north-up
        for k in (1, 2, 3):  # row 0 of the crop is straight ahead: heading k is the north-up crop turned k times
            turned = heading == k
            if turned.any():
                out[turned] = np.rot90(out[turned], k, axes=(1, 2))
        return out

    # ------------------------------------------------------------------------------------------ state
    #: The names of :meth:`poses`, in order.
    POSE_FIELDS: tuple[str, ...] = ("scene", "variant", "row", "col", "heading")

    def poses(self) -> dict[str, np.ndarray]:
        """Where each agent is now: copies of its ``scene``, colour ``variant``, cell ``row`` / ``col`` and ``heading``,
        each ``(N,)`` int64 (what the curiosity learners record per step; the arrays stay the core's own)."""
        return {name: getattr(self, name).copy() for name in self.POSE_FIELDS}

    def agent_state(self) -> dict[str, Any]:
        """The agents' episodes in progress: copies of every per-agent array of :meth:`_allocate` (cells, goals,
        counters, visited cells, flicker streams, ...) and the states of the per-agent generators; with the same
        world, :meth:`load_agent_state` continues each episode exactly where it was."""
        state: dict[str, Any] = {"max_episode_steps": self.max_episode_steps}
        for name in self._agent_fields:
            value = getattr(self, name)
            if name == "episode_start":  # a clock reading: keep the time elapsed instead
                state[name] = time.perf_counter() - value
            elif isinstance(value, np.ndarray):
                state[name] = value.copy()
            else:  # a list of per-agent generators (or None before an agent's first episode)
                state[name] = [None if g is None else g.bit_generator.state for g in value]
        return state

    def load_agent_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`agent_state` (same number of agents and grid)."""
        missing = sorted(set(self._agent_fields) - set(state))
        if missing:
            raise ValueError(f"agent state lacks {missing}; it was saved by another version of the environment")
        self.set_max_episode_steps(int(state["max_episode_steps"]))
        for name in self._agent_fields:
            value, current = state[name], getattr(self, name)
            if isinstance(current, np.ndarray):
                value = np.asarray(value)
                if value.shape != current.shape:
                    raise ValueError(f"agent state {name!r} has shape {value.shape}, this environment {current.shape}")
                current[...] = time.perf_counter() - value if name == "episode_start" else value
            else:
                setattr(self, name, [None if g is None else generator_from_state(g) for g in value])

    # ------------------------------------------------------------------------------------------ rendering
    def snapshot(self, i: int) -> dict[str, Any]:
        """Everything needed to render agent ``i``'s episode so far (copies; safe to keep after a reset)."""
        i = int(i)
        steps = int(min(self.steps[i], self.max_episode_steps))
        goal_id = int(self.goal_id[i])
        return {
            "scene": int(self.scene[i]),
            "variant": int(self.variant[i]),
            "position": (int(self.row[i]), int(self.col[i])),
            "heading": int(self.heading[i]),
            "visited": self.visited[i].copy(),
            "trail": self.trail[i, : steps + 1].copy(),
            "goal_cell": (int(self.goal_row[i]), int(self.goal_col[i])) if self.config.task == "imagenav" else None,
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


__all__ = [
    "EGOCENTRIC_ACTIONS",
    "FEATURE_BOUND",
    "FLICKER_BLOCK",
    "GRID_ACTIONS",
    "INFO_KEYS",
    "STOP",
    "SUCCESS_DISTANCES",
    "ActionMode",
    "NavConfig",
    "NavCore",
    "NavRules",
    "prepare_navigation",
]
