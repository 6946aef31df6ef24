"""The three models PPO trains with or against: policy, frozen reference, value model.

- The reference is the starting policy, frozen. With LoRA it is the same model with its adapters
  disabled (no second copy of the weights); otherwise a second copy loaded from the same checkpoint.
- The value model is a sequence classifier (a reward model, or the policy with a new scalar head) whose
  head is applied at every response position rather than only at the last token.
- Every forward here keeps only the response positions: the lm_head (32k columns for Llama 2) runs on
  the response tokens alone, the value head too.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn

Tensor = torch.Tensor


def unwrap_peft(model):
    """The transformers model inside a PeftModel (its LoRA layers stay injected), else the model itself."""
    from peft import PeftModel

    return model.get_base_model() if isinstance(model, PeftModel) else model


def uses_lora(model) -> bool:
    from peft import PeftModel

    return isinstance(model, PeftModel)


class ValueModel(nn.Module):
    """V(s_t) at each response position from a sequence classifier's backbone and scalar head.

    A module of its own (rather than a function calling the classifier's parts) so that DDP / FSDP wrap
    one forward and synchronise its gradients.

    PPO's returns are in whitened reward units, while a head taken from a reward model speaks the reward
    model's raw score. ``calibrate`` maps the head onto the whitened scale once, from the first rollout's
    scores: V = (head - shift) / scale. The two numbers are buffers (saved with the weights, never trained,
    left whole by FSDP and ZeRO-3); an uncalibrated model has shift 0 and scale 1.
    """

    def __init__(self, classifier):
        super().__init__()
        self.classifier = classifier
        self.register_buffer("head_shift", torch.zeros(1))
        self.register_buffer("head_scale", torch.ones(1))

    def calibrate(self, mean: float, std: float) -> None:
        """From now on a head output equal to ``mean`` reads 0 and one ``std`` above it reads 1."""
        if not std > 0:
            raise ValueError(f"value head calibration needs a positive std, got {std}")
        self.head_shift.fill_(mean)
        self.head_scale.fill_(std)

    def forward(
        self, input_ids: Tensor, attention_mask: Tensor | None, position_ids: Tensor, at: int | Tensor
    ) -> Tensor:
        """V(s_t) for each of the last ``at`` tokens (an int): (rows, at), read one position before each; or, for
        a 1-D tensor ``at`` of indices into the flattened (rows, columns) input, read at those states: (len(at),)
        (the caller passes each token's predecessor: see PackedRows.reads). s_t is what precedes token t, so V is
        read where the logits predicting it are. (Read at token t itself, V would have seen the action it is the
        baseline for, and every advantage would land one token early.)"""
        base = unwrap_peft(self.classifier)
        backbone = getattr(base, base.base_model_prefix)
        hidden = backbone(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
        ).last_hidden_state
        kept = hidden[:, -at - 1 : -1] if isinstance(at, int) else hidden.flatten(0, 1)[at]
        head = base.score(kept).squeeze(-1).float()
        return (head - self.head_shift) / self.head_scale


def response_logits(
    model, input_ids: Tensor, attention_mask: Tensor, position_ids: Tensor, width: int
) -> Tensor:
    """Logits predicting each of the last ``width`` tokens: positions -width-1 .. -2 of the sequence."""
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=width + 1,
        use_cache=False,
    )
    return out.logits[:, :-1]


def token_logprobs(logits: Tensor, tokens: Tensor, temperature: float) -> Tensor:
    """log softmax(logits / T) at the sampled tokens: the log-probability under the sampling distribution."""
    if temperature <= 0:
        raise ValueError(f"PPO samples its answers: temperature must be positive, got {temperature}")
    scaled = logits.float() / temperature
    return torch.log_softmax(scaled, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


@contextmanager
def reference_model(policy, frozen_copy):
    """The reference policy for the duration: the frozen copy, or the LoRA policy with adapters disabled."""
    if frozen_copy is not None:
        yield frozen_copy
        return
    if not uses_lora(policy):
        raise ValueError("a reference model is needed: the policy has no LoRA adapters to disable")
    with policy.disable_adapter():
        yield policy


def freeze(model):
    """Eval mode, no gradients: for the reference and the reward models."""
    model.eval()
    model.requires_grad_(False)
    return model


def no_dropout(model):
    """Eval mode for the trained models too: dropout would make the first ratio differ from 1 and the
    rollout log-probs disagree with the training ones (TRL's PPO disables it as well)."""
    model.eval()
    return model
