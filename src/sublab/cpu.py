"""What this CPU offers for matrix products, and whether bfloat16 products are fast on it.

Two views are read: the kernel's (``flags`` in ``/proc/cpuinfo``) and PyTorch's
(``torch.backends.cpu.get_cpu_capability()`` and whether oneDNN, which runs bf16 products on
CPUs, is built in). Where ``/proc/cpuinfo`` does not exist, PyTorch's own cpuinfo view stands
in for the flags.

The rule of :func:`bf16_matmul_fast` follows measurements of ``[1024, 784] @ [784, 1024]`` and
batched ``[1024, 256] @ [256, 256]`` products (the MNIST MLP's shapes), 2 threads:

- AMX (``amx_bf16`` + ``amx_tile``, Intel Xeon 4th generation on): tile units, bf16 2.16 vs
  float32 0.158 TFLOP/s on a Xeon;
- ``avx512_bf16`` without AMX (AMD Zen 4 and later, Intel Cooper Lake): dot-product
  instructions, bf16 0.35-0.40 vs float32 0.14-0.16 TFLOP/s on a 2-core AMD EPYC;
- neither: PyTorch converts bf16 to float32 around a float32 kernel, slower than float32.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CPUINFO = Path("/proc/cpuinfo")
# Flags worth naming in a benchmark's or a run's record (in this order).
NOTABLE = (
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "avx512_fp16",
    "amx_tile",
    "amx_bf16",
    "amx_int8",
    "amx_fp16",
)


@dataclass(frozen=True)
class CpuFeatures:
    """The CPU model, its instruction-set flags, and what PyTorch makes of it."""

    model: str
    flags: frozenset[str]
    torch_capability: str
    onednn: bool

    @property
    def amx(self) -> bool:
        """bf16 tile matrix units (``amx_bf16`` and ``amx_tile``)."""
        return {"amx_bf16", "amx_tile"} <= self.flags

    @property
    def avx512_bf16(self) -> bool:
        """AVX-512 bf16 dot-product instructions."""
        return "avx512_bf16" in self.flags

    def summary(self) -> str:
        """One line: model, notable flags found, AMX or not, PyTorch's capability."""
        found = [f for f in NOTABLE if f in self.flags]
        amx = "AMX" if self.amx else "no AMX"
        return (
            f"{self.model}; flags: {' '.join(found) or 'none of ' + ' '.join(NOTABLE)}; {amx}; "
            f"torch capability {self.torch_capability}, oneDNN {'yes' if self.onednn else 'no'}"
        )


def parse_cpuinfo(text: str) -> tuple[str, frozenset[str]]:
    """(model name, flags) of the first processor listed in ``/proc/cpuinfo`` text."""
    model, flags = "unknown CPU", frozenset[str]()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and model == "unknown CPU":
            model = value.strip()
        elif key in ("flags", "Features") and not flags:  # x86 / arm64 spelling
            flags = frozenset(value.split())
    return model, flags


def _torch_view() -> tuple[str, bool, dict[str, object]]:
    """(capability string, oneDNN built in, PyTorch's cpuinfo dictionary or {})."""
    import torch

    capability = str(torch.backends.cpu.get_cpu_capability())
    onednn = bool(torch.backends.mkldnn.is_available())
    get = getattr(getattr(torch._C, "_cpu", None), "_get_cpu_capability", None)
    caps = get() if callable(get) else {}
    return capability, onednn, dict(caps) if isinstance(caps, dict) else {}


def cpu_features(cpuinfo_text: str | None = None) -> CpuFeatures:
    """This machine's features; ``cpuinfo_text`` replaces ``/proc/cpuinfo`` (tests, other hosts).

    Without ``/proc/cpuinfo`` (macOS, Windows) the flags come from PyTorch's cpuinfo.
    """
    capability, onednn, caps = _torch_view()
    if cpuinfo_text is None and CPUINFO.is_file():
        cpuinfo_text = CPUINFO.read_text(errors="replace")
    if cpuinfo_text is not None:
        model, flags = parse_cpuinfo(cpuinfo_text)
    else:
        model = str(caps.get("cpu_name", "unknown CPU"))
        flags = frozenset(k for k, v in caps.items() if v is True)
    return CpuFeatures(model, flags, capability, onednn)


def bf16_matmul_fast(features: CpuFeatures) -> tuple[bool, str]:
    """(bf16 products beat float32 here, why): AMX or avx512_bf16, with oneDNN in PyTorch."""
    if not features.onednn:
        return False, "PyTorch is built without oneDNN, which runs bf16 products on CPUs"
    if features.amx:
        return True, "AMX (amx_bf16): bf16 tile products, about 14x float32 on a Xeon"
    if features.avx512_bf16:
        return True, (
            "avx512_bf16 without AMX: bf16 products about 2.4x float32 at the MNIST shapes "
            "(2-core AMD EPYC)"
        )
    return False, "neither AMX nor avx512_bf16: bf16 products are emulated, slower than float32"


def fast_bf16(device: Any) -> bool:
    """Whether bf16 products are fast on ``device`` (a torch device): CUDA, or a CPU where
    :func:`bf16_matmul_fast` says so (dtype ``"fast"``)."""
    if device.type == "cuda":
        return True
    return _cpu_bf16_fast()


@functools.cache
def _cpu_bf16_fast() -> bool:
    return bf16_matmul_fast(cpu_features())[0]


def machine_line() -> str:
    """One line naming the machine a measurement comes from: CPU features, cores, GPU."""
    import os

    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"machine: {cpu_features().summary()}; {os.cpu_count()} cores; GPU: {gpu}"
