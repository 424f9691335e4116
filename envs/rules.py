"""The navigation task rules: action sets, :class:`NavRules` (what a caller chooses) and :class:`NavConfig` (the
task and its rules, validated), shared by :class:`~envs.core.NavCore` and the environments.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from encoders.utils.config import ANY, NON_NEGATIVE, check_fields
from envs.goals import ImageGoalMode
from envs.tv import TVMode
from envs.world import ObservationMode, TaskName

ActionMode = Literal["grid", "egocentric"]

#: Action names in index order (``"stop"`` is appended when ``stop_action=True``).
GRID_ACTIONS: tuple[str, ...] = ("up", "down", "left", "right")
EGOCENTRIC_ACTIONS: tuple[str, ...] = ("forward", "turn_left", "turn_right")
STOP = "stop"
#: The extra action of the remote-controlled TV (``tv="remote"``): redraws the TV when it is in view.
REMOTE = "remote"


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
    (the Pixels tasks set it); 'oracle': the window of ground-truth cell features (object classes and background from
    the scene generator, the same in every colour; ObjectNav's goal is the class one-hot), no encoder"""
    patch_radius: Annotated[int, NON_NEGATIVE] = 1
    """observed window radius in cells (and the forward model's feature window)"""
    pixel_cell: Annotated[int, NON_NEGATIVE] = 0
    """pixel observations: pixels per cell side of the crops (the scenes area-averaged once to that size; 0: the full
    patch size). 7 with patch 14 serves a quarter of the pixels, enough to tell the objects apart"""
    success_radius: Annotated[int, NON_NEGATIVE] = 1
    """success within this Manhattan distance (cells) of the goal"""
    min_start_distance: Annotated[int, NON_NEGATIVE] = 8
    """minimum start distance from the goal (cells)"""
    include_position: bool = False
    """add the agent's normalised (row, col) to the observation"""
    include_heading: bool = False
    """add the agent's heading (one-hot; with grid actions the direction of its last move) to the observation"""
    success_reward: Annotated[float, ANY] = 1.0
    """reward of the successful step"""
    step_penalty: Annotated[float, ANY] = 0.0
    """reward -step_penalty at every step (default none: with STOP, any step cost makes an immediate STOP the best
    reply of a policy that rarely succeeds; the discount already favours short paths)"""
    distance_reward_scale: Annotated[float, ANY] = 0.0
    """reward shaping by the decrease of the true geodesic distance (0: sparse success reward)"""
    image_goal: ImageGoalMode = "object"
    """where image goals are drawn: the centre cell of an object ('object') or any cell ('any')"""
    tv: TVMode = "none"
    """a noisy TV in every scene (envs.tv): 'spontaneous' (noise redrawn every step), 'remote' (redrawn by an extra
    'remote' action with the TV in view), 'colour' (an object whose hue changes every step), 'class' (a screen whose
    object class changes every step: the semantic control); 'none': no TV"""


@dataclass(frozen=True)
class NavConfig(NavRules):
    """Task rules shared by the environments: the task and its :class:`NavRules`, validated."""

    task: TaskName = "imagenav"
    """'imagenav' (image goal) or 'objectnav' (object goal)"""

    def __post_init__(self) -> None:
        check_fields(self, name=str)  # the choices and ranges in the fields' types
        if self.min_start_distance <= self.success_radius:
            raise ValueError(
                f"min_start_distance ({self.min_start_distance}) must exceed success_radius ({self.success_radius}) "
                "so that no episode starts solved"
            )

    @property
    def action_names(self) -> tuple[str, ...]:
        """The actions in index order: the moves, ``remote`` with the remote TV, ``stop`` last with a STOP action."""
        names = GRID_ACTIONS if self.actions == "grid" else EGOCENTRIC_ACTIONS
        if self.tv == "remote":
            names = (*names, REMOTE)
        return (*names, STOP) if self.stop_action else names

    @property
    def remote_index(self) -> int:
        """Index of the ``remote`` action (-1 without the remote TV)."""
        return self.action_names.index(REMOTE) if self.tv == "remote" else -1

    @property
    def n_actions(self) -> int:
        return len(self.action_names)

    @property
    def needs_encoder(self) -> bool:
        """Whether the observations are encoder features (``mean`` / ``window``)."""
        return self.observation in ("mean", "window")

    @property
    def has_features(self) -> bool:
        """Whether the observations are feature vectors (encoder or oracle), not pixel crops."""
        return self.observation != "pixels"


__all__ = ["EGOCENTRIC_ACTIONS", "GRID_ACTIONS", "REMOTE", "STOP", "ActionMode", "NavConfig", "NavRules"]
