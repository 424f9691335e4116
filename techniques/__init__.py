"""Techniques that compose encoders and environments; see :mod:`techniques.rl_navigation`."""
