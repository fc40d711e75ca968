"""Process-level settings for the heavy entry points (training, evaluation, benchmarks).

glibc returns every large freed block to the operating system, so the big tensor
temporaries of a training step are page-faulted in again on every step: on the 2-core
development machine that made the front-end and the CNN about 2x slower
(``bench/frontend.py``). Raising malloc's mmap and trim thresholds keeps the memory
mapped. The thresholds are read once, when the process starts, so the entry point
re-executes itself with them set (:func:`reexec_with_tuned_malloc`).
"""

from __future__ import annotations

import os
import sys

__all__ = ["TUNED_MALLOC_ENV", "malloc_is_tuned", "reexec_with_tuned_malloc", "default_device",
           "cpu_flags", "native_bf16", "machine_info"]

#: Environment that keeps large allocations mapped (glibc reads it at start-up).
TUNED_MALLOC_ENV = {
    "MALLOC_MMAP_THRESHOLD_": str(1 << 32),
    "MALLOC_TRIM_THRESHOLD_": str(1 << 32),
    "MALLOC_TOP_PAD_": str(1 << 30),
}


def malloc_is_tuned() -> bool:
    return all(os.environ.get(k) == v for k, v in TUNED_MALLOC_ENV.items())


def reexec_with_tuned_malloc(argv: list[str] | None = None) -> None:
    """Replace this process by the same command with :data:`TUNED_MALLOC_ENV` set.

    Does nothing when the settings are already there, on a non-glibc platform, or when
    ``SPECTNET_NO_MALLOC_TUNING`` is set (to measure without them).
    """
    if (malloc_is_tuned() or os.environ.get("SPECTNET_NO_MALLOC_TUNING")
            or not sys.platform.startswith("linux")):
        return
    argv = list(sys.argv if argv is None else argv)
    if not argv or not os.path.exists(argv[0]):
        return  # e.g. `python -c`: nothing to re-execute
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *argv], {**os.environ, **TUNED_MALLOC_ENV})


def default_device(device=None):
    """``device`` as a ``torch.device``, or CUDA when available, else the CPU: the one
    default of training, evaluation and prediction."""
    import torch
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


#: CPU features that change floating-point results or speed (vector width, native bf16).
_CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "asimd", "sve")
#: Any of these: the CPU computes bfloat16 natively (AVX512-BF16 dot products, AMX tiles).
_NATIVE_BF16 = ("avx512_bf16", "amx_bf16")


def _cpuinfo() -> tuple[str, frozenset[str]]:
    """``(model name, every flag)`` from ``/proc/cpuinfo`` (x86 ``flags``, ARM
    ``Features``); ``("", {})`` where there is no such file."""
    cpu, flags = "", set()
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "Model") and not cpu:
                cpu = value.strip()
            elif key in ("flags", "Features"):
                flags |= set(value.split())
    except OSError:
        pass
    return cpu, frozenset(flags)


def cpu_flags() -> frozenset[str]:
    """Every feature flag the CPU lists in ``/proc/cpuinfo`` (empty where it lists none)."""
    return _cpuinfo()[1]


def native_bf16() -> bool:
    """Whether the CPU computes bfloat16 natively (``avx512_bf16`` or ``amx_bf16``): where
    it does not, torch emulates bf16 matrix products, about ten times slower than float32
    (``bench/train.py``)."""
    flags = cpu_flags()
    return any(flag in flags for flag in _NATIVE_BF16)


def machine_info(device=None) -> dict:
    """What a result depends on besides the code and the data: the CPU model and the
    vector features it exposes, torch's build and threads, and the device. Recorded in
    every run summary: floating-point sums, and so trained weights, differ between CPUs
    with different vector units and between thread counts.

    >>> sorted(machine_info())
    ['cpu', 'cpu_flags', 'device', 'gpu', 'threads', 'torch']
    """
    import platform

    import torch
    model, flags = _cpuinfo()
    cpu = platform.processor() or platform.machine()
    if cpu in ("", platform.machine()) and model:
        cpu = model
    device = default_device(device)
    return {"cpu": cpu, "cpu_flags": [f for f in _CPU_FLAGS if f in flags],
            "torch": torch.__version__, "threads": torch.get_num_threads(),
            "device": device.type,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
