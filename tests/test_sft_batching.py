"""Padding-free SFT batches (trl's collator) are exact: each dialog gets the logits it gets alone."""

import torch
from transformers import LlamaConfig, LlamaForCausalLM
from trl.trainer.sft_trainer import DataCollatorForLanguageModeling


def test_padding_free_row_keeps_each_dialog_to_itself():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        intermediate_size=64, attn_implementation="sdpa",
    )  # fmt: skip
    model = LlamaForCausalLM(config).eval()
    dialogs = [[1, 7, 9, 3, 4, 2], [1, 5, 5, 8, 2], [1, 6, 2]]
    batch = DataCollatorForLanguageModeling(pad_token_id=0, padding_free=True)(
        [{"input_ids": d} for d in dialogs]
    )
    assert "attention_mask" not in batch  # what makes transformers derive per-dialog masks from position ids
    with torch.no_grad():
        # trl's SFTTrainer passes use_cache=False; with a cache transformers would not split the row
        row = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits[
            0
        ]
        start = 0
        for dialog in dialogs:
            alone = model(input_ids=torch.tensor([dialog])).logits[0]
            torch.testing.assert_close(row[start : start + len(dialog)], alone, atol=1e-5, rtol=1e-5)
            start += len(dialog)
