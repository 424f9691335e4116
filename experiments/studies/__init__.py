"""Results studies of the semantic-curiosity navigation stack, one command each (``--budget smoke`` runs in
seconds for the tests, ``--budget cpu`` is the README budget on a 2-core CPU; add ``--rl.device cuda`` on a GPU):

1. Encoder colour invariance (cosine similarities, k-NN with colours randomised; pixels as a baseline)::

       python -m experiments.studies.invariance --budget cpu --out runs/studies/invariance [--official-weights P]

2. Navigation on held-out scenes of ObjectNav-v0 and ImageNav-v0 (random walk, extrinsic PPO, PPO + semantic
   curiosity, the full two-phase method, PPO + pixel curiosity)::

       python -m experiments.studies.navigation --budget cpu --out runs/studies/navigation

3. The noisy TV (time-in-TV and remote presses of curiosity in pixel, encoder, HOG and oracle spaces; an offline
   probe of each space)::

       python -m experiments.studies.noisy_tv --budget cpu --out runs/studies/noisy_tv

4. Phase-2 health (feature std, effective rank, downstream success; EMA vs online target)::

       python -m experiments.studies.phase2_health --budget cpu --out runs/studies/phase2_health

Every study takes ``--seeds N`` and writes ``config.json``, ``raw.json`` (per-seed numbers), ``results.json``,
``table.md`` (mean ± 95% t-interval over seeds) and PNG figures to ``--out``; RL sub-runs are ordinary
``experiments.two_phase`` run folders under ``<out>/runs/``. The shared encoders (a tiny ``vit_mini_patch14``
pretrained on procedural scenes, and its distilled ``vit_pico_patch14`` student) are built once into
``runs/studies/encoders/`` (``--encoders-dir``) and reused.

Every study with sub-runs takes ``--workers N`` (local processes) or ``--launcher slurm --slurm.*`` (SLURM jobs
through submitit) with the same results and run folders (``docs/studies.md``). Shared modules: ``config`` (budgets,
``--rl.*`` settings), ``two_phase_runs`` (two_phase sub-runs from the config API), ``launch`` (the launchers),
``shared_encoders``, ``outputs`` (result files), ``curves`` (TensorBoard learning curves), ``figures``.
"""
