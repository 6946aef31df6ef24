"""Generation with vLLM from a saved checkpoint, for large sampling runs on a CUDA machine.

vLLM is imported lazily: it is an optional dependency that only installs on CUDA machines. The prompts
are given as token ids (our own Llama 2 chat encoding), and vLLM's tokenizer is never used.
"""

from __future__ import annotations

from pathlib import Path

from generation.sampling import (
    ChatEncoderLike,
    Completion,
    SamplingParams,
    completion_from_ids,
    encode_prompts,
)


class VLLMGenerator:
    """Serves the checkpoint at `model_path` (a saved, merged model: vLLM does not read our models in memory)."""

    def __init__(self, model_path: str | Path, encoder: ChatEncoderLike, **llm_kwargs):
        from vllm import LLM

        self.encoder = encoder
        llm_kwargs = {"gpu_memory_utilization": 0.5, **llm_kwargs}
        self.llm = LLM(model=str(model_path), skip_tokenizer_init=True, **llm_kwargs)

    def generate(self, dialogs: list[list[dict]], params: SamplingParams) -> list[list[Completion]]:
        from vllm import SamplingParams as VllmSamplingParams

        prompts = encode_prompts(self.encoder, dialogs)
        sampling = VllmSamplingParams(
            n=1 if params.greedy else params.num_samples,
            temperature=params.temperature,
            top_p=params.top_p,
            max_tokens=params.max_new_tokens,
            seed=params.seed,
            stop_token_ids=[self.encoder.eos_id],  # no tokenizer loaded, so vLLM knows no EOS of its own
            detokenize=False,
        )
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], sampling, use_tqdm=False)
        results = []
        for request in outputs:  # vLLM keeps the input order
            samples = [self.completion(sample.token_ids, sample.finish_reason) for sample in request.outputs]
            results.append(samples * params.num_samples if params.greedy else samples)
        return results

    def completion(self, token_ids, finish_reason: str | None) -> Completion:
        ids = list(token_ids)
        if finish_reason == "stop" and self.encoder.eos_id not in ids:
            ids.append(self.encoder.eos_id)  # some vLLM versions drop the stop token from the ids
        return completion_from_ids(self.encoder, ids)
