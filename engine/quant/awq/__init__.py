"""AWQ: per-channel scales, searched on a grid against each group's calibration output
(`search.py`), folded into the layer that feeds the group, then the weights rounded (`layer.py`).
Run block by block by the weight-only job (quant/weight_only); layout in formats/awq_layout.py."""
