"""Batched generation with any transformers / peft causal LM through `model.generate`."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import replace

import torch
from transformers import GenerationConfig

from generation.sampling import (
    ChatEncoderLike,
    Completion,
    SamplingParams,
    completion_from_ids,
    encode_prompts,
)


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, longest first (an out-of-memory shows up at once)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def left_padded(prompts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Input ids and attention mask with the padding on the left, so every prompt ends at the last column."""
    width = max(len(prompt) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[row, width - len(prompt) :] = 1
    return input_ids, attention_mask


def generation_config(params: SamplingParams, encoder: ChatEncoderLike, pad_id: int) -> GenerationConfig:
    """Every decoding knob set explicitly: unset ones would be filled from the checkpoint's own
    generation_config.json (Llama-2-chat ships temperature 0.6, top_p 0.9) and from transformers' global
    defaults (top_k 50), silently changing what SamplingParams asked for."""
    sampling = not params.greedy
    return GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        min_length=0,
        do_sample=sampling,
        temperature=params.temperature if sampling else 1.0,
        top_p=params.top_p if sampling else 1.0,
        top_k=0 if sampling else None,  # 0 turns top-k off; greedy decoding warns about any top_k set
        typical_p=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        num_beams=1,
        num_return_sequences=params.num_samples if sampling else 1,
        bos_token_id=encoder.bos_id,
        eos_token_id=encoder.eos_id,
        pad_token_id=pad_id,
        use_cache=True,
    )


@contextmanager
def eval_mode(model: torch.nn.Module):
    """Eval mode (no dropout) for the duration, then every submodule back to the mode it was in."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.train(training)


class HFGenerator:
    """`batch_size` is the number of sequences decoded together (prompts x samples, at least one prompt)."""

    def __init__(self, model, encoder: ChatEncoderLike, batch_size: int = 32):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.encoder = encoder
        self.batch_size = batch_size
        # Llama has no pad token; any id works under the attention mask, so fall back to EOS.
        self.pad_id = encoder.pad_id if encoder.pad_id is not None else encoder.eos_id

    def generate(self, dialogs: list[list[dict]], params: SamplingParams) -> list[list[Completion]]:
        """`params.num_samples` completions per dialog, in the order of `dialogs`.

        Sampling is reproducible for the same inputs, params and batch size; the caller's RNG state is left
        as it was.
        """
        prompts = encode_prompts(self.encoder, dialogs)
        results: list[list[Completion]] = [[] for _ in prompts]
        samples_per_batch = 1 if params.greedy else params.num_samples
        prompts_per_batch = max(1, self.batch_size // samples_per_batch)
        device = next(self.model.parameters()).device
        with eval_mode(self.model), torch.no_grad(), torch.random.fork_rng(devices=cuda_devices(device)):
            torch.manual_seed(params.seed)
            for batch in length_sorted_batches([len(p) for p in prompts], prompts_per_batch):
                completions = self.generate_batch([prompts[i] for i in batch], params, device)
                for index, samples in zip(batch, completions, strict=True):
                    results[index] = samples
        return results

    def generate_batch(
        self, prompts: list[list[int]], params: SamplingParams, device
    ) -> list[list[Completion]]:
        input_ids, attention_mask = left_padded(prompts, self.pad_id)
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            generation_config=generation_config(params, self.encoder, self.pad_id),
        )
        generated = output[:, input_ids.shape[1] :].tolist()
        if params.greedy:
            # Greedy samples are all the same: decode once, repeat.
            firsts = [completion_from_ids(self.encoder, ids) for ids in generated]
            # Separate token lists, so that a caller editing one sample does not edit its copies.
            return [
                [replace(c, token_ids=list(c.token_ids)) for _ in range(params.num_samples)] for c in firsts
            ]
        # generate() returns the num_return_sequences samples of each prompt next to each other.
        n = params.num_samples
        return [
            [completion_from_ids(self.encoder, ids) for ids in generated[row * n : (row + 1) * n]]
            for row in range(len(prompts))
        ]


def cuda_devices(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []
