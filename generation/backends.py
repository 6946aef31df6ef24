"""Choosing a generation backend, and the one-call convenience used by evaluation."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import torch

from generation.hf_generator import HFGenerator
from generation.sampling import ChatEncoderLike, SamplingParams
from generation.vllm_generator import VLLMGenerator

BACKENDS = ("auto", "hf", "vllm")


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def make_generator(
    backend: str = "auto",
    *,
    encoder: ChatEncoderLike,
    model=None,
    model_path: str | Path | None = None,
    batch_size: int = 32,
    compute: Callable[[], AbstractContextManager] = nullcontext,
    **vllm_kwargs,
):
    """An HFGenerator over the in-memory `model`, or a VLLMGenerator over the checkpoint at `model_path`.

    "auto" picks vLLM when it is importable, a CUDA device exists and a checkpoint path is given;
    otherwise the in-memory model with transformers, decoding inside `compute()` (e.g. bf16 autocast).
    """
    if backend not in BACKENDS:
        raise ValueError(f"generation backend: unknown {backend!r} (expected one of {', '.join(BACKENDS)})")
    if backend == "vllm" or (backend == "auto" and model_path is not None and vllm_available()):
        if not vllm_available():
            raise RuntimeError(
                "generation backend 'vllm' needs the vllm package and a CUDA device; use backend 'hf' or 'auto'"
            )
        if model_path is None:
            raise ValueError("generation backend 'vllm' serves a saved checkpoint: pass model_path")
        return VLLMGenerator(model_path, encoder, **vllm_kwargs)
    if model is None:
        raise ValueError("generation backend 'hf' generates with an in-memory model: pass model")
    return HFGenerator(model, encoder, batch_size=batch_size, compute=compute)


def generate_answers(
    model,
    encoder: ChatEncoderLike,
    dialogs: list[list[dict]],
    params: SamplingParams | None = None,
    batch_size: int = 32,
) -> list[str]:
    """The text of the first sample for each dialog (greedy unless `params` says otherwise)."""
    generator = HFGenerator(model, encoder, batch_size=batch_size)
    return [samples[0].text for samples in generator.generate(dialogs, params or SamplingParams())]
