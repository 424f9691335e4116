"""ImageNavVecEnv: ``N`` agents of :class:`~envs.image_nav_env.ImageNavEnv` stepped together as one SB3 ``VecEnv``.

All agents share one :class:`~envs.world.NavWorld` (scenes, feature cache, goals) and one
:class:`~envs.core.NavCore` (the per-agent state as arrays), so a step is a handful of array operations whatever
``N`` is, and a trainer in the same process can refresh the features (``refresh_features``) after an encoder
update without copying anything. Agent ``i`` draws its episodes from its own generator, seeded ``seed + i`` by
``seed(seed)`` + ``reset()``; with the same seeds and actions the trajectories equal those of ``N`` separate
``ImageNavEnv`` reset with ``seed + i``.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import gymnasium as gym
import numpy as np
from gymnasium.utils import seeding
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from envs import MAX_EPISODE_STEPS
from envs.agents import AGENT_FIELDS, generator_from_state
from envs.contract import check_actions, check_argument_types, check_options, require_reset
from envs.core import ARGUMENT_SIGNATURES, NavCore, prepare_navigation
from envs.features import SceneFeatures
from envs.rules import NavConfig
from envs.world import NavWorld, TaskName

# Wrappers whose effect the vectorised env provides itself (episode statistics and the time limit).
_BUILT_IN_WRAPPERS: tuple[type, ...] = (Monitor, gym.wrappers.RecordEpisodeStatistics, gym.wrappers.TimeLimit)


class ImageNavVecEnv(VecEnv):
    """A batched :class:`~envs.image_nav_env.ImageNavEnv` implementing stable-baselines3's ``VecEnv``.

    Observations, actions, rewards and ``info`` keys are those of :class:`~envs.image_nav_env.ImageNavEnv` (see
    its docstring for every argument); observations are stacked ``(num_envs, ...)``. Finished agents are reset
    automatically: their ``info`` holds ``terminal_observation`` (the last observation before the reset),
    ``episode`` ``{"r", "l", "t"}``, and every info holds ``TimeLimit.truncated`` (truncated and not terminated),
    as with SB3's ``DummyVecEnv`` of ``Monitor``-wrapped envs.

    Args:
        num_envs: number of agents ``N``.
        task: ``"imagenav"`` or ``"objectnav"``.
        render_mode: ``None`` or ``"rgb_array"`` (``render()`` tiles every agent's frame).
        world: a prebuilt :class:`~envs.world.NavWorld` to share (e.g. ``train_env.world``); otherwise built from
            ``kwargs``.
        max_episode_steps: time limit (default 500).
        render_scale: integer upscaling of rendered frames.
        **kwargs: :class:`~envs.rules.NavConfig` fields, the scene source and :class:`~envs.world.WorldOptions`.

    Phase-2 use (RL trainer): build with ``encoder=encoder, cache_block=encoder.n_blocks - n``; after each encoder
    update call ``refresh_features(encoder)``; ``scene_features`` gives the differentiable path
    (:meth:`SceneFeatures.grids_from_tokens`, pooled by :func:`envs.features.window_mean`) at ``info["scene_index"]``,
    ``info["variant_index"]``, ``info["position"]``.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 8}

    def __init__(
        self,
        num_envs: int,
        task: TaskName = "imagenav",
        render_mode: str | None = None,
        *,
        world: NavWorld | None = None,
        max_episode_steps: int = MAX_EPISODE_STEPS,
        render_scale: int = 1,
        **kwargs: Any,
    ):
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be None or one of {self.metadata['render_modes']}, got {render_mode!r}")
        arguments = {"max_episode_steps": max_episode_steps, "render_scale": render_scale, **kwargs}
        check_argument_types(arguments, type(self).__init__, *ARGUMENT_SIGNATURES)
        config, world = prepare_navigation(task, world, **kwargs)
        self.core = NavCore(config, world, num_envs, max_episode_steps)
        self.render_mode = render_mode
        self.render_scale = int(render_scale)
        self._rngs: list[np.random.Generator | None] = [None] * num_envs
        self._actions: np.ndarray | None = None
        self._last_episode: list[dict[str, Any] | None] = [None] * num_envs
        self.closed = False
        super().__init__(num_envs, self.core.observation_space(), self.core.action_space())
        self.metadata = dict(type(self).metadata)

    # ---------------------------------------------------------------------------------------- accessors
    @property
    def config(self) -> NavConfig:
        return self.core.config

    @property
    def world(self) -> NavWorld:
        return self.core.world

    @property
    def scene_features(self) -> SceneFeatures | None:
        """The shared scene feature cache (``None`` with pixel observations)."""
        return self.core.world.features

    def refresh_features(self, encoder, batch_size: int = 16) -> None:
        """Recompute the cached scene (and object-goal) features in place after ``encoder`` changed."""
        self.core.world.refresh(encoder, batch_size)

    # ---------------------------------------------------------------------------------------- VecEnv API
    def reset(self) -> VecEnvObs:
        """Reset every agent (with the seeds of :meth:`seed` / options of ``set_options`` if set, once)."""
        for i in range(self.num_envs):
            if self._seeds[i] is not None or self._rngs[i] is None:
                self._rngs[i], _ = seeding.np_random(self._seeds[i])
        options = [opt or None for opt in self._options]
        self.core.reset_agents(np.arange(self.num_envs), self._rngs, options)
        self.reset_infos = self.core.reset_infos()
        self._reset_seeds()
        self._reset_options()
        return self.core.observe()

    def set_options(self, options: list[dict] | dict | None = None) -> None:
        """Options for the next ``reset()``: one dict for every agent, or a list of ``num_envs`` dicts (or None)."""
        if isinstance(options, (list, tuple)):
            if len(options) != self.num_envs:
                raise ValueError(f"set_options got {len(options)} option dicts for {self.num_envs} agents")
            for opt in options:
                check_options(opt)
        else:
            check_options(options)
        super().set_options(list(options) if isinstance(options, tuple) else options)

    def observe(self) -> VecEnvObs:
        """The current observations of every agent, without stepping (e.g. after :meth:`refresh_features`)."""
        return self.core.observe()

    def step_async(self, actions: np.ndarray) -> None:
        require_reset(self._rngs[0] is not None, "step")
        self._actions = check_actions(actions, self.num_envs, self.action_space.n)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() called without step_async(actions)")
        core = self.core
        rewards, terminated, truncated, infos = core.step(self._actions)
        self._actions = None
        dones = terminated | truncated
        time_limit = (truncated & ~terminated).tolist()
        for info, flag in zip(infos, time_limit):
            info["TimeLimit.truncated"] = flag
        obs = core.observe()
        done = np.flatnonzero(dones)
        if len(done):
            for i in done:
                infos[i]["terminal_observation"] = {key: value[i].copy() for key, value in obs.items()}
                self._last_episode[i] = core.snapshot(i)
            core.reset_agents(done, [self._rngs[i] for i in done])
            fresh = core.observe(done)
            for key, value in fresh.items():
                obs[key][done] = value
            for i, info in zip(done, core.reset_infos(done)):
                self.reset_infos[i] = info
        return obs, rewards.astype(np.float32), dones, infos

    def close(self) -> None:
        self.closed = True

    def state_dict(self) -> dict[str, Any]:
        """Everything that decides the agents' future: their episodes in progress (:meth:`NavCore.agent_state`)
        and their generators. Numpy arrays, generator states and plain values; :meth:`load_state_dict` continues
        every episode and the episode stream exactly (for bit-exact resume of training)."""
        return {
            "agents": self.core.agent_state(),
            "rngs": [None if g is None else g.bit_generator.state for g in self._rngs],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` into an env over the same world with the same number of agents."""
        if len(state["rngs"]) != self.num_envs:
            raise ValueError(f"the saved state has {len(state['rngs'])} agents, this env {self.num_envs}")
        self.core.load_agent_state(state["agents"])
        self._rngs = [None if g is None else generator_from_state(g) for g in state["rngs"]]
        self._reset_seeds()
        self._reset_options()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The attribute for each agent: an array of the agents' state (:class:`~envs.agents.AgentState`: ``scene``,
        ``row``, ``heading``, ``steps``, ...) gives that agent's entry; anything else (this env's or its config's) is
        shared."""
        idx = list(self._get_indices(indices))
        per_agent = self._per_agent_array(attr_name)
        if per_agent is not None:
            return [per_agent[i].copy() if per_agent.ndim > 1 else per_agent[i].item() for i in idx]
        if hasattr(self, attr_name):
            value = getattr(self, attr_name)
        elif hasattr(self.core.config, attr_name):
            value = getattr(self.core.config, attr_name)
        else:
            raise AttributeError(f"ImageNavVecEnv has no attribute {attr_name!r}")
        return [value for _ in idx]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set a per-agent state entry for the given agents, or a shared attribute (then for all agents only)."""
        idx = list(self._get_indices(indices))
        per_agent = self._per_agent_array(attr_name)
        if per_agent is not None:
            per_agent[idx] = value
            return
        if sorted(idx) != list(range(self.num_envs)):
            raise ValueError(
                f"{attr_name!r} is shared by all agents of ImageNavVecEnv; set it without indices (for all agents)"
            )
        setattr(self, attr_name, value)

    def env_method(self, method_name: str, *method_args, indices: VecEnvIndices = None, **method_kwargs) -> list[Any]:
        """Call a method of this env once per agent; methods with an ``agent`` parameter get the agent index."""
        method = getattr(self, method_name)
        idx = list(self._get_indices(indices))
        if "agent" in inspect.signature(method).parameters:
            return [method(*method_args, agent=i, **method_kwargs) for i in idx]
        return [method(*method_args, **method_kwargs) for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """True for ``Monitor``, ``RecordEpisodeStatistics`` and ``TimeLimit``, whose effect is built in."""
        wrapped = isinstance(wrapper_class, type) and issubclass(wrapper_class, _BUILT_IN_WRAPPERS)
        return [wrapped for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        require_reset(self._rngs[0] is not None, "render")
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but get_images() needs render_mode='rgb_array'; "
                "render_agent(i) works in any mode",
                stacklevel=2,
            )
            return [None for _ in range(self.num_envs)]
        return [self.core.render(i, self.render_scale) for i in range(self.num_envs)]

    def render_agent(self, agent: int, episode: Literal["current", "last"] = "current", scale: int | None = None):
        """RGB frame of one agent (any render mode): its ``"current"`` episode or its ``"last"`` finished one
        (``None`` before any finished), for trajectory images."""
        if not 0 <= agent < self.num_envs:
            raise ValueError(f"agent must be in [0, {self.num_envs}), got {agent}")
        scale = self.render_scale if scale is None else scale
        if episode == "current":
            require_reset(self._rngs[agent] is not None, "render")
            return self.core.render(agent, scale)
        if episode != "last":
            raise ValueError(f"episode must be 'current' or 'last', got {episode!r}")
        snap = self._last_episode[agent]
        return None if snap is None else self.core.render_snapshot(snap, scale)

    # ---------------------------------------------------------------------------------------- helpers
    def _per_agent_array(self, name: str) -> np.ndarray | None:
        """The :class:`~envs.agents.AgentState` array ``name`` (``None`` for any other name)."""
        value = getattr(self.core.agents, name, None) if name in AGENT_FIELDS else None
        return value if isinstance(value, np.ndarray) else None

    def __repr__(self) -> str:
        return f"ImageNavVecEnv(num_envs={self.num_envs}, task={self.config.task!r}, world={self.world!r})"


__all__ = ["ImageNavVecEnv"]
