"""The clean pipeline in a fresh Kedro session (a subprocess), with its memory measured.

Shared by bench/dedup.py and bench/scale.py: a temp copy of the project whose
``generated_instructions`` is the catalog entry the caller gives, its own MLflow store,
and a sampler that records the peak RSS of the run's process and of each process it
starts (Ray's raylet and workers on the ``ray`` engine, the signature pool locally).
The run logs with epoch timestamps, so the driver's memory during one stage (the
near-duplicate decision, which logs its start and end) can be read off the sampled
timeline.
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_SECONDS = 0.5
DECISION_START = "near-duplicate decision: "
DECISION_END = "near-duplicate decision done"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "stamped": {"format": "%(created).3f %(levelname)s %(name)s: %(message)s"}
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "stamped",
            "stream": "ext://sys.stderr",
        }
    },
    "loggers": {"kedro": {"level": "INFO"}, "belle_kedro": {"level": "INFO"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
}


def _project(workdir: Path, data_entry: dict[str, Any], checkout: Path) -> Path:
    """A Kedro project from ``checkout``'s settings and raw files (its code runs from
    ``checkout/src``), reading ``data_entry`` as its generated instructions."""
    project = workdir / "project"
    (project / "src").mkdir(parents=True)
    for name in ("pyproject.toml", ".telemetry"):
        if (checkout / name).exists():
            shutil.copy2(checkout / name, project / name)
    shutil.copytree(
        checkout / "conf",
        project / "conf",
        ignore=shutil.ignore_patterns("credentials.yml"),
    )
    shutil.copytree(checkout / "data" / "01_raw", project / "data" / "01_raw")
    (project / "conf" / "local" / "catalog_clean.yml").write_text(
        yaml.safe_dump({"generated_instructions": data_entry})
    )
    return project


def _sample_peaks(
    root: psutil.Process,
    peaks: dict[str, float],
    timeline: list[tuple[float, float]],
    done: threading.Event,
) -> None:
    """Peak RSS (GiB) of ``root`` and of each descendant, by a short process label;
    ``timeline`` gets ``(epoch seconds, driver RSS)`` at each sample."""
    labels: dict[int, str] = {root.pid: "driver"}  # a pid keeps its first label
    while not done.is_set():
        try:
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return
        total = 0.0
        for process in processes:
            try:
                rss = process.memory_info().rss / 2**30
                if process.pid not in labels:
                    labels[process.pid] = f"{process.pid} {process.name()}"
            except psutil.Error:
                continue
            total += rss
            if process.pid == root.pid:
                timeline.append((time.time(), rss))
            label = labels[process.pid]
            peaks[label] = max(peaks.get(label, 0.0), rss)
        peaks["all processes together"] = max(
            peaks.get("all processes together", 0.0), total
        )
        done.wait(SAMPLE_SECONDS)


def _decision_window(
    log: str, timeline: list[tuple[float, float]]
) -> dict[str, float] | None:
    """The driver's RSS during the near-duplicate decision: the last sample before it
    and the peak while it ran (from the log's epoch stamps); None if it never ran."""
    stamps: dict[str, float] = {}
    # A tqdm bar may share the line (it ends in \r, not \n): find the stamp anywhere.
    for moment, message in re.findall(r"(\d{9,}\.\d{3}) INFO [\w.]+: ([^\r\n]*)", log):
        for marker in (DECISION_START, DECISION_END):
            if message.startswith(marker):
                stamps.setdefault(marker, float(moment))
    if len(stamps) < 2:
        return None
    start, end = stamps[DECISION_START], stamps[DECISION_END]
    before = [rss for moment, rss in timeline if moment <= start]
    # A decision shorter than a sample: the first sample after it bounds it too.
    during = [rss for moment, rss in timeline if start <= moment <= end]
    after = [rss for moment, rss in timeline if moment > end][:1]
    return {
        "seconds": end - start,
        "before_gib": before[-1] if before else float("nan"),
        "peak_gib": max(during + after, default=float("nan")),
    }


def clean_run(
    data_entry: dict[str, Any],
    workdir: Path,
    runtime_params: dict[str, Any] | None = None,
    source: Path = ROOT / "src",
) -> dict[str, Any]:
    """Run ``clean`` over ``data_entry`` with the package under ``source`` and the
    settings of its checkout; wall, peaks, in/out/near-dup counts, the output and
    report files."""
    project = _project(workdir, data_entry, source.parent)
    env = {
        **os.environ,
        "PYTHONPATH": str(source),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
        "BELLE_MLFLOW_ARTIFACTS": str(workdir / "mlartifacts"),
        "KEDRO_LOGGING_CONFIG": str(workdir / "logging.yml"),
    }
    (workdir / "logging.yml").write_text(yaml.safe_dump(LOGGING))
    run = (
        "from kedro.framework.startup import bootstrap_project; "
        "from kedro.framework.session import KedroSession; "
        f"bootstrap_project({str(project)!r}); "
        f"s = KedroSession.create(project_path={str(project)!r}, "
        f"runtime_params={runtime_params!r}); s.run(pipeline_names=['clean'])"
    )
    peaks: dict[str, float] = {}
    timeline: list[tuple[float, float]] = []
    done = threading.Event()
    start = time.perf_counter()
    with (workdir / "kedro_run.log").open("w") as log:
        child = subprocess.Popen(
            [sys.executable, "-c", run], cwd=project, env=env, stdout=log, stderr=log
        )
        sampler = threading.Thread(
            target=_sample_peaks,
            args=(psutil.Process(child.pid), peaks, timeline, done),
        )
        sampler.start()
        code = child.wait()
        done.set()
        sampler.join()
    wall = time.perf_counter() - start
    log_text = (workdir / "kedro_run.log").read_text()
    if code:
        raise RuntimeError(f"clean failed (exit {code}):\n{log_text[-3000:]}")
    report_file = next(
        (project / "data/08_reporting/clean_report.json").glob("*/clean_report.json")
    )
    report = json.loads(report_file.read_text())
    # The exact peak of the largest finished child (the sampler can miss a spike).
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    return {
        "wall": wall,
        "rss_gib": max(largest, peaks.get("driver", 0.0)),
        "peaks": peaks,
        "in": report["input_records"],
        "out": report["output_records"],
        "near": next(
            s["dropped"] for s in report["steps"] if s["rule"] == "near_duplicates"
        ),
        # The versioned dataset is a folder of that name; its one file is the output.
        "output": next(
            path
            for path in (project / "data/03_primary").rglob("*.parquet")
            if path.is_file()
        ),
        "report_file": report_file,
        "decision": _decision_window(log_text, timeline),
    }
