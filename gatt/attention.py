"""How much later tokens attend to the system message (the Llama 2 paper's figure 10).

For one dialog, every layer's attention is read (eager attention, output_attentions=True) and, for each
token after the system message, the maximum over heads and over the system message's tokens is kept:
a [layers, tokens] map per model. A model that still heeds its instruction at turn 20 keeps attending
to it; one that forgot it does not.
"""

from __future__ import annotations

import torch

from chat.dialog import DialogError


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def system_span(encoder, messages: list[dict]) -> tuple[list[int], int, int]:
    """(input_ids, start, end): the dialog's ids and the token span the system message occupies.

    Found by encoding the dialog with and without its system message: the tokens that differ are the
    system text with its <<SYS>> markup (the chat format folds it into the first user turn).
    """
    if not messages or messages[0]["role"] != "system":
        raise DialogError("the attention dialog must start with a system message")
    with_system = encoder.encode_for_training(messages)["input_ids"]
    without = encoder.encode_for_training(messages[1:])["input_ids"]
    start = common_prefix(with_system, without)
    suffix = common_prefix(with_system[::-1], without[::-1])
    end = len(with_system) - min(suffix, len(without) - start)
    if end <= start:
        raise DialogError("the system message occupies no tokens")
    return with_system, start, end


@torch.no_grad()
def attention_to_span(model, input_ids: list[int], start: int, end: int) -> torch.Tensor:
    """[layers, len(input_ids) - end]: each later token's maximum attention (over heads and the span's
    tokens) to positions start..end-1. The model must run with eager attention to return the weights."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    try:
        output = model(torch.tensor([input_ids], device=device), output_attentions=True)
    finally:
        model.train(was_training)
    if not output.attentions or output.attentions[0] is None:
        raise RuntimeError(
            "the model returned no attention weights: load it with attn_implementation='eager'"
        )
    # attentions: one [batch, heads, query, key] tensor per layer.
    return torch.stack([a[0, :, end:, start:end].amax(dim=(0, 2)) for a in output.attentions]).float().cpu()


def binned(values: torch.Tensor, width: int) -> torch.Tensor:
    """Neighbouring tokens binned together by their maximum (the paper bins them for legibility)."""
    if width < 1:
        raise ValueError(f"bin width must be >= 1, got {width}")
    pad = (-values.shape[-1]) % width
    padded = torch.nn.functional.pad(values, (0, pad), value=float("-inf"))
    return padded.reshape(*values.shape[:-1], -1, width).amax(dim=-1)


def turn_peaks(per_token: torch.Tensor, first: int, turn_ends: list[int]) -> list[float]:
    """Per turn after the first, the strongest attention any of its tokens pays (over layers) to the system
    message. `per_token` is attention_to_span's map, whose column 0 is position `first`; `turn_ends` are the
    positions where turns 1, 2, ... end (the last turn runs to the end of the map).

    The paper's figure 10 point in one number a turn: a model that still heeds its instruction looks back
    at it somewhere in every answer; one that forgot it stops looking. Means over all tokens hide that,
    since most tokens of an answer have no reason to look back.
    """
    bounds = [end - first for end in turn_ends] + [per_token.shape[-1]]
    return [per_token[:, a:b].max().item() for a, b in zip(bounds, bounds[1:]) if b > a]
