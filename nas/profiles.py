"""Hardware profiles (``hw_profiles/*.yaml``): versioned, validated, with provenance.

v1 knows one kind of profile: ``measured``, a host whose latency hwnas measures itself with
onnxruntime. Predicted device models (Jetson, Edge TPU, Zynq) come with their own kind.

>>> load_profile("cpu").latency.threads
1
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from nas._schema import check, from_mapping
from nas.errors import UserError

PROFILE_KINDS = ("measured",)


@dataclass(frozen=True)
class MeasuredLatency:
    runtime: str = "onnxruntime"
    threads: int = 1
    warmup: int = 10
    repeats: int = 50
    batch: int = 1

    def __post_init__(self) -> None:
        check(self.runtime == "onnxruntime", "latency.runtime", self.runtime, "onnxruntime")
        check(self.threads >= 1, "latency.threads", self.threads, "integers >= 1")
        check(self.repeats >= 3, "latency.repeats", self.repeats, "integers >= 3")
        check(self.warmup >= 0, "latency.warmup", self.warmup, "integers >= 0")
        check(self.batch == 1, "latency.batch", self.batch, "1")


@dataclass(frozen=True)
class MemorySpec:
    capacity_mb: float | None = None
    provenance: str = ""


@dataclass(frozen=True)
class HardwareProfile:
    name: str
    version: str
    kind: str
    description: str
    provenance: str
    latency: MeasuredLatency
    memory: MemorySpec = field(default_factory=MemorySpec)

    def __post_init__(self) -> None:
        check(self.kind in PROFILE_KINDS, "kind", self.kind, ", ".join(PROFILE_KINDS))
        check(bool(self.version), "version", self.version, "a non-empty version string")

    @property
    def tag(self) -> str:
        return f"{self.name}@{self.version}"


def bundled_profiles() -> dict[str, Path]:
    root = resources.files("hw_profiles")
    return {Path(p.name).stem: Path(str(p)) for p in root.iterdir() if p.name.endswith(".yaml")}


def load_profile(name_or_path: str | Path) -> HardwareProfile:
    """A bundled profile by name (``cpu``) or a profile YAML file by path."""
    path = Path(name_or_path)
    if not path.is_file():
        bundled = bundled_profiles()
        if str(name_or_path) not in bundled:
            raise UserError(f"hardware profile {str(name_or_path)!r} not found; give a YAML path or one of: "
                            f"{', '.join(sorted(bundled))}")
        path = bundled[str(name_or_path)]
    try:
        return from_mapping(HardwareProfile, yaml.safe_load(path.read_text()), "")
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
