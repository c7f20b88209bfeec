"""What one answer cost: latency and speed (its memory is sampled by engine.telemetry.PeakMemory)."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass



@dataclass(frozen=True)
class AnswerStats:
    prompt_tokens: int
    completion_tokens: int
    time_to_first_token_s: float
    prompt_tokens_per_s: float
    generation_tokens_per_s: float
    total_s: float
    peak_rss_bytes: int
    peak_gpu_bytes: int | None = None

    def to_dict(self) -> dict:
        return asdict(self)


class AnswerClock:
    """Marks the request, the first piece of text and the end, and turns them into rates."""

    def __init__(self) -> None:
        self.t0 = time.perf_counter()
        self.t_first: float | None = None

    def first_piece(self) -> None:
        if self.t_first is None:
            self.t_first = time.perf_counter()

    def finish(self, prompt_tokens: int, completion_tokens: int, peak_rss: int, peak_gpu: int | None) -> AnswerStats:
        t_end = time.perf_counter()
        t_first = self.t_first if self.t_first is not None else t_end
        ttft = t_first - self.t0
        decode_s = t_end - t_first
        # The first token comes out of the prompt pass; the rest are the decode phase.
        gen_rate = (completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else 0.0
        return AnswerStats(
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            time_to_first_token_s=ttft,
            prompt_tokens_per_s=prompt_tokens / ttft if ttft > 0 else 0.0,
            generation_tokens_per_s=gen_rate,
            total_s=t_end - self.t0,
            peak_rss_bytes=peak_rss,
            peak_gpu_bytes=peak_gpu,
        )
