"""The model card (`README.md`) each stage writes beside its output."""

from __future__ import annotations

import json
from pathlib import Path

from omegaconf import DictConfig, OmegaConf


def write_model_card(
    folder: Path,
    *,
    stage: str,
    base: str,
    data: str,
    cfg: DictConfig,
    metrics: dict,
    loader: str = "AutoModelForCausalLM",
) -> None:
    """Say what this output is, what it came from, how it was made and how it scored."""
    text = f"""---
library_name: transformers
tags: [llama-rlhf, {stage}]
---
# {stage} output of llama-rlhf run `{cfg.run.name}`

- **Stage:** {stage}
- **Started from:** `{base}`
- **Data:** {data}

Load it with plain transformers:

```python
from transformers import {loader}, AutoTokenizer
model = {loader}.from_pretrained("{Path(folder).name}")
tokenizer = AutoTokenizer.from_pretrained("{Path(folder).name}")  # carries the Llama 2 chat template
```

## Metrics
```json
{json.dumps(metrics, indent=2, default=float)}
```

## Configuration
```yaml
{OmegaConf.to_yaml(cfg, resolve=True)}```
"""
    (Path(folder) / "README.md").write_text(text)
