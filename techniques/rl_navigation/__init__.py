"""Curiosity-driven navigation: PPO on detached semantic features + a forward model whose error is the reward.

Modules (one concept each): :mod:`semantic_encoder`, :mod:`forward_model`, :mod:`running_stats`,
:mod:`intrinsic_reward`, :mod:`intrinsic_critic`, :mod:`target_encoder`, :mod:`collapse_monitor`, :mod:`policy`,
:mod:`curiosity` (the PPO glue), :mod:`config`, :mod:`trainer` (the two-phase schedule) and :mod:`evaluation`.
Import them directly (``from techniques.rl_navigation.trainer import TwoPhaseTrainer``); this package imports
nothing heavy.
"""
