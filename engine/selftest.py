"""`--self-test`: prove that this installation can do its two core jobs, headless and offline.

Two chains of small steps, each printing one line (ok / failed with the reason / skipped, and its
time): the bundled model is found, loaded through llama.cpp and generates a few tokens; a tiny
random Llama is built, converted to GGUF in a child process (as the window converts) and loaded
back through llama.cpp. A failed step skips the rest of its chain only, so one run reports both
halves. Everything is written under a temporary BITSMITH_HOME that is removed afterwards, so the
user's settings, history and caches are untouched.
"""

from __future__ import annotations

import os
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, TextIO

#: Enough tokens to show that decoding runs, few enough to take well under a second on a laptop.
NEW_TOKENS = 8
#: A K-quant routes the conversion through both Bitsmith's writer and llama.cpp's quantizer.
TINY_GGUF_TYPE = "Q4_K_M"


@dataclass
class StepResult:
    name: str
    status: str  # "ok", "failed", "skipped"
    seconds: float
    detail: str


Step = tuple[str, Callable[[dict], str]]  # name, function(shared state) -> one-line detail


def _locate(state: dict) -> str:
    from .api import bundled_model

    path = Path(state["model"]) if state.get("model") else bundled_model()
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    state["gguf"] = path
    return f"{path} ({path.stat().st_size / 2**20:.0f} MiB)"


def _load(key: str) -> Callable[[dict], str]:
    def load(state: dict) -> str:
        from .api import load_model

        # A small context keeps the KV cache tiny; the CPU is what every machine has.
        backend = load_model(state[key], "cpu", n_ctx=256)
        state[f"{key}_backend"] = backend
        return f"{backend.kind}, context {backend.context_length}"

    return load


def _generate(key: str) -> Callable[[dict], str]:
    def generate(state: dict) -> str:
        from .cancel import NEVER
        from .config import SamplingSettings
        from .runtime import GenerationCounts

        backend = state.pop(f"{key}_backend")
        ids = backend.tokenize(backend.render([{"role": "user", "content": "What is the capital of France?"}]))
        counts = GenerationCounts()
        # Greedy: with the tiny model's seeded weights the answer is the same on every run.
        settings = SamplingSettings(temperature=0.0, max_new_tokens=NEW_TOKENS, seed=0)
        text = "".join(backend.stream(ids, settings, NEVER, counts))
        del backend  # frees llama.cpp's context before the next step
        if counts.completion_tokens < 1:
            raise RuntimeError(f"no tokens were generated (finish reason '{counts.finish_reason}')")
        return f"{counts.completion_tokens} tokens: {text.strip()[:40]!r}"

    return generate


def _build_tiny(state: dict) -> str:
    from .tiny_model import build_tiny_llama

    folder = build_tiny_llama(state["work"] / "tiny-llama")
    state["tiny"] = folder
    size = sum(f.stat().st_size for f in folder.iterdir())
    return f"{folder.name} ({size / 2**10:.0f} KiB)"


def _convert(state: dict) -> str:
    from .api import convert
    from .config import QuantizeConfig
    from .events import run_job

    out = state["work"] / f"tiny-llama-{TINY_GGUF_TYPE}.gguf"
    cfg = QuantizeConfig(source=state["tiny"], out=out, method="gguf", gguf_type=TINY_GGUF_TYPE,
                         imatrix=False, device="cpu")
    # In a spawned child process, as the window runs conversions: in a bundle this proves that
    # the executable can re-enter itself as a worker.
    result = run_job(convert(cfg, in_process=True))
    state["tiny_gguf"] = result.out
    return f"{result.out.name} ({result.size / 2**10:.0f} KiB)"


def chains() -> list[list[Step]]:
    return [
        [("locate the bundled model", _locate), ("load it through llama.cpp", _load("gguf")),
         (f"generate {NEW_TOKENS} tokens", _generate("gguf"))],
        [("build a tiny random Llama", _build_tiny), (f"convert it to GGUF {TINY_GGUF_TYPE} in a child", _convert),
         ("load the GGUF through llama.cpp", _load("tiny_gguf")), ("generate with it", _generate("tiny_gguf"))],
    ]


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text


def run_steps(steps: list[list[Step]], state: dict, out: TextIO) -> list[StepResult]:
    results = []
    for chain in steps:
        broken = False
        for name, fn in chain:
            t0 = time.monotonic()
            if broken:
                result = StepResult(name, "skipped", 0.0, "an earlier step failed")
            else:
                try:
                    result = StepResult(name, "ok", 0.0, fn(state))
                except Exception as exc:  # a self-test reports every failure as one line
                    result = StepResult(name, "failed", 0.0, _one_line(exc))
                    broken = True
            result.seconds = time.monotonic() - t0
            results.append(result)
            result.detail = " ".join(result.detail.split())  # one line per step, whatever a step said
            out.write(f"self-test: {result.status:<7} {result.name:<40} {result.seconds:6.2f} s  {result.detail}\n")
            out.flush()
    return results


@contextmanager
def _scratch_home() -> Iterator[Path]:
    """A temporary BITSMITH_HOME (and no network) for the duration of the test."""
    # The environment is how engine.paths and huggingface_hub are told; it is restored afterwards.
    # Progress bars off: the report is one line per step.
    scratch = dict(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    saved = {k: os.environ.get(k) for k in ("BITSMITH_HOME", *scratch)}
    with tempfile.TemporaryDirectory(prefix="bitsmith-selftest-") as tmp:
        os.environ.update(BITSMITH_HOME=str(Path(tmp) / "home"), **scratch)
        try:
            yield Path(tmp)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


def self_test(out: TextIO, model: Path | str | None = None) -> int:
    """Run every step; 0 only if all passed. `model` replaces the bundled GGUF (tests use it)."""
    t0 = time.monotonic()
    with _scratch_home() as work:
        results = run_steps(chains(), {"work": work, "model": model}, out)
    failed = [r for r in results if r.status == "failed"]
    total = time.monotonic() - t0
    if failed:
        out.write(f"self-test FAILED: {len(failed)} of {len(results)} steps failed "
                  f"(first: {failed[0].name}: {failed[0].detail}) in {total:.1f} s\n")
        return 1
    out.write(f"self-test passed: {len(results)} steps in {total:.1f} s\n")
    return 0
