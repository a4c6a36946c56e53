"""What a bench prints about the machine it ran on."""

from __future__ import annotations

import os


def load_average() -> float:
    """The 1-minute load average now."""
    return os.getloadavg()[0]


def describe(load_at_start: float) -> str:
    """CPUs and the load average at start and now: whether other jobs shared the cores."""
    return (
        f"{os.cpu_count()} CPUs; 1-min load average {load_at_start:.2f} at start, "
        f"{load_average():.2f} at end"
    )


def print_table(
    command: str, load_at_start: float, details: str, rows: list[tuple[str, str, str]]
) -> None:
    """One bench's result: the command and the machine's load, then its table."""
    print(f"\n`{command}` ({describe(load_at_start)}; {details})\n")
    print("| what | result | goal |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
