"""How closely a GGUF imported to Hugging Face format predicts what llama.cpp predicts.

Imports the bundled SmolLM2 GGUF as float16 and as float32, runs the same 256 tokens of English
through llama.cpp (the GGUF itself) and transformers (the imports), and prints, per import,
the top-1 agreement of next-token predictions and the largest and mean absolute logit difference.

    .venv/bin/python bench/import_agreement.py [--tokens 256]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bitsmith.engine.config import ImportConfig  # noqa: E402
from bitsmith.engine.events import run_job  # noqa: E402
from bitsmith.engine.formats.gguf.import_hf import import_gguf  # noqa: E402
from bitsmith.engine.paths import bundled_model_path  # noqa: E402

TEXT = """\
The lighthouse keeper woke before dawn, as he had every morning for thirty years. He lit the
stove, boiled water for tea, and climbed the spiral stairs to check the lamp. Outside, the sea was
calm and grey, and a thin line of light was rising over the cliffs to the east.

In the village below, the baker was already pulling bread from the oven. Children would soon walk
past on their way to school, and the fishermen would argue about the weather, the price of fuel,
and whether the new harbour wall had been worth the money the council spent on it.

Photosynthesis is the process by which green plants use sunlight to turn water and carbon dioxide
into sugar and oxygen. It takes place mainly in the leaves, inside small structures called
chloroplasts, which contain a green pigment named chlorophyll. Without it, most life on Earth
would not exist, because nearly every food chain begins with a plant.

To make a simple tomato sauce, warm two tablespoons of olive oil in a pan, add a chopped onion and
a clove of garlic, and cook them gently for five minutes. Then add a tin of tomatoes, a pinch of
salt, and a few leaves of basil, and let the sauce simmer for twenty minutes while you cook the
pasta. Taste it before serving, and add a little sugar if it is too sharp.
"""


def llama_cpp_logits(gguf_path: Path, ids: list[int]) -> np.ndarray:
    from bitsmith.engine.runtime.llamacpp_open import open_llama

    llm = open_llama(gguf_path, n_ctx=max(512, len(ids) + 8), logits_all=True, verbose=False, seed=0)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float32)


def transformers_logits(folder: Path, ids: list[int], dtype: str) -> np.ndarray:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).eval()
    with torch.no_grad():
        out = model(torch.tensor([ids])).logits[0]
    return out.float().numpy()


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    diff = np.abs(reference - candidate)
    return {
        "top1": float(np.mean(reference.argmax(-1) == candidate.argmax(-1))),
        "max_abs": float(diff.max()),
        "mean_abs": float(diff.mean()),
    }


def tokenize(gguf_path: Path, text: str, n_tokens: int) -> list[int]:
    from llama_cpp import Llama

    vocab = Llama(str(gguf_path), vocab_only=True, verbose=False)
    ids = vocab.tokenize(text.encode("utf-8"), add_bos=False, special=False)
    if len(ids) < n_tokens:
        raise SystemExit(f"the sample text has {len(ids)} tokens, fewer than {n_tokens}")
    return ids[:n_tokens]


def timed_import(source: Path, out_dir: Path, dtype: str) -> float:
    started = time.monotonic()
    run_job(import_gguf(ImportConfig(source, out_dir, dtype=dtype)))
    return time.monotonic() - started


def _load_libraries() -> None:
    # transformers loads its classes lazily; load them first so the import timings measure the
    # import, not the first use of the library.
    import transformers
    from transformers.integrations.gguf import convert_gguf_tokenizer  # noqa: F401

    transformers.AutoConfig, transformers.LlamaForCausalLM, transformers.PreTrainedTokenizerFast


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=256)
    args = parser.parse_args()
    source = bundled_model_path()
    _load_libraries()
    ids = tokenize(source, TEXT, args.tokens)
    reference = llama_cpp_logits(source, ids)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for dtype in ("float16", "float32"):
            folder = Path(tmp) / dtype
            seconds = timed_import(source, folder, dtype)
            for compute in sorted({dtype, "float32"}):
                stats = compare(reference, transformers_logits(folder, ids, compute))
                rows.append((dtype, compute, seconds, stats))
    print(f"{source.name}, {len(ids)} tokens, reference: llama.cpp on the GGUF")
    header = f"{'top-1':>7} {'max |dlogit|':>13} {'mean |dlogit|':>14}"
    print(f"{'weights':<9} {'compute':<9} {'import s':>8} {header}")
    for dtype, compute, seconds, s in rows:
        stats = f"{s['top1']:7.3f} {s['max_abs']:13.3f} {s['mean_abs']:14.4f}"
        print(f"{dtype:<9} {compute:<9} {seconds:8.1f} {stats}")


if __name__ == "__main__":
    main()
