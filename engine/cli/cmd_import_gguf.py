"""`bitsmith import-gguf FILE OUTDIR`: dequantize a GGUF into a Hugging Face model folder."""

from __future__ import annotations

import argparse

from ..api import ImportConfig, run_job
from .progress import ProgressPrinter


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "import-gguf",
        help="convert a GGUF file to a Hugging Face folder (safetensors, tokenizer, config)",
        description="Dequantize a GGUF model into a folder that transformers loads directly.",
    )
    parser.add_argument("file", metavar="FILE", help="the .gguf file to import ('bundled' for the bundled model)")
    parser.add_argument("outdir", metavar="OUTDIR", help="the folder to create")
    parser.add_argument("--dtype", choices=("float16", "float32"), default="float16",
                        help="precision of the written weights (default: float16)")
    parser.add_argument("--overwrite", action="store_true", help="replace OUTDIR if it exists")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    from ..api import import_gguf  # the job itself pulls in torch and transformers when it starts

    from .cmd_info import resolve_model_arg

    cfg = ImportConfig(resolve_model_arg(args.file), args.outdir, dtype=args.dtype, overwrite=args.overwrite)
    result = run_job(import_gguf(cfg), on_event=ProgressPrinter())
    print(result.out_dir)
    return 0
