"""Image-navigation environments: scenes, a cached semantic feature fast path, ImageNavEnv and ImageNavVecEnv.

``import envs`` registers the Gymnasium ids below (each with ``max_episode_steps=500``); the heavy modules
(torch, encoders) are imported only when an environment or one of the exported classes is first used.

========================  ===========================================================================
id                        task
========================  ===========================================================================
``ImageNav-v0``           image goal (the view at a goal cell), window-mean features of the encoder
``ObjectNav-v0``          object goal (an object of the target class in another colour), features
``ImageNavPixels-v0``     image goal, uint8 pixel crops (no encoder)
``ObjectNavPixels-v0``    object goal, uint8 pixel crops (no encoder)
``*-v1`` (each of above)  the same task with a STOP action that success requires (habitat-lab's rule)
========================  ===========================================================================

The ``-v1`` ids follow Gymnasium's convention for a changed task: the episode ends when the agent calls STOP
(the last action), and it succeeds when it stops within ``success_radius`` cells of the goal; reaching the goal
without stopping is not success. The ``-v0`` ids keep their rule (the episode ends, successfully, on arrival).

Every constructor argument of :class:`envs.image_nav_env.ImageNavEnv` can be passed to ``gymnasium.make``; the noisy
TV is one of them (``gymnasium.make("ObjectNav-v0", tv="spontaneous")``, :mod:`envs.tv`). It replaces the former
``*Flicker-v0`` ids, whose two small objects in 4 colours were neither loud nor kept away from the goals.
"""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

#: Time limit of the registered ids and the environments' default (Habitat's default for navigation tasks).
MAX_EPISODE_STEPS = 500

REGISTERED_IDS: dict[str, dict[str, Any]] = {
    "ImageNav-v0": {"task": "imagenav"},
    "ObjectNav-v0": {"task": "objectnav"},
    "ImageNavPixels-v0": {"task": "imagenav", "observation": "pixels"},
    "ObjectNavPixels-v0": {"task": "objectnav", "observation": "pixels"},
}
REGISTERED_IDS.update(
    {env_id.replace("-v0", "-v1"): {**kwargs, "stop_action": True} for env_id, kwargs in list(REGISTERED_IDS.items())}
)


def _register() -> None:
    for env_id, kwargs in REGISTERED_IDS.items():
        if env_id not in gym.registry:
            gym.register(
                id=env_id,
                entry_point="envs.image_nav_env:ImageNavEnv",
                max_episode_steps=MAX_EPISODE_STEPS,
                kwargs=kwargs,
            )


_register()

_LAZY = {
    "ImageNavEnv": "envs.image_nav_env",
    "ImageNavVecEnv": "envs.vec_env",
    "SceneFeatures": "envs.features",
    "NavConfig": "envs.rules",
    "NavWorld": "envs.world",
    "NavCore": "envs.core",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")


__all__ = ["MAX_EPISODE_STEPS", "REGISTERED_IDS", *_LAZY]
