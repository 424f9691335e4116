"""The precision rule shared by every CLI: auto = bf16 on CUDA and native-bf16 CPUs, fp32 elsewhere."""

from __future__ import annotations

import pytest
import torch

from encoders.utils import precision


def test_explicit_choices_are_honoured_on_any_device():
    assert precision.autocast_dtype("fp32", "cpu") is None
    assert precision.autocast_dtype("bf16", "cpu") == torch.bfloat16


@pytest.mark.parametrize("native", [True, False])
def test_auto_on_cpu_follows_the_instruction_set(monkeypatch, native):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: native)
    assert precision.autocast_dtype("auto", "cpu") == (torch.bfloat16 if native else None)


def test_flags_are_read_from_cpuinfo(monkeypatch):
    precision.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512f"})
    monkeypatch.setattr(precision.platform, "system", lambda: "Linux")
    assert precision.cpu_has_native_bf16() is False
    precision.cpu_has_native_bf16.cache_clear()
    monkeypatch.setattr(precision, "_cpu_flags", lambda: {"avx2", "avx512_bf16"})
    assert precision.cpu_has_native_bf16() is True
    precision.cpu_has_native_bf16.cache_clear()


def test_unknown_precision_names_the_field_and_choices():
    with pytest.raises(ValueError, match=r"train\.precision must be one of auto, fp32, bf16, got 'fp16'"):
        precision.check_precision("fp16", "train.precision")


def test_autocast_context_casts_matmuls_only_when_asked():
    a = torch.randn(4, 4)
    with precision.autocast("cpu", torch.bfloat16):
        assert (a @ a).dtype == torch.bfloat16
    with precision.autocast("cpu", None):
        assert (a @ a).dtype == torch.float32
