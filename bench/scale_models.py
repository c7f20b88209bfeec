"""Random-weight models of real widths for the scale benchmark, written straight to bf16 safetensors
shards one decoder block at a time, so an 8B-shape folder (16 GB) is written with about one block in
memory (never the model built in transformers and saved whole).

    python bench/scale_models.py 1b 4 /tmp/scale/1b-4      # shape, layers, folder

Shapes (`SHAPES`): "1b" (Llama-3.2-1B widths), "8b" (Llama-3.1-8B widths), "moe" (Qwen3-MoE-shaped,
30B-A3B widths narrowed to fit: 32 experts of 768, 4 per token). The tokenizer is the tiny model's
(engine/tiny_model.py): its ids are a subset of any vocabulary, the embedding rows past it are
padding, and the cost of every stage depends on widths and token counts, not on which ids they are.
Weights are N(0, 0.02), norms 1: activations stay finite through 32 blocks.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from pathlib import Path

SHAPES = {
    "1b": dict(model_type="llama", hidden_size=2048, intermediate_size=8192, num_attention_heads=32,
               num_key_value_heads=8, head_dim=64, vocab_size=49152, tie_word_embeddings=False),
    "8b": dict(model_type="llama", hidden_size=4096, intermediate_size=14336, num_attention_heads=32,
               num_key_value_heads=8, head_dim=128, vocab_size=128256, tie_word_embeddings=False),
    "moe": dict(model_type="qwen3_moe", hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
                num_experts=32, num_experts_per_tok=4, norm_topk_prob=True, decoder_sparse_step=1,
                mlp_only_layers=[], num_attention_heads=32, num_key_value_heads=4, head_dim=128,
                vocab_size=49152, tie_word_embeddings=False),
}
SHARD_BYTES = 2 * 1024**3


def block_tensors(shape: dict, i: int) -> dict[str, tuple[int, ...]]:
    """Checkpoint names and shapes of decoder block `i` (the layout transformers saves)."""
    h, heads, kv, hd = shape["hidden_size"], shape["num_attention_heads"], shape["num_key_value_heads"], shape["head_dim"]
    p = f"model.layers.{i}."
    out = {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
           p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv * hd, h),
           p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd)}
    if shape["model_type"] == "qwen3_moe":
        out[p + "self_attn.q_norm.weight"] = (hd,)
        out[p + "self_attn.k_norm.weight"] = (hd,)
        inner, n = shape["moe_intermediate_size"], shape["num_experts"]
        out[p + "mlp.gate.weight"] = (n, h)
        for e in range(n):
            q = f"{p}mlp.experts.{e}."
            out.update({q + "gate_proj.weight": (inner, h), q + "up_proj.weight": (inner, h),
                        q + "down_proj.weight": (h, inner)})
    else:
        inner = shape["intermediate_size"]
        out.update({p + "mlp.gate_proj.weight": (inner, h), p + "mlp.up_proj.weight": (inner, h),
                    p + "mlp.down_proj.weight": (h, inner)})
    return out


def write_model(shape_name: str, layers: int, folder: Path, seed: int = 0) -> Path:
    """Write config, tokenizer and bf16 shards; return the folder. Skips a folder already complete."""
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    if (folder / "model.safetensors.index.json").is_file():
        return folder
    shape = dict(SHAPES[shape_name])
    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer_into(folder)
    config = _config(dict(shape), layers)
    config.save_pretrained(folder)
    gen = torch.Generator().manual_seed(seed)

    def tensor(name: str, dims: tuple[int, ...]) -> torch.Tensor:
        if len(dims) == 1:  # norms
            return torch.ones(dims, dtype=torch.bfloat16)
        return (torch.randn(dims, generator=gen) * 0.02).to(torch.bfloat16)

    h, vocab = shape["hidden_size"], shape["vocab_size"]
    groups = [{"model.embed_tokens.weight": (vocab, h)}] + [block_tensors(shape, i) for i in range(layers)]
    groups.append({"model.norm.weight": (h,), "lm_head.weight": (vocab, h)})
    weight_map, shard, shard_bytes, n_shard = {}, {}, 0, 0
    names: list[list[str]] = []

    def flush():
        nonlocal shard, shard_bytes, n_shard
        if shard:
            n_shard += 1
            save_file(shard, str(folder / f"part-{n_shard:05d}.safetensors"), metadata={"format": "pt"})
            names.append(list(shard))
            shard, shard_bytes = {}, 0

    for group in groups:
        for name, dims in group.items():
            shard[name] = tensor(name, dims)
            shard_bytes += shard[name].numel() * 2
        if shard_bytes >= SHARD_BYTES:
            flush()
    flush()
    total = len(names)
    for k, keys in enumerate(names, 1):  # the names transformers gives shards: model-0000k-of-0000n
        final = f"model-{k:05d}-of-{total:05d}.safetensors"
        (folder / f"part-{k:05d}.safetensors").rename(folder / final)
        weight_map.update({n: final for n in keys})
    index = {"metadata": {"total_size": sum(_bytes(d) for g in groups for d in g.values())}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=1))
    return folder


def _bytes(dims) -> int:
    n = 2
    for d in dims:
        n *= d
    return n


def _config(shape: dict, layers: int):
    from transformers import AutoConfig

    kind = shape.pop("model_type")
    return AutoConfig.for_model(kind, num_hidden_layers=layers, max_position_embeddings=4096, rms_norm_eps=1e-5,
                                rope_theta=500000.0, torch_dtype="bfloat16", bos_token_id=1, eos_token_id=2,
                                pad_token_id=0, **shape)


def _tokenizer_into(folder: Path) -> None:
    """The tiny model's byte-level BPE tokenizer (built offline in a second), without its weights."""
    from bitsmith.engine.tiny_model import build_tiny_llama

    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_llama(Path(tmp))
        for f in Path(tmp).iterdir():
            if f.name.startswith(("tokenizer", "special_tokens")) or f.name == "vocab.json" or f.name == "merges.txt":
                shutil.copy(f, folder / f.name)


if __name__ == "__main__":
    print(write_model(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3])))
