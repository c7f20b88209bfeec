"""What the facade tells about models beyond the catalog entry, as functions of its own: the chart
points of a family, the machine's measured speed, where a conversion will write, and two names the
facade gives engine functions. The names it re-exports (lineage, detail lines, report cards, the
held-out text, verdicts, answer divergence) are listed in api/__init__.py's table, which imports
each from its own engine module only when it is first used."""

from __future__ import annotations

from pathlib import Path


def variants(root, models) -> list:
    """A source and every model made from it (report-card lineage), as chart points (VariantPoint)."""
    from ..catalog.variants import family

    return family(root, models)


def machine_gflops() -> float:
    """The float32 matmul speed of this machine as the plan measures it (GFLOP/s)."""
    from ..plan import machine_gflops as measure

    return measure()


def output_path(cfg) -> Path:
    """Where `convert(cfg)` will write: a GGUF output's file name is derived when `out` is a folder."""
    from ..config import Method

    if cfg.method is Method.GGUF:
        from ..quant.gguf.job import output_path as gguf_output

        return gguf_output(cfg)
    return Path(cfg.out)


def distribution_lines(d: dict) -> list[tuple[str, str]]:
    """llama-perplexity's KL-divergence figures as (label, value) lines (evaluation.token_stats)."""
    from ..evaluation.token_stats import stats_lines

    return stats_lines(d)


def compare_variants(variants: list) -> list[str]:
    """Verdicts of several variants against the source and against each other (evaluation.verdict)."""
    from ..evaluation.verdict import compare

    return compare(variants)


__all__ = ["variants", "machine_gflops", "output_path", "distribution_lines", "compare_variants"]
