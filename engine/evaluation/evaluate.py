"""The evaluation job: stream non-overlapping windows of held-out text through a model (and its
source, when given) and report perplexity, KL divergence, top-1 agreement and their uncertainty.

The text is tokenized once, whole, by the evaluated model's own tokenizer (llama.cpp's for a GGUF);
the source must tokenize identically, checked before any window runs. Window w covers tokens
[w*ctx, (w+1)*ctx); the tail shorter than a window is left out.
"""

from __future__ import annotations

import contextlib
import math
import time

from ..calibration.text_file import read_text_file
from ..cancel import NEVER, CancelToken
from ..catalog import inspect
from ..device import resolve_device
from ..errors import InvalidInput
from ..events import Done, EtaClock, Job, Log, Progress
from ..reportcard import peak_memory_bytes, tool_versions, update_report_card
from ..threads import torch_threads
from .metrics import RunningMean, window_figures
from .provider import open_provider
from .result import EvalResult
from ..config import EvalSettings
from .tokenizer_check import check_same_tokenizer


def evaluate(settings: EvalSettings, cancel: CancelToken = NEVER) -> Job:
    """Yields Log and Progress events, then Done(EvalResult)."""
    started = time.monotonic()
    text = read_text_file(settings.text)  # a bad text fails before any model loads
    info = inspect(settings.model)
    if info.context_length and settings.ctx > info.context_length:
        raise InvalidInput(f"{settings.model}: a window of {settings.ctx} tokens exceeds its context of "
                           f"{info.context_length}", suggestion="choose a smaller window")
    device = resolve_device(settings.device).torch_device
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch_threads(settings.threads))
        yield Log(f"loading {settings.model}")
        model = open_provider(settings.model, settings.ctx, device, settings.threads, info)
        stack.callback(model.close)
        source = None
        if settings.source is not None:
            cancel.check()
            yield Log(f"loading the source {settings.source}")
            source = open_provider(settings.source, settings.ctx, device, settings.threads)
            stack.callback(source.close)
        cancel.check()
        if source is not None:
            check_same_tokenizer(model, source, text.text)
        yield Progress(0, 1, "tokenizing", settings.text.name)
        ids = model.tokenize(text.text)
        yield Progress(1, 1, "tokenizing", f"{len(ids)} tokens")
        available = len(ids) // settings.ctx
        if available == 0:
            raise InvalidInput(f"{settings.text}: holds {len(ids)} tokens, fewer than one window of {settings.ctx}",
                               suggestion="use a longer text or a smaller window")
        n = available if settings.windows is None else min(settings.windows, available)
        if settings.windows is not None and settings.windows > available:
            yield Log(f"{settings.text.name} holds only {available} windows of {settings.ctx} tokens", level="warning")
        stats = yield from _run_windows(model, source, ids, n, settings.ctx, cancel)
    result = _result(settings, text, info, model, source, ids, n, available, stats, started)
    if settings.save:
        update_report_card(settings.model, {"evaluation": {**result.to_card(), "tool_versions": tool_versions()}})
        yield Log(f"saved the figures to the report card of {settings.model.name}")
    yield Done(result)


def _run_windows(model, source, ids, n: int, ctx: int, cancel: CancelToken):
    nll, kl, agree = RunningMean(), RunningMean(), RunningMean()
    clock = EtaClock(n, "evaluating")
    loop_started = time.monotonic()
    for w in range(n):
        cancel.check()
        window = ids[w * ctx:(w + 1) * ctx]
        source_logits = source.logits(window) if source is not None else None
        cancel.check()
        w_nll, w_kl, w_agree = window_figures(model.logits(window), window, source_logits)
        nll.add(w_nll)
        if w_kl is not None:
            kl.add(w_kl)
            agree.add(w_agree)
        yield clock.progress(w + 1, f"perplexity {math.exp(nll.mean):.3f}")
    return nll, kl, agree, time.monotonic() - loop_started


def _result(settings, text, info, model, source, ids, n, available, stats, started) -> EvalResult:
    nll, kl, agree, loop_seconds = stats
    perplexity = math.exp(nll.mean)
    return EvalResult(
        model=str(settings.model), backend=model.backend, text=str(settings.text), text_sha256=text.sha256,
        ctx=settings.ctx, windows=n, windows_available=available, tokens_in_text=len(ids),
        tokens_evaluated=nll.count, perplexity=perplexity,
        perplexity_stderr=perplexity * nll.stderr if nll.stderr is not None else None,
        nll_mean=nll.mean, nll_stderr=nll.stderr, seconds=time.monotonic() - started,
        tokens_per_second=n * settings.ctx / loop_seconds if loop_seconds > 0 else math.inf,
        source=str(settings.source) if source is not None else None,
        source_backend=source.backend if source is not None else None,
        kl_divergence=kl.mean if source is not None else None,
        kl_divergence_stderr=kl.stderr if source is not None else None,
        top1_agreement=agree.mean if source is not None else None,
        top1_agreement_stderr=agree.stderr if source is not None else None,
        bits_per_weight=info.bits_per_weight, size_bytes=info.size_bytes, peak_memory_bytes=peak_memory_bytes(),
    )
