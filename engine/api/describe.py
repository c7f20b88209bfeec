"""What the facade tells about models beyond the catalog entry: lineage (variants of a source),
the lines a detail view shows, report cards, the held-out text, the machine's measured speed and
where a conversion will write. Thin re-exports: each idea lives in one engine module."""

from __future__ import annotations

from pathlib import Path

from ..catalog.describe import detail_lines, report_card_lines
from ..catalog.variants import VariantPoint, family, root_of, sources_with_variants, variant_label
from ..config import Method, QuantizeConfig
from ..evaluation.answer_kld import TokenDivergence, answer_divergence
from ..evaluation.heldout import heldout_text, heldout_text_path
from ..evaluation.token_stats import stats_lines as distribution_lines
from ..evaluation.verdict import Variant, compare as compare_variants, verdict
from ..reportcard import read_report_card, update_report_card


def variants(root, models) -> list[VariantPoint]:
    """A source and every model made from it (report-card lineage), as chart points."""
    return family(root, models)


def machine_gflops() -> float:
    """The float32 matmul speed of this machine as the plan measures it (GFLOP/s)."""
    from ..plan import machine_gflops as measure

    return measure()


def output_path(cfg: QuantizeConfig) -> Path:
    """Where `convert(cfg)` will write: a GGUF output's file name is derived when `out` is a folder."""
    if cfg.method is Method.GGUF:
        from ..quant.gguf.job import output_path as gguf_output

        return gguf_output(cfg)
    return Path(cfg.out)


__all__ = ["detail_lines", "report_card_lines", "VariantPoint", "family", "root_of", "sources_with_variants",
           "variant_label", "variants", "heldout_text", "heldout_text_path", "read_report_card",
           "update_report_card", "machine_gflops", "output_path", "distribution_lines", "Variant",
           "compare_variants", "verdict", "TokenDivergence", "answer_divergence"]
