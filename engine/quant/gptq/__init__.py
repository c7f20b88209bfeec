"""GPTQ: each linear layer quantized column block by column block, the rounding error of each
column spread over the columns not yet quantized through the inverse Hessian of the layer's inputs
(`layer.py`); the Hessian accumulated from calibration activations (`hessian.py`). The job that runs
it block by block is the weight-only job (quant/weight_only); the packed layout is
formats/gptq_layout.py; the kernels (blocked and reference quantizers) are in bitsmith.kernels."""
