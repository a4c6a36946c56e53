"""bench/gpu_check.py: its CPU dry run passes every step, and its shape arithmetic holds."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys

import pytest
import torch
from transformers import BloomConfig, BloomForCausalLM

from tests.support.project import REPO_ROOT

SCRIPT = REPO_ROOT / "bench" / "gpu_check.py"
STEPS = (
    "build",
    "train+kill",
    "resume",
    "train",
    "evaluate merged",
    "LoRA train",
    "evaluate LoRA",
)


def load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_flops_table_names_gpus_and_refuses_an_unknown_one(monkeypatch):
    gpu_check = load_script()
    peaks = gpu_check.BF16_PEAK
    assert peaks["NVIDIA H200 NVL"] < peaks["NVIDIA H200"]  # not the SXM figure
    assert peaks["NVIDIA H100 PCIe"] < peaks["NVIDIA H100 80GB HBM3"]
    name, peak = gpu_check.peak_flops(on_gpu=False, given_tflops=None)
    assert name.startswith("cpu") and peak > 0
    # What torch would report on a GPU the table does not list (none is lent to CI).
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA B300")
    with pytest.raises(gpu_check.UnknownDevice, match="'NVIDIA B300'.*--peak-tflops"):
        gpu_check.peak_flops(on_gpu=True, given_tflops=None)
    given = gpu_check.peak_flops(on_gpu=True, given_tflops=2250)
    assert given == ("NVIDIA B300 (peak given)", 2250e12)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda: "NVIDIA H200 NVL")
    assert gpu_check.peak_flops(on_gpu=True, given_tflops=None)[1] == 835.5e12


def test_the_full_shape_is_bloomz_7b1s_parameter_count():
    gpu_check = load_script()
    full = gpu_check.FULL_SHAPE
    assert full.parameters == 7_069_016_064  # bigscience/bloom-7b1's model card
    for shape in (full.with_layers(1), gpu_check.RESUME_SHAPE):
        config = BloomConfig(
            n_layer=shape.n_layer,
            hidden_size=shape.hidden_size,
            n_head=shape.n_head,
            vocab_size=shape.vocab_size,
        )
        with torch.device("meta"):
            model = BloomForCausalLM(config)
        assert sum(p.numel() for p in model.parameters()) == shape.parameters


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_the_cpu_dry_run_passes_every_step(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT / "src")}
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--cpu-dry-run", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        check=False,
    )
    output = completed.stdout
    assert completed.returncode == 0, output + completed.stderr[-3000:]
    verdicts = re.findall(r"^(PASS|FAIL)  (.+?) \[[^\]]+\]: (.*)$", output, re.M)
    assert [(verdict, name) for verdict, name, _ in verdicts] == [
        ("PASS", name) for name in STEPS
    ]
    figures = dict((name, detail) for _, name, detail in verdicts)
    for step in ("resume", "train", "LoRA train"):
        rate = re.search(
            r"tokens/s ([\d,]+) and MFU ([\d.]+%|n/a) \(inside optimizer steps, no "
            r"checkpoint save: [\d.]+ s of [\d.]+ s\), peak GPU memory n/a",
            figures[step],
        )
        assert rate is not None, figures[step]
        assert int(rate.group(1).replace(",", "")) > 0  # counted through 2 workers
        if step == "LoRA train":
            assert rate.group(2) == "n/a"  # 6N overstates LoRA's work
        else:
            assert float(rate.group(2).rstrip("%")) > 0
        assert "backend gloo, world size 2" in figures[step]
    ranks = re.search(r"its (\d+) processes died with it", figures["train+kill"])
    assert ranks is not None and int(ranks.group(1)) >= 2
    # The resume continued from the newest checkpoint complete at the kill.
    complete = re.search(r"complete \[([\d, ]+)\]", figures["train+kill"])
    assert complete is not None
    newest = complete.group(1).split(", ")[-1]
    assert f"resumed from checkpoint-{newest} to step 6" in figures["resume"]
    for step in ("evaluate merged", "evaluate LoRA"):
        assert "64 answers" in figures[step] and "64 reference NLLs" in figures[step]
    assert "PeftModel" in figures["evaluate LoRA"]
    assert "PASS: 7/7 steps passed" in output
