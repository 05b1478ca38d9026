"""Choosing the smallest shape (size) that meets a request, and saying why."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from .errors import NoMatchingShape


@dataclass(frozen=True)
class Shape:
    """A machine size a provider offers. Flexible shapes take any CPU/memory in their ranges."""

    name: str
    cpu: float
    memory_gb: float
    gpus: int = 0
    price: float | None = None
    flexible: bool = False
    max_cpu: float = 0
    max_memory_gb: float = 0
    memory_per_cpu_gb: tuple[float, float] = (0, 0)  # (min, max) GB per CPU of a flexible shape
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Choice:
    """The chosen shape, the CPU/memory it is configured with, and why it was chosen."""

    shape: Shape
    cpu: float
    memory_gb: float
    reasons: list[str]


def _fit(shape: Shape, cpu: int, memory_gb: float, gpus: int) -> tuple[float, float] | str:
    """The (cpu, memory) the shape would give, or why it does not fit."""
    if shape.gpus < gpus:
        return f"{shape.gpus} GPUs < {gpus}"
    if not shape.flexible:
        if shape.cpu < cpu:
            return f"{shape.cpu:g} CPUs < {cpu}"
        if shape.memory_gb < memory_gb:
            return f"{shape.memory_gb:g} GB < {memory_gb:g} GB"
        return shape.cpu, shape.memory_gb
    # A flexible shape: at least the request, within the shape's limits and memory/CPU ratio.
    low, high = shape.memory_per_cpu_gb
    use_cpu = max(float(cpu), shape.cpu)
    if high:
        use_cpu = max(use_cpu, memory_gb / high)
    use_cpu = float(int(use_cpu) + (use_cpu % 1 > 0))
    use_memory = max(memory_gb, use_cpu * low)
    if shape.max_cpu and use_cpu > shape.max_cpu:
        return f"needs {use_cpu:g} CPUs, at most {shape.max_cpu:g}"
    if shape.max_memory_gb and use_memory > shape.max_memory_gb:
        return f"needs {use_memory:g} GB, at most {shape.max_memory_gb:g} GB"
    return use_cpu, use_memory


def choose_shape(shapes: Iterable[Shape], cpu: int, memory_gb: float, gpus: int = 0) -> Choice:
    """The smallest shape meeting the request: fewest GPUs, then CPUs, then memory, then price."""
    fits: list[tuple[tuple[float, ...], Shape, float, float]] = []
    rejected: list[str] = []
    for shape in shapes:
        result = _fit(shape, cpu, memory_gb, gpus)
        if isinstance(result, str):
            rejected.append(f"{shape.name}: {result}")
            continue
        use_cpu, use_memory = result
        key = (shape.gpus, use_cpu, use_memory, shape.price or 0.0, shape.flexible)
        fits.append((key, shape, use_cpu, use_memory))
    if not fits:
        detail = "; ".join(rejected) or "the provider offers no shapes"
        raise NoMatchingShape(
            f"no shape has {cpu} CPUs, {memory_gb:g} GB and {gpus} GPUs ({detail})"
        )
    fits.sort(key=lambda item: (item[0], item[1].name))
    _, shape, use_cpu, use_memory = fits[0]
    reasons = [
        f"{shape.name} is the smallest of {len(fits)} shapes that fit"
        f" ({shape.gpus} GPUs, {use_cpu:g} CPUs, {use_memory:g} GB"
        + (", flexible" if shape.flexible else "")
        + ")",
        *(f"not {line}" for line in rejected),
    ]
    return Choice(shape, use_cpu, use_memory, reasons)
