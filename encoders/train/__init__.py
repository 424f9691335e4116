"""Self-supervised pretraining (DINOv2) and the reusable teacher-student training loop.

- :mod:`encoders.train.config`: typed configs (sections of the official YAML) and presets.
- :mod:`encoders.train.schedules`: lr / wd / momentum / teacher-temperature schedules as pure functions.
- :mod:`encoders.train.param_groups`: layer-wise lr decay and weight-decay rules for AdamW.
- :mod:`encoders.train.ssl_meta_arch`: student + EMA teacher + DINO / iBOT / KoLeo losses.
- :mod:`encoders.train.data`: image folder -> multi-crop -> masked collate, reproducible per sample.
- :mod:`encoders.train.trainer`: the loop (checkpoints, exact resume, TensorBoard, torchrun DDP / FSDP).
- :mod:`encoders.train.checkpointing`, :mod:`encoders.train.distributed`: their helpers.

Submodules are imported explicitly (``from encoders.train.trainer import Trainer``) so that the losses
can use :mod:`encoders.train.distributed` without importing the whole stack.
"""
