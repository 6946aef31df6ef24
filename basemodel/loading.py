"""Load the policy / reward models every stage starts from, and save what a stage produces.

A model is either the built-in tiny Llama (`model.path` null: random weights from a seed, sizes from the
config) or a real checkpoint (a local directory or a hub id), optionally wrapped with LoRA adapters or
loaded in 4-bit NF4 for QLoRA.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedModel

from basemodel import TINY_TOKENIZER_DIR
from basemodel.tiny import tiny_llama_config
from chat.tokenizer import load_text_tokenizer
from pipeline.config import ModelConfig, PeftConfig

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}
PEFT_METHODS = ("none", "lora", "qlora")


def load_tokenizer_path(model_cfg: ModelConfig) -> str:
    """The tokenizer location: model.tokenizer if set, else the checkpoint's own, else the tiny tokenizer."""
    if model_cfg.tokenizer:
        return str(model_cfg.tokenizer)
    if model_cfg.path:
        return str(model_cfg.path)
    return str(TINY_TOKENIZER_DIR)


def tokenizer_vocab_size(tokenizer_path: str | Path) -> int:
    """Vocabulary size of the tokenizer at `tokenizer_path` (a directory, or a SentencePiece .model file)."""
    path = Path(tokenizer_path).expanduser()
    if not (path.is_file() or (path / "tokenizer.model").is_file() or (path / "tokenizer.json").is_file()):
        raise FileNotFoundError(
            f"tokenizer: no tokenizer.model or tokenizer.json at {path}; the tiny model takes its vocabulary "
            "size from it (train one with `python -m basemodel.tokenizer_train --out DIR`, set model.tokenizer=DIR)"
        )
    return load_text_tokenizer(path).vocab_size


def torch_dtype(name: str) -> torch.dtype | str:
    if name not in DTYPES:
        raise ValueError(f"model.dtype: unknown dtype {name!r} (expected one of {', '.join(DTYPES)})")
    return DTYPES[name]


def looks_local(path: str) -> bool:
    """True when `path` can only be a filesystem path, never a hub id ("name" or "owner/name")."""
    return path.startswith(("/", ".", "~")) or "\\" in path or path.count("/") > 1 or path.endswith("/")


def resolve_checkpoint(path: str) -> tuple[str, bool]:
    """Return (where to load from, is it a local directory); raise FileNotFoundError for a missing local path."""
    expanded = Path(path).expanduser()
    if expanded.is_dir():
        if not (expanded / "config.json").is_file() and not (expanded / "adapter_config.json").is_file():
            raise FileNotFoundError(
                f"model.path {path!r}: the directory has no config.json, so it is no checkpoint"
            )
        return str(expanded), True
    if expanded.exists():
        raise FileNotFoundError(f"model.path {path!r} is a file; expected a checkpoint directory or a hub id")
    if looks_local(path):
        raise FileNotFoundError(f"model.path {path!r}: no such directory")
    return path, False


def require_qlora_support() -> None:
    """QLoRA's 4-bit NF4 weights need bitsandbytes kernels, which run on CUDA only."""
    if importlib.util.find_spec("bitsandbytes") is None:
        raise RuntimeError(
            "peft.method=qlora loads the model in 4-bit NF4 through bitsandbytes, which is not installed; "
            "install bitsandbytes on a CUDA machine, or use peft.method=lora"
        )
    if not torch.cuda.is_available():
        raise RuntimeError(
            "peft.method=qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels) and none is available; "
            "use peft.method=lora on CPU"
        )


def check_peft_method(peft_cfg: PeftConfig | None) -> str:
    method = "none" if peft_cfg is None else peft_cfg.method
    if method not in PEFT_METHODS:
        raise ValueError(
            f"peft.method: unknown method {method!r} (expected one of {', '.join(PEFT_METHODS)})"
        )
    if method == "qlora":
        require_qlora_support()
    return method


def nf4_quantization(model_cfg: ModelConfig):
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float16 if model_cfg.dtype == "float16" else torch.bfloat16,
    )


def pretrained_kwargs(model_cfg: ModelConfig, local: bool, method: str) -> dict:
    kwargs = {
        "dtype": torch_dtype(model_cfg.dtype),
        "attn_implementation": model_cfg.attn_implementation,
        "trust_remote_code": model_cfg.trust_remote_code,
        "local_files_only": local,
    }
    if method == "qlora":
        quantization = nf4_quantization(model_cfg)
        kwargs.update(
            quantization_config=quantization,
            dtype=quantization.bnb_4bit_compute_dtype,
            device_map={"": torch.cuda.current_device()},
        )
    return kwargs


def build_tiny(model_class, model_cfg: ModelConfig, seed: int, vocab_size: int | None, **config_overrides):
    """Random-init the tiny Llama; the same seed gives the same weights, and the global RNG is left untouched."""
    if vocab_size is None:
        vocab_size = tokenizer_vocab_size(load_tokenizer_path(model_cfg))
    config = tiny_llama_config(model_cfg, vocab_size)
    for key, value in config_overrides.items():
        setattr(config, key, value)
    dtype = torch_dtype(model_cfg.dtype)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = model_class.from_config(config, attn_implementation=model_cfg.attn_implementation)
    return model.to(torch.float32 if dtype == "auto" else dtype)


