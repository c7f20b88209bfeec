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
from ..reportcard import tool_versions, update_report_card
from ..telemetry import process_peak_memory
from ..threads import torch_threads
from ..config import EvalSettings
from .metrics import ROW_CHUNK
from .provider import open_provider
from .reference import (build_reference, check_stream, cleanup_stale_references, kl_against, load_reference,
                        reference_key)
from .result import EvalResult
from .token_stats import distribution_stats
from .tokenizer_check import check_same_tokenizer, same_stream
from .verdict import verdict


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
        cancel.check()
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
        ref = None
        if settings.source is not None:
            ref = yield from _reference(settings, model, text, ids, n, device, cancel)
        stats = yield from _run_windows(model, ref, ids, n, settings.ctx, cancel)
    result = _result(settings, text, info, model, ref, ids, n, available, stats, started)
    if settings.save:
        update_report_card(settings.model, {"evaluation": {**result.to_card(), "tool_versions": tool_versions()}})
        yield Log(f"saved the figures to the report card of {settings.model.name}")
    yield Done(result)


def _reference(settings: EvalSettings, model, text, ids, n: int, device: str, cancel: CancelToken):
    """The source's distributions over this text: from the cache when this source already scored
    this text in windows of this length, else computed once (the source runs only then)."""
    key = reference_key(settings.source, text.sha256, settings.ctx, n)
    ref = load_reference(key)
    if ref is not None:
        yield Log(f"using the stored distributions of {settings.source.name} on this text")
        check_stream(ref, ids, model.name, model.vocab_size)
        return ref
    cancel.check()
    yield Log(f"loading the source {settings.source}")
    source = open_provider(settings.source, settings.ctx, device, settings.threads)
    try:
        check_same_tokenizer(model, source, text.text)
        span = n * settings.ctx
        same_stream(source.tokenize(text.text)[:span], ids[:span], model.name, source.name)
        ref = yield from build_reference(source, ids, settings.ctx, n, key, cancel)
    finally:
        source.close()
    cleanup_stale_references()
    return ref


def _run_windows(model, ref, ids, n: int, ctx: int, cancel: CancelToken):
    """Per scored token: the model's loss, and against the reference the source's loss, KL and
    whether the top tokens agree (arrays, so that percentiles can be taken)."""
    import torch

    nll, nll_src, kl, same, mass = [], [], [], [], []
    clock = EtaClock(n, "evaluating")
    loop_started = time.monotonic()
    for w in range(n):
        cancel.check()
        window = ids[w * ctx:(w + 1) * ctx]
        logits = model.logits(window)
        targets = torch.as_tensor(window[1:], dtype=torch.long)
        topk = ref.window(w) if ref is not None else None
        for lo in range(0, ctx - 1, ROW_CHUNK):  # slices keep large vocabularies to a few copies
            hi = min(ctx - 1, lo + ROW_CHUNK)
            logq = torch.log_softmax(logits[lo:hi].float(), dim=-1)
            nll.append(-logq.gather(1, targets[lo:hi, None])[:, 0].double())
            if topk is not None:
                ref_ids, ref_logp, ref_target = (t[lo:hi] for t in topk)
                nll_src.append(-ref_target.double())
                kl.append(kl_against(ref_ids, ref_logp, logq))
                same.append((logits[lo:hi].argmax(-1) == ref_ids[:, 0]).double())
                mass.append(ref_logp.double().exp().sum(-1))
        running = torch.cat(nll).mean().item()
        yield clock.progress(w + 1, f"perplexity {math.exp(running):.3f}")
    cat = (lambda parts: torch.cat(parts).numpy() if parts else None)
    return cat(nll), cat(nll_src), cat(kl), cat(same), cat(mass), time.monotonic() - loop_started


def _result(settings, text, info, model, ref, ids, n, available, stats, started) -> EvalResult:
    nll, nll_src, kl, same, mass, loop_seconds = stats
    nll_mean, nll_se = _mean_se(nll)
    perplexity = math.exp(nll_mean)
    figures = distribution_stats(nll, nll_src, kl, same) if ref is not None else None
    if figures is not None:
        # KL is a lower bound over the stored top-K tokens; how much probability they hold says how tight.
        figures.update(reference_top_k=int(ref.topk_ids.shape[1]), reference_mass=float(mass.mean()))
    kl_mean, kl_se = _mean_se(kl) if ref is not None else (None, None)
    same_mean, same_se = _mean_se(same) if ref is not None else (None, None)
    return EvalResult(
        model=str(settings.model), backend=model.backend, text=str(settings.text), text_sha256=text.sha256,
        ctx=settings.ctx, windows=n, windows_available=available, tokens_in_text=len(ids),
        tokens_evaluated=int(nll.size), perplexity=perplexity,
        perplexity_stderr=perplexity * nll_se if nll_se is not None else None,
        nll_mean=nll_mean, nll_stderr=nll_se, seconds=time.monotonic() - started,
        tokens_per_second=n * settings.ctx / loop_seconds if loop_seconds > 0 else math.inf,
        source=str(settings.source) if ref is not None else None,
        source_backend=ref.backend if ref is not None else None,
        kl_divergence=kl_mean, kl_divergence_stderr=kl_se,
        top1_agreement=same_mean, top1_agreement_stderr=same_se,
        bits_per_weight=info.bits_per_weight, size_bytes=info.size_bytes, peak_memory_bytes=process_peak_memory(),
        distribution=figures, verdict=verdict(figures["ppl_ratio"], figures["ppl_ratio_stderr"]) if figures else None,
    )


def _mean_se(values) -> tuple[float, float | None]:
    """Mean and standard error of the mean (tokens taken as independent, as llama.cpp does: tokens of
    one window are correlated, so this is a lower bound on the true uncertainty)."""
    n = int(values.size)
    mean = float(values.mean())
    return mean, (float(values.std(ddof=1) / math.sqrt(n)) if n > 1 else None)
