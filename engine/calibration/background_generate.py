"""`model.generate` on a worker thread, so the calibration job can keep reporting while one batch
runs (a batch of long answers can take minutes on a CPU) and stop it between two tokens.

The job generator yields the number of decoding steps done so far every `interval_s`, and returns
the generated ids. A cancel, or the job being closed, makes the stopping criterion end generation at
the next token; a cancel is then raised as `Cancelled` by the job's thread.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from typing import Generator

from ..cancel import CancelToken

PROGRESS_INTERVAL_S = 1.0


def generate_in_background(model, inputs: dict, seed: int, cancel: CancelToken, threads: int | None = None,
                           interval_s: float = PROGRESS_INTERVAL_S, **generate_kwargs) -> Generator[int, None, object]:
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    steps = [0]
    abandoned = threading.Event()

    class _StepAndStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            steps[0] += 1
            stop = cancel.cancelled or abandoned.is_set()
            return torch.full((input_ids.shape[0],), stop, dtype=torch.bool, device=input_ids.device)

    def work():
        if threads:
            torch.set_num_threads(threads)  # process-wide, but say it on this thread too
        # inference_mode is per thread; the seed makes this batch reproducible on its own.
        with torch.random.fork_rng(devices=[]), torch.inference_mode():
            torch.manual_seed(seed)
            return model.generate(**inputs, stopping_criteria=StoppingCriteriaList([_StepAndStop()]),
                                  **generate_kwargs)

    pool = ThreadPoolExecutor(1, thread_name_prefix="bitsmith-calibration")
    try:
        future = pool.submit(work)
        while True:
            try:
                out = future.result(timeout=interval_s)
                break
            except TimeoutError:
                yield steps[0]
    finally:
        abandoned.set()  # if the job was closed mid-batch, generation ends at the next token
        pool.shutdown(wait=True)
    cancel.check()
    return out