def from_pretrained_seeded(model_class, model_cfg: ModelConfig, method: str, seed: int, **extra):
    """from_pretrained, seeded so that any freshly initialised head (a reward model's score) is reproducible."""
    if model_cfg.path is None:
        raise ValueError("model.path is null: the tiny model is built from its config, not loaded")
    location, local = resolve_checkpoint(str(model_cfg.path))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class.from_pretrained(location, **pretrained_kwargs(model_cfg, local, method), **extra)


def quantize_tiny(model_class, model_cfg: ModelConfig, seed: int, vocab_size: int | None, **config_overrides):
    """The tiny model in 4-bit: bitsandbytes quantizes at load time only, so go through a saved copy."""
    tiny = build_tiny(model_class, model_cfg, seed, vocab_size, **config_overrides)
    with tempfile.TemporaryDirectory() as tmp:
        tiny.save_pretrained(tmp)
        saved = ModelConfig(
            path=tmp, dtype=model_cfg.dtype, attn_implementation=model_cfg.attn_implementation
        )
        # The weights are read while loading, so the temporary copy may go once this returns.
        return from_pretrained_seeded(model_class, saved, "qlora", seed)


def prepare_for_training(
    model, model_cfg: ModelConfig, peft_cfg: PeftConfig | None, method: str, task_type: str
):
    """Gradient checkpointing, k-bit preparation and LoRA wrapping, in the order PEFT requires."""
    # Re-entrant checkpointing drops the gradients of LoRA layers whose inputs do not require grad.
    checkpointing = {"use_reentrant": False}
    if method == "qlora":
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(
            model,
            use_gradient_checkpointing=model_cfg.gradient_checkpointing,
            gradient_checkpointing_kwargs=checkpointing,
        )
    elif model_cfg.gradient_checkpointing:
        enable_activation_checkpointing(model, checkpointing)
    if method in ("lora", "qlora"):
        model = wrap_with_lora(model, peft_cfg, task_type)
    return model


def enable_activation_checkpointing(model, checkpoint_kwargs: dict) -> None:
    # transformers 5.23 renamed gradient_checkpointing_enable (now a deprecated alias); older 5.x lack the new name.
    if hasattr(model, "activation_checkpointing_enable"):
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=checkpoint_kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=checkpoint_kwargs)


def wrap_with_lora(model, peft_cfg: PeftConfig, task_type: str):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=peft_cfg.r,
        lora_alpha=peft_cfg.alpha,
        lora_dropout=peft_cfg.dropout,
        target_modules=list(peft_cfg.target_modules),
        bias="none",
        task_type=task_type,
    )
    return get_peft_model(model, lora)


def load_model(model_class, model_cfg, peft_cfg, seed, vocab_size, task_type, **config_overrides):
    method = check_peft_method(peft_cfg)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # LoRA's A matrices are random: seed them too
        if model_cfg.path is None and method == "qlora":
            model = quantize_tiny(model_class, model_cfg, seed, vocab_size, **config_overrides)
        elif model_cfg.path is None:
            model = build_tiny(model_class, model_cfg, seed, vocab_size, **config_overrides)
        else:
            model = from_pretrained_seeded(model_class, model_cfg, method, seed, **config_overrides)
        return prepare_for_training(model, model_cfg, peft_cfg, method, task_type)


def load_causal_lm(
    model_cfg: ModelConfig,
    peft_cfg: PeftConfig | None = None,
    seed: int = 0,
    *,
    vocab_size: int | None = None,
):
    """The policy model. `vocab_size` overrides the tiny model's (default: the size of its tokenizer)."""
    model = load_model(AutoModelForCausalLM, model_cfg, peft_cfg, seed, vocab_size, "CAUSAL_LM")
    log.info("loaded %s: %s", model_cfg.path or "tiny llama", describe_parameters(model))
    return model


def load_sequence_classifier(
    model: ModelConfig | str | Path,
    peft_cfg: PeftConfig | None = None,
    seed: int = 0,
    *,
    pad_token_id: int,
    vocab_size: int | None = None,
):
    """A reward model: the base model with a scalar head (num_labels=1) reading the last non-pad token.

    `model` is a ModelConfig or a checkpoint directory (an SFT model, or a saved reward model). The pad id
    must be the one the batches are padded with: Llama has none of its own, and the head finds the last
    real token by looking for it.
    """
    model_cfg = ModelConfig(path=str(model)) if isinstance(model, str | Path) else model
    classifier = load_model(
        AutoModelForSequenceClassification,
        model_cfg,
        peft_cfg,
        seed,
        vocab_size,
        "SEQ_CLS",
        num_labels=1,
        pad_token_id=pad_token_id,
    )
    classifier.config.pad_token_id = pad_token_id
    log.info("loaded reward model %s: %s", model_cfg.path or "tiny llama", describe_parameters(classifier))
    return classifier


def describe_parameters(model) -> str:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return f"{total / 1e6:.2f}M parameters, {trainable / 1e6:.2f}M trainable"


def save_model(model, out_dir: str | Path, merge_adapters: bool) -> PreTrainedModel:
    """Save as safetensors; return the model that was saved.

    A LoRA model is either merged (its adapters folded into the base weights, giving a plain checkpoint that
    `from_pretrained` loads without peft; note this modifies `model` itself) or saved as an adapter folder.
    """
    from peft import PeftModel

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if isinstance(model, PeftModel) and merge_adapters:
        model = model.merge_and_unload()
    if isinstance(model, PeftModel):
        model.save_pretrained(str(out_dir), safe_serialization=True)
    else:
        model.save_pretrained(str(out_dir))  # transformers 5 always writes safetensors
    return model
