"""Which trainers compute in bf16: real checkpoints on GPUs, and float32 models on CPUs with native bf16.

On a CPU with AVX512-BF16 or AMX, bf16 autocast (float32 master weights, bf16 matmuls) trained the tiny
Llama's SFT 1.63x faster per step together with padding-free micro-batches (bench/RESULTS.md); on CPUs without it,
bf16 is emulated and slower than float32, so it stays off there.
"""

from __future__ import annotations

import torch


def cpu_computes_bf16() -> bool:
    """True when oneDNN runs bf16 matmuls natively on this CPU."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def train_in_bf16(model_cfg) -> bool:
    """The `bf16` flag for a trainer: the checkpoint's own bf16 on GPU; autocast on a capable CPU if allowed."""
    if torch.cuda.is_available():
        return model_cfg.dtype == "bfloat16"
    return bool(model_cfg.cpu_bf16_autocast) and model_cfg.dtype == "float32" and cpu_computes_bf16()


def cpu_autocast(model_cfg) -> torch.autocast:
    """For code outside an HF trainer (the PPO loop): bf16 autocast exactly where `train_in_bf16` means
    autocast (a float32 model on a CPU with native bf16), a disabled context elsewhere (on a GPU the model
    computes in its checkpoint's own dtype)."""
    enabled = not torch.cuda.is_available() and train_in_bf16(model_cfg)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)
