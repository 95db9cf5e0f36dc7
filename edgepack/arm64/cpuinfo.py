"""A fake ARM /proc/cpuinfo per CPU model, and a per-CPU view of the sysroot that serves it.

QEMU user mode passes the host's x86 /proc/cpuinfo through; ONNX Runtime's cpuinfo crashes on it.
`qemu-aarch64 -L PREFIX` redirects the guest's file reads into PREFIX when the file exists there,
so each CPU model gets a folder `cpus/<model>/` of symlinks to the sysroot's top-level entries
plus its own `proc/cpuinfo` whose MIDR fields and Features match what `-cpu <model>` emulates.
"""
from __future__ import annotations

import os
from pathlib import Path

# model -> (part number, variant, revision, features): the MIDR of the real core
_BASE = "fp asimd evtstrm aes pmull sha1 sha2 crc32 cpuid"
_V82 = "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp"
MODELS = {
    "cortex-a53": (0xD03, 0x0, 4, _BASE),
    "cortex-a57": (0xD07, 0x1, 1, _BASE),
    "cortex-a72": (0xD08, 0x0, 3, _BASE),
    "cortex-a76": (0xD0B, 0x4, 1, _V82),
    "neoverse-n1": (0xD0C, 0x4, 1, _V82 + " ssbs"),
}
CORES = 4  # what the fake file lists; the guest runs single-threaded either way


def cpuinfo_text(model: str, cores: int = CORES) -> str:
    part, variant, rev, features = MODELS[model]
    block = (
        "processor\t: {n}\nBogoMIPS\t: 50.00\nFeatures\t: {f}\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
        "CPU variant\t: 0x{v:x}\nCPU part\t: 0x{p:03x}\nCPU revision\t: {r}\n\n"
    )
    return "".join(block.format(n=n, f=features, v=variant, p=part, r=rev) for n in range(cores))


def cpu_prefix(root: Path, sysroot: Path, model: str) -> Path:
    """`root/cpus/<model>`: the sysroot seen through symlinks, with this model's /proc/cpuinfo."""
    prefix = root / "cpus" / model
    (prefix / "proc").mkdir(parents=True, exist_ok=True)
    target, text = prefix / "proc" / "cpuinfo", cpuinfo_text(model)
    if not target.exists() or target.read_text() != text:  # atomic: a guest starting now reads the old or the new
        tmp = target.with_name(f"cpuinfo.{os.getpid()}")
        tmp.write_text(text)
        os.replace(tmp, target)
    for entry in sysroot.iterdir():
        link = prefix / entry.name
        if entry.name != "proc" and not link.is_symlink() and not link.exists():
            try:
                os.symlink(os.path.relpath(entry, prefix), link)
            except FileExistsError:  # another process made it
                pass
    return prefix
