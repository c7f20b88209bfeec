"""Logits from a transformers model (full precision, or any quantized format transformers loads)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ..hf_model import load_causal_lm
from ..text_tokens import HFTokenizer


class TransformersProvider:
    def __init__(self, folder: Path, device: str = "cpu", n_params: int | None = None, fmt=None):
        self.name = str(folder)
        self.tokenizer = HFTokenizer.load(folder)
        self.model = load_causal_lm(folder, device, n_params, fmt)
        self.device = device
        dtype = str(next(self.model.parameters()).dtype).replace("torch.", "")
        import torch

        n = torch.get_num_threads()
        where = f"{n} thread{'s' if n != 1 else ''}" if device == "cpu" else device
        self.backend = f"transformers ({dtype}, {where})"
        # The logits' width is the output layer's, which may exceed the tokenizer's (padded vocabularies).
        self.vocab_size = int(self.model.get_output_embeddings().weight.shape[0])

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text)

    def logits(self, token_ids: Sequence[int]):
        import torch

        ids = torch.as_tensor(list(token_ids), dtype=torch.long, device=self.device)[None]
        with torch.inference_mode():
            return self.model(input_ids=ids, use_cache=False).logits[0].float().cpu()

    def close(self) -> None:
        self.model = None
