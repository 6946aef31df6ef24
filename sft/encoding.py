"""Turning dialogs into SFT rows, and checking that data-parallel replicas stayed in step."""

from __future__ import annotations

import hashlib
import logging
import os

import torch

from chat.format import ChatEncoder

log = logging.getLogger(__name__)


def encode_dialogs(
    encoder: ChatEncoder, dialogs: list[list[dict]], max_length: int, split: str
) -> list[dict]:
    """Encode each dialog with labels on its answers; dialogs over max_length are skipped, counted and logged.

    Truncating would cut an answer (or its EOS) off and teach the model to stop mid-sentence, so an
    over-long dialog is dropped whole instead, and the count is reported.
    """
    rows, too_long = [], 0
    for dialog in dialogs:
        row = encoder.encode_for_training(dialog)
        if len(row["input_ids"]) > max_length:
            too_long += 1
            continue
        rows.append(row)
    if too_long:
        log.warning(
            "%s: skipped %d of %d dialogs longer than %d tokens", split, too_long, len(dialogs), max_length
        )
    return rows


def weights_fingerprint(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def replicas_agree(model: torch.nn.Module) -> bool:
    """True when every data-parallel process ends with the same weights (trivially true alone).

    A multi-process run launched without a process group trains N separate models without a word;
    comparing fingerprints across ranks catches that and any other divergence.
    """
    fingerprint = weights_fingerprint(model)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            raise RuntimeError(
                "launched as one of several processes but no process group was formed: each process trained "
                "its own model (on CPU, pass use_cpu through torchrun; see the README's multi-process section)"
            )
        return True
    everyone = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(everyone, fingerprint)
    if len(set(everyone)) != 1:
        raise RuntimeError(f"data-parallel replicas diverged: weight fingerprints {everyone}")
    return True
