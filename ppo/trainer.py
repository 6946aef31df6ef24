"""The PPO update: for each epoch, shuffled mini-batches, one optimizer step per mini-batch.

Policy and value model are separate models with separate AdamW optimizers; one backward of the summed
losses gives each its own gradients. A mini-batch whose losses, log-probs or gradients hold NaN or inf is
skipped (gradients dropped, counted, logged): nothing non-finite ever reaches the weights.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import torch

from ppo.losses import explained_variance, policy_loss, value_loss
from ppo.rewards import is_finite_batch
from ppo.rollout import Rollout, policy_logprobs, value_estimates

log = logging.getLogger(__name__)
Tensor = torch.Tensor


def make_optimizer(model, lr: float, train_cfg) -> torch.optim.AdamW:
    """AdamW with the paper's betas / eps / weight decay over the trainable parameters."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    settings = {
        "lr": lr,
        "betas": (train_cfg.adam_beta1, train_cfg.adam_beta2),
        "eps": train_cfg.adam_eps,
        "weight_decay": train_cfg.weight_decay,
    }
    # The fused kernel updates every parameter in one pass instead of a loop of small ops: on 2 CPU cores a
    # step of the 4.4M-parameter tiny Llama took 5.8 ms against 27 ms (4 steps an iteration); HF trainers and
    # trl 1.12's PPO use it too. Devices without it (e.g. XLA) get the default implementation.
    try:
        return torch.optim.AdamW(params, fused=True, **settings)
    except RuntimeError:
        return torch.optim.AdamW(params, **settings)


def mini_batches(rows: int, size: int, generator: torch.Generator) -> list[Tensor]:
    """A random permutation of the rows cut into mini-batches of ``size`` (the last may be smaller). A prompt's
    samples land where they fall: kept together (so that a micro-batch shares their prompt) the tiny trained
    bench ran 1.3x faster but gained less in each of three seeds (bench/RESULTS.md, session 15)."""
    order = torch.randperm(rows, generator=generator)
    return [order[start : start + size] for start in range(0, rows, size)]


@dataclass
class UpdateStats:
    steps: int = 0
    skipped: int = 0
    values: dict[str, list[float]] = field(default_factory=dict)

    def add(self, **numbers: float) -> None:
        for key, number in numbers.items():
            self.values.setdefault(key, []).append(float(number))

    def means(self) -> dict[str, float]:
        summary = {key: sum(v) / len(v) for key, v in self.values.items() if v}
        summary.update({"train/steps": self.steps, "train/skipped_nonfinite": self.skipped})
        return summary


@dataclass
class Learner:
    """What the update needs: the (possibly accelerate-wrapped) models, their optimizers, the accelerator."""

    policy: torch.nn.Module
    value_model: torch.nn.Module
    policy_optimizer: torch.optim.Optimizer
    value_optimizer: torch.optim.Optimizer
    accelerator: object

    def everywhere(self, flag: bool) -> bool:
        """True when ``flag`` holds on every process: all ranks must skip a step together, or DDP's
        gradient all-reduce would wait forever for the rank that skipped its backward."""
        if getattr(self.accelerator, "num_processes", 1) == 1:
            return flag
        flags = self.accelerator.gather(torch.tensor([flag], device=self.accelerator.device))
        return bool(flags.all())

    def zero_grad(self) -> None:
        self.policy_optimizer.zero_grad(set_to_none=True)
        self.value_optimizer.zero_grad(set_to_none=True)


def micro_step(learner: Learner, rollout: Rollout, rows: Tensor, weight: float, train_cfg) -> dict | None:
    """Forward + backward on some rows of a mini-batch; None (no backward) when anything is non-finite."""
    batch = rollout.batch.rows(rows)
    width = batch.width
    mask = batch.response_mask
    old_logprobs = rollout.logprobs[rows, :width]
    logprobs, _ = policy_logprobs(learner.policy, batch, train_cfg.temperature, train_cfg.layout)
    values = value_estimates(learner.value_model, batch, train_cfg.layout)
    p_loss, clip_fraction, approx_kl = policy_loss(
        logprobs, old_logprobs, rollout.advantages[rows, :width], mask, train_cfg.clip
    )
    v_loss, value_clip_fraction = value_loss(
        values, rollout.values[rows, :width], rollout.returns[rows, :width], mask, train_cfg.value_clip
    )
    real_logprobs = torch.where(mask, logprobs, 0)
    if not learner.everywhere(is_finite_batch(p_loss, v_loss, real_logprobs, torch.where(mask, values, 0))):
        return None
    learner.accelerator.backward((p_loss + v_loss) * weight)
    return {
        "train/policy_loss": p_loss.item(),
        "train/value_loss": v_loss.item(),
        "train/clip_fraction": clip_fraction.item(),
        "train/value_clip_fraction": value_clip_fraction.item(),
        "train/approx_kl": approx_kl.item(),
    }


def clip_and_check(learner: Learner, max_norm: float) -> tuple[float, float] | None:
    """Clip both models' gradients; None when a gradient norm is NaN or inf."""
    clip = learner.accelerator.clip_grad_norm_
    policy_norm = clip([p for p in learner.policy.parameters() if p.requires_grad], max_norm)
    value_norm = clip([p for p in learner.value_model.parameters() if p.requires_grad], max_norm)
    if not learner.everywhere(is_finite_batch(torch.as_tensor(policy_norm), torch.as_tensor(value_norm))):
        return None
    return float(policy_norm), float(value_norm)


def ppo_update(learner: Learner, rollout: Rollout, train_cfg, generator: torch.Generator) -> dict:
    """``ppo_epochs`` passes over the rollout in shuffled mini-batches, one optimizer step each."""
    stats = UpdateStats()
    rows = rollout.batch.input_ids.shape[0]
    for _ in range(train_cfg.ppo_epochs):
        for mini in mini_batches(rows, train_cfg.mini_batch_size, generator):
            learner.zero_grad()
            micro = [
                mini[s : s + train_cfg.micro_batch_size]
                for s in range(0, len(mini), train_cfg.micro_batch_size)
            ]
            results = []
            for part in micro:
                result = micro_step(learner, rollout, part, len(part) / len(mini), train_cfg)
                if result is None:
                    break
                results.append(result)
            norms = clip_and_check(learner, train_cfg.max_grad_norm) if len(results) == len(micro) else None
            if norms is None:
                learner.zero_grad()
                stats.skipped += 1
                log.warning("PPO update: NaN or inf in a mini-batch's losses or gradients; skipped its step")
                continue
            learner.policy_optimizer.step()
            learner.value_optimizer.step()
            stats.steps += 1
            for result in results:
                stats.add(**result)
            stats.add(**{"train/policy_grad_norm": norms[0], "train/value_grad_norm": norms[1]})
    learner.zero_grad()
    summary = stats.means()
    mask = rollout.batch.response_mask
    summary["value/explained_variance"] = float(explained_variance(rollout.values, rollout.returns, mask))
    return summary
