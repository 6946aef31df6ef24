"""Batched generation with any transformers / peft causal LM through `model.generate`."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import replace

import torch
from transformers import GenerationConfig, LogitsProcessorList

from generation.next_token import SampleNextToken
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
    """Greedy decoding over the scores of `next_token_processors`, every knob set explicitly: unset ones would
    be filled from the checkpoint's own generation_config.json (Llama-2-chat ships temperature 0.6, top_p 0.9)
    and from transformers' global defaults (top_k 50), silently changing what SamplingParams asked for.
    Sampling is done by SampleNextToken, not by generate's do_sample (see generation.next_token)."""
    return GenerationConfig(
        max_new_tokens=params.max_new_tokens,
        min_length=0,
        do_sample=False,
        temperature=1.0,
        top_p=1.0,
        top_k=None,  # greedy decoding warns about any top_k set
        typical_p=1.0,
        repetition_penalty=1.0,
        no_repeat_ngram_size=0,
        num_beams=1,
        num_return_sequences=1,
        bos_token_id=encoder.bos_id,
        eos_token_id=encoder.eos_id,
        pad_token_id=pad_id,
        use_cache=True,
    )


def next_token_processors(params: SamplingParams) -> LogitsProcessorList:
    """Nothing for greedy decoding; else the sampler that leaves one finite score for greedy's argmax (and
    records log-probs and entropies when `params.logprobs`)."""
    if params.greedy:
        return LogitsProcessorList()
    return LogitsProcessorList([SampleNextToken(params.temperature, params.top_p, record=params.logprobs)])


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
    """`batch_size` is the number of sequences decoded together (prompts x samples, at least one prompt);
    `compute` makes the context decoding runs in, such as bf16 autocast on a CPU (basemodel.precision)."""

    def __init__(
        self,
        model,
        encoder: ChatEncoderLike,
        batch_size: int = 32,
        compute: Callable[[], AbstractContextManager] = nullcontext,
    ):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model = model
        self.encoder = encoder
        self.batch_size = batch_size
        self.compute = compute
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
        with (
            eval_mode(self.model),
            torch.no_grad(),
            self.compute(),
            torch.random.fork_rng(devices=cuda_devices(device)),
        ):
            torch.manual_seed(params.seed)
            for batch in length_sorted_batches([len(p) for p in prompts], prompts_per_batch):
                completions = self.generate_batch([prompts[i] for i in batch], params, device)
                for index, samples in zip(batch, completions, strict=True):
                    results[index] = samples
        return results

    def generate_batch(
        self, prompts: list[list[int]], params: SamplingParams, device
    ) -> list[list[Completion]]:
        samples = 1 if params.greedy else params.num_samples
        input_ids, attention_mask = left_padded(prompts, self.pad_id)
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
        cache = None
        if samples > 1 and input_ids.shape[1] > 1:
            cache = shared_prompt_cache(self.model, input_ids[:, :-1], attention_mask[:, :-1], samples)
        processors = next_token_processors(params)
        # Each prompt repeated for its samples, next to each other (what num_return_sequences would do).
        output = self.model.generate(
            input_ids=input_ids.repeat_interleave(samples, dim=0),
            attention_mask=attention_mask.repeat_interleave(samples, dim=0),
            cache=cache,
            generation_config=generation_config(params, self.encoder, self.pad_id),
            logits_processor=processors,
        )
        generated = output[:, input_ids.shape[1] :].tolist()
        if params.greedy:
            # Greedy samples are all the same: decode once, repeat.
            firsts = [completion_from_ids(self.encoder, ids) for ids in generated]
            # Separate token lists, so that a caller editing one sample does not edit its copies.
            return [
                [replace(c, token_ids=list(c.token_ids)) for _ in range(params.num_samples)] for c in firsts
            ]
        completions = [completion_from_ids(self.encoder, ids) for ids in generated]
        if params.logprobs:
            completions = with_recorded_logprobs(completions, processors[0].steps)
        n = params.num_samples
        return [completions[row * n : (row + 1) * n] for row in range(len(prompts))]


def with_recorded_logprobs(completions: list[Completion], steps) -> list[Completion]:
    """Each completion with the log-probs and entropies the sampler recorded for its tokens (its row of every
    step, up to its length: what generate produced after it finished is padding)."""
    logprobs = torch.stack([lp for lp, _ in steps], dim=1).tolist()
    entropies = torch.stack([h for _, h in steps], dim=1).tolist()
    return [
        replace(
            c,
            token_logprobs=logprobs[row][: len(c.token_ids)],
            token_entropies=entropies[row][: len(c.token_ids)],
        )
        for row, c in enumerate(completions)
    ]


def shared_prompt_cache(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, copies: int):
    """The KV cache of the (left-padded) prompts, computed once per prompt and repeated for its `copies`
    samples: the K samples of a prompt share its prefill instead of computing it K times (on 2 CPU cores the
    prefill of 4 copies was a quarter of a batched call's time). Leave out each prompt's last token: generate
    needs one uncached token to start from. Positions as generate counts them under left padding."""
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill_(attention_mask == 0, 1)
    output = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        use_cache=True,
        logits_to_keep=1,  # the prefill's logits are not needed: keep the fewest (one position)
    )
    cache = output.cache
    cache.batch_repeat_interleave(copies)
    return cache


def cuda_devices(device: torch.device) -> list[torch.device]:
    return [device] if device.type == "cuda" else []
