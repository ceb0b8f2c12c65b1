"""Benchmark results and the one table they are printed in."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rich.console import Console
from rich.table import Table


@dataclass(frozen=True, slots=True)
class Result:
    name: str
    value: float
    unit: str
    limit_name: str
    limit_value: float
    goal: str
    higher_is_better: bool = True

    @property
    def ratio(self) -> float:
        if self.limit_value == 0:
            return 0.0
        return self.value / self.limit_value

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["ratio"] = round(self.ratio, 4)
        return data


def _num(x: float) -> str:
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if abs(x) >= 10:
        return f"{x:.1f}"
    return f"{x:.3g}"


def print_table(results: list[Result]) -> None:
    table = Table(title="mhchat benchmarks (ratios to limits measured in the same run)")
    for column in ("benchmark", "mhchat", "limit", "ratio", "goal"):
        table.add_column(column)
    for r in results:
        table.add_row(
            r.name,
            f"{_num(r.value)} {r.unit}".strip(),
            f"{r.limit_name}: {_num(r.limit_value)} {r.unit}".strip(),
            _num(r.ratio),
            r.goal,
        )
    Console(width=140).print(table)
