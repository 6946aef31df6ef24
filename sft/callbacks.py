"""A table of sampled answers at each evaluation, so a run's progress can be read, not just its loss."""

from __future__ import annotations

from transformers import TrainerCallback

from generation import SamplingParams, generate_answers


class SampleTableCallback(TrainerCallback):
    """After every evaluation, answer a few held-out prompts greedily and log them as a wandb table."""

    def __init__(self, tracker, encoder, dialogs: list[list[dict]], max_new_tokens: int = 48):
        self.tracker, self.encoder = tracker, encoder
        self.prompts = [dialog[:-1] for dialog in dialogs if len(dialog) >= 2]  # up to the last user turn
        self.params = SamplingParams(max_new_tokens=max_new_tokens, temperature=0.0)

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        if not (self.tracker.enabled and self.prompts and model is not None):
            return
        answers = generate_answers(
            model, self.encoder, self.prompts, self.params, batch_size=len(self.prompts)
        )
        rows = [[p[-1]["content"], a] for p, a in zip(self.prompts, answers)]
        self.tracker.log_table("samples/eval", ["prompt", "answer"], rows, step=state.global_step)
