# Replaces the contrib hook for bitsandbytes: the bundle is a CPU build, so only its CPU library is
# collected. Its CUDA, ROCm and XPU kernels (over 100 MB) could not load without those runtimes,
# which the bundle does not carry, and analysing them only produces "library not found" warnings.
from pathlib import Path

from PyInstaller.utils.hooks import collect_dynamic_libs

binaries = [(src, dest) for src, dest in collect_dynamic_libs("bitsandbytes")
            if Path(src).name.startswith("libbitsandbytes_cpu.")]
# As the contrib hook: bitsandbytes reads some of its own sources at run time.
module_collection_mode = "pyz+py"
