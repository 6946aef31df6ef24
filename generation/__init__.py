"""The one generation interface every later stage uses (evaluation, rejection sampling, PPO, GAtt).

    generator = make_generator("auto", model=model, encoder=encoder)
    completions = generator.generate(dialogs, SamplingParams(max_new_tokens=128, temperature=0.7))
    completions[i][k]  # the k-th sample for dialogs[i]

Backends: `HFGenerator` (any transformers / peft model, batched `model.generate`) and `VLLMGenerator`
(a saved checkpoint served by vLLM, when vllm and a CUDA device are available).
"""

from generation.backends import generate_answers, make_generator, vllm_available
from generation.hf_generator import HFGenerator
from generation.sampling import ChatEncoderLike, Completion, SamplingParams
from generation.vllm_generator import VLLMGenerator

__all__ = [
    "ChatEncoderLike",
    "Completion",
    "HFGenerator",
    "SamplingParams",
    "VLLMGenerator",
    "generate_answers",
    "make_generator",
    "vllm_available",
]
