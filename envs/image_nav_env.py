"""ImageNavEnv: one agent navigating the patch grid of a scene towards an image goal or an object goal."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np

from envs import MAX_EPISODE_STEPS
from envs.contract import check_action, check_argument_types, check_options, require_reset
from envs.core import ARGUMENT_SIGNATURES, NavCore, prepare_navigation
from envs.features import SceneFeatures
from envs.world import NavWorld, TaskName


class ImageNavEnv(gym.Env):
    """Navigate over a scene image, seeing the encoder's patch features around you, to a goal given as an image.

    ## Description

    A scene image of ``H x W`` pixels is cut into an ``h x w`` grid of ``patch_size`` cells (a 448 x 448 scene and
    patch 14 give 32 x 32 cells). The encoder has seen the whole scene once; the agent, standing on one cell, sees
    the patch features of the ``(2r+1) x (2r+1)`` window around it (``r = patch_radius``). The grid is open and
    bounded: walking into the border leaves the agent in place, so the geodesic distance is the Manhattan distance
    in cells.

    - ``task="imagenav"`` (``ImageNav-v0``): the goal is a cell of the scene (the centre cell of a random object
      with ``image_goal="object"``, any cell with ``"any"``); the goal observation is the view there (window-mean
      features of the original colours, or the north-up pixel crop). Success: within ``success_radius`` cells.
    - ``task="objectnav"`` (``ObjectNav-v0``): a class present in the scene is drawn; the goal observation is an
      image of an object of that class rendered in a colour different from every instance in the scene, encoded by
      the same encoder (mean of the patch tokens over the object's patches, see :mod:`envs.goals`). Success:
      within ``success_radius`` cells of any instance (of the cells its bounding box covers).

    Noisy TV (:mod:`envs.tv`): with ``tv`` every scene gets a 2x2-cell TV on the background, away from every object,
    whose content is drawn from a pool of ``tv_frames`` pre-rendered frames: redrawn every step (``"spontaneous"``
    noise, ``"colour"``: an object changing hue, ``"class"``: an object changing class) or by an extra ``remote``
    action with the TV in view (``"remote"``). ``info["tv_in_view"]`` tells whether a TV cell is inside the observed
    window.

    Default scenes and encoder (4 procedural training scenes, a randomly initialised ``vit_pico_patch14``) exist
    so that ``gymnasium.make`` works out of the box and in tests; real use passes a pretrained ``encoder`` (an
    instance, or a registry name with ``encoder_weights``) and more scenes. See :class:`envs.vec_env.ImageNavVecEnv`
    for the batched version (same core, same trajectories for the same seeds).

    ## Action Space

    ``Discrete(4)``, plus one action each for ``tv="remote"`` and ``stop_action=True`` (STOP is always last):

    - ``actions="grid"``: 0 up, 1 down, 2 left, 3 right (one cell; the heading becomes the move's direction),
      then remote, then stop.
    - ``actions="egocentric"``: 0 forward (one cell along the heading), 1 turn left, 2 turn right (90 degrees in
      place), then remote (stays in place; redraws the TV if it is in view), then stop. The observed window
      (``observation="window"`` or ``"pixels"``) rotates with the heading: row 0 of the window is straight ahead.

    ## Observation Space

    A ``Dict``:

    - ``observation="mean"`` (default): ``features`` ``Box(-1e4, 1e4, (D,), float32)``, the mean of the window's
      patch features (window clipped at the grid border); ``goal`` ``(D,)`` float32, the goal features.
    - ``observation="window"``: ``features`` ``(2r+1, 2r+1, D)`` float32, the full window (cells outside the grid are
      zeros); ``goal`` ``(D,)``. (SB3's checker warns about 3-D float boxes; use a custom features extractor.)
    - ``observation="pixels"``: ``pixels`` ``Box(0, 255, (P, P, 3), uint8)`` with ``P = (2r+1) * patch_size`` (or
      ``(2r+1) * pixel_cell``: the scenes area-averaged to ``pixel_cell`` pixels per cell), the crop around the agent
      (black outside the image), and ``goal_pixels`` (P, P, 3): the north-up crop at the goal
      cell or the object image resized to ``P``. No encoder is needed.
    - ``observation="oracle"``: ``features`` ``(2r+1, 2r+1, C)`` float32, the ground-truth description of every
      window cell (object classes and background, :mod:`envs.oracle`; the same in every colour variant), and
      ``goal`` ``(C,)``: the class one-hot (ObjectNav) or the window mean at the goal cell (ImageNav). No encoder.
    - ``include_position=True`` adds ``position`` ``(2,)`` float32 ``(row, col) / (h-1, w-1)`` in [0, 1];
      ``include_heading=True`` adds ``heading`` ``(4,)`` float32 one-hot (up, right, down, left).

    ## Rewards

    Every step: ``-step_penalty`` (default 0), plus ``success_reward`` (default 1.0) on the successful step,
    plus ``distance_reward_scale * (previous distance - new distance)`` (default 0, i.e. no shaping; 1.0 gives
    +1 per cell closer and -1 per cell farther, as Habitat's distance-to-goal reward). There is no step penalty by
    default: the discount already favours short paths, and on the STOP tasks (``-v1``) a penalty per step makes an
    immediate STOP the best reply of any policy that rarely succeeds, so the task could not be learned (docs/rl.md).

    ## Starting State

    Scene (and colour variant with ``colour_variants > 1``), goal, start cell and heading are drawn uniformly from
    ``self.np_random``; the start is at least ``min_start_distance`` cells from the goal (or as far as the scene
    allows). ``reset(options=...)`` accepts ``scene_index``, ``variant_index``, ``goal`` (a cell ``(row, col)``
    for image goals, a class name or id for object goals), ``start`` ``(row, col)`` and ``heading``.

    ## Episode End

    Terminated: with ``stop_action=False`` when the agent is within ``success_radius`` (success); with
    ``stop_action=True`` (the ``-v1`` ids) when it calls STOP, successful only within the radius (Habitat
    convention). Truncated
    after ``max_episode_steps`` steps (registered ids: 500).

    ``info`` at every step: ``is_success``, ``distance_to_goal`` (shortest-path distance in cells), ``spl``,
    ``soft_spl``, ``coverage`` (fraction of the grid visited), ``path_length`` (cells moved), ``scene_index``,
    ``variant_index``,
    ``position`` ``(row, col)``, ``heading``, ``tv_in_view``; at the last step also ``episode`` =
    ``{"r": return, "l": length, "t": seconds}`` (as ``RecordEpisodeStatistics`` / SB3 ``Monitor``),
    ``tv_fraction`` (time-in-TV: the fraction of the episode's steps that ended with the TV in view; 0 without a TV),
    ``remote_presses`` (remote presses with the TV in view) and
    ``success_within_0`` / ``_1`` / ``_2`` (STOP called within 0, 1, 2 cells; without STOP: ended there). SPL and
    soft-SPL are those of the episode if it ended now (final at the last step).

    ## Arguments

    Task (:class:`envs.rules.NavConfig`):

    - ``task``: ``"imagenav"`` or ``"objectnav"``.
    - ``actions``: ``"grid"`` or ``"egocentric"``; ``stop_action``: add STOP (default False).
    - ``observation``: ``"mean"``, ``"window"``, ``"pixels"`` or ``"oracle"``; ``patch_radius``: window radius ``r``
      (default 1).
    - ``include_position``, ``include_heading``: extra observation keys (default False).
    - ``success_radius``: cells (Manhattan, default 1); ``min_start_distance``: cells (default 8).
    - ``success_reward``, ``step_penalty``, ``distance_reward_scale``: see Rewards.
    - ``image_goal``: ``"object"`` or ``"any"``, where image goals are drawn.
    - ``tv``: ``"none"`` (default), ``"spontaneous"``, ``"remote"``, ``"colour"`` or ``"class"`` (see above).
    - ``max_episode_steps``: time limit (default: the registered spec's, else 500).
    - ``render_mode``: ``None`` or ``"rgb_array"``; ``render_scale``: integer upscaling of rendered frames.

    World (built by :meth:`~envs.world.NavWorld.from_generator`, ``from_folder`` or ``from_scenes``, whichever source
    the arguments name, each taking only its own; or pass ``world=`` a prebuilt :class:`~envs.world.NavWorld`):

    - ``scenes``: prebuilt :class:`envs.scenes.Scene` list, optionally with ``scene_features`` (a
      :class:`~envs.features.SceneFeatures` of their variant images, used as is: no copy, refreshes are seen).
    - procedural: ``split`` (``"train"``/``"val"``/``"test"``), ``n_scenes`` (default 4), ``scene_ids``,
      ``image_size`` (default 448), ``scene_seed``, ``scene_generator`` (a configured ``SceneGenerator``);
      or ``scene_folder``: a folder of photos (image goals only).
    - ``encoder``: a model, a registry name (with ``encoder_weights``: a checkpoint path) or ``None`` (the
      random-init default above; not used with pixels); ``device``, ``storage_dtype`` (``"float32"``/``"float16"``),
      ``encode_batch_size``, ``cache_block`` (keep boundary tokens for top-block refreshes).
    - ``patch_size``: cell size for pixel observations without an encoder (default 14).
    - ``colour_variants``: ``k > 1`` recolours every object in ``k`` variants, one drawn per episode.
    - ``tv_frames``: frames in each scene's TV pool (default 64); ``tv_cells``: the TV's side in cells (default 2).
    - ``goal_variants`` (object-goal images per class, default 1), ``goal_image_size`` (default 8 patches),
      ``goal_pooling`` (``"object"`` or ``"image"``).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        task: TaskName = "imagenav",
        render_mode: str | None = None,
        *,
        world: NavWorld | None = None,
        max_episode_steps: int | None = None,
        render_scale: int = 1,
        **kwargs: Any,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        arguments = {"max_episode_steps": max_episode_steps, "render_scale": render_scale, **kwargs}
        check_argument_types(arguments, type(self).__init__, *ARGUMENT_SIGNATURES)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.config, self.world = prepare_navigation(task, world, **kwargs)
        self.render_mode = render_mode
        self.render_scale = int(render_scale)
        self._max_episode_steps = max_episode_steps
        self._core = NavCore(self.config, self.world, 1, max_episode_steps or MAX_EPISODE_STEPS)
        self.observation_space = self._core.observation_space()
        self.action_space = self._core.action_space()
        self._has_reset = False

    @property
    def core(self) -> NavCore:
        """The one-agent :class:`~envs.core.NavCore` (state arrays of shape ``(1, ...)``)."""
        return self._core

    @property
    def scene_features(self) -> SceneFeatures | None:
        return self.world.features

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        options = check_options(options)
        super().reset(seed=seed)
        limit = self._max_episode_steps
        if limit is None:
            spec_limit = self.spec.max_episode_steps if self.spec is not None else None
            limit = spec_limit or MAX_EPISODE_STEPS
        self._core.set_max_episode_steps(limit)
        self._core.reset_agents([0], [self.np_random], [options])
        self._has_reset = True
        return self._observation(), self._core.reset_infos()[0]

    def step(self, action: int | np.integer | np.ndarray):
        require_reset(self._has_reset, "step")
        a = np.array([check_action(action, self.action_space.n)])
        rewards, terminated, truncated, infos = self._core.step(a)
        return self._observation(), float(rewards[0]), bool(terminated[0]), bool(truncated[0]), infos[0]

    def _observation(self) -> dict[str, np.ndarray]:
        return {key: value[0] for key, value in self._core.observe().items()}

    def render(self) -> np.ndarray | None:
        require_reset(self._has_reset, "render")
        if self.render_mode is None:
            gym.logger.warn(
                "You are calling render method without specifying any render mode. "
                'Pass render_mode="rgb_array" to the constructor (gym.make("ImageNav-v0", render_mode="rgb_array")).'
            )
            return None
        return self._core.render(0, self.render_scale)

    def refresh_features(self, encoder, batch_size: int = 16) -> None:
        """Recompute the cached scene (and object-goal) features in place after ``encoder`` changed."""
        self.world.refresh(encoder, batch_size)


__all__ = ["ImageNavEnv"]
