"""Helpers the benchmark scripts share."""

from __future__ import annotations


def peak_resident_gb() -> float:
    """This process's peak resident memory in GB: the kernel's high-water mark of its own address space
    (`VmHWM`). Not `ru_maxrss`: Linux carries the parent's mark over `fork` + `exec`, so a child started by a
    big process would report the parent's peak."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024**2
    raise RuntimeError("/proc/self/status has no VmHWM line (Linux only).")


def record_table(text: str, results=None) -> None:
    """Print a benchmark's table and, when `results` (a path) is given, append it to that file after a blank line
    (benchmarks/RESULTS.md collects the tables, oldest first)."""
    print(text)
    if results:
        with open(results, "a", encoding="utf-8") as handle:
            handle.write("\n" + text)
