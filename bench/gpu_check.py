"""GPU check: BELLE's recipe at BLOOMZ-7B1-mt's shape, through the project's launcher.

    python bench/gpu_check.py                     # an NVIDIA machine: bf16, NCCL
    python bench/gpu_check.py --train-layers 16   # full fine-tuning of a deeper cut
    python bench/gpu_check.py --cpu-dry-run       # the same steps on CPU: tiny BLOOM, gloo

No network: every model is a random-init ``BloomConfig`` built in bf16 on the GPU and
saved as a local folder with the offline UTF-8 byte tokenizer; the training records are
the instances of the shipped seed tasks (``data/01_raw/zh_seed_tasks.json``), tokenized
by the training stage's own code in each rank, and the questions are the first ones with
a standard answer in the shipped eval set. The train parameters are ``conf/belle``'s
(bf16, ZeRO-2, per-device batch, gradient accumulation, learning rate, activation
checkpointing, length-grouped batches) as the Kedro config loader resolves them, with
the step count, checkpoint interval and process count set by the check. Every step
prints PASS or FAIL; the exit status is non-zero if any fails. The shape each step ran
at is printed beside it:

1. build [full: 30 layers, hidden 4096, 32 heads, vocab 250,880 = 7.07B]: the models,
   random-init on the GPU in bf16, saved for the launcher's ranks;
2. train+kill [resume shape]: full fine-tuning started with the launcher's own
   torchrun/DeepSpeed command; once a checkpoint is complete and the next one has begun,
   the launcher is SIGKILLed, and every rank must die with it;
3. resume [resume shape]: :func:`~belle_kedro.pipelines.train.launcher.launch` on the
   same run folder continues from the newest complete checkpoint (a torn one is set
   aside) and finishes;
4. train [--train-layers cut of the full shape]: ``--steps`` steps of full fine-tuning:
   tokens/s, MFU and peak GPU memory;
5. evaluate merged [that cut]: the evaluate stage's own answering code on the GPU:
   answers to ``--questions`` questions and each reference's NLL;
6. LoRA train [full]: BELLE's LoRA (r 16 on ``query_key_value``, ``keep_adapter``);
7. evaluate LoRA [full]: the adapter on its 7.07B base, answered and scored the same way.

Why not full fine-tuning at the full shape on one GPU. Memory: ZeRO-2 with one rank
partitions nothing, so it holds bf16 weights and gradients (2 + 2 bytes/param), fp32
master weights and Adam's two moments (12), and at the optimizer step an fp32 copy of
the gradients (4) plus torch AdamW's square-root temporary (4): ~24 bytes/param, 170 GB
for 7.07B parameters against the H200's 141 GB (BELLE's recipe runs on 8 GPUs, 1/8 of
the optimizer state each). Disk: a resumable checkpoint holds the weights twice (the
model's safetensors and DeepSpeed's module states, 2 + 2) and the optimizer (12): 16
bytes/param, 113 GB at the full shape, against 64 GiB of disk.

Default budget for one H200, 64 GiB of disk and 8 minutes (estimates: this check has
not yet run on a GPU; its first run there is what measures them). The embedding (vocab
250,880 x hidden 4096, tied with the output layer) is 1.03B parameters and each block
0.20B, so the 8-layer cut is 2.64B: ~63 GB of GPU memory at 24 bytes/param plus a few
GB of activations (2 x 1,024 tokens, checkpointed) and logits. The resume shape (2
layers, hidden 512, 4 heads of 128, vocab 250,880) is 0.135B: 2.2 GB per checkpoint.
Disk, in the order the files exist: the three base models (14.1 + 5.3 + 0.3 GB), the
resume run's checkpoints (up to 4 at once, a torn one included: 8.7 GB, removed once it
finished), then the
cut's run (its end-of-run checkpoint holds only the model, ``save_only_model``, and the
final model: 10.6 GB, removed after its evaluation): peak ~30 GB, checked against the
free space before anything is built. Time: seven steps, four launcher starts of ~30-60 s
each (imports, NCCL and DeepSpeed set-up, loading the weights), ~40 GB written and read,
30 steps of ~0.5 s for the cut (8 sequences of ~600 byte tokens: ~1e14 FLOP each), 64
x 64 new tokens twice: about 5 minutes.

MFU is ``6 x parameters x tokens/s`` over the bf16 dense peak of all the GPUs used
(:data:`BF16_PEAK`, by exact device name; an unknown GPU stops the check unless
``--peak-tflops`` gives its figure), for full fine-tuning only (LoRA computes no weight
gradients, so 6N overstates its work). On the CPU dry run the peak is an fp32 matrix
product measured on one core of this machine, so its MFU checks the arithmetic, not a
figure to compare. Tokens are real, not padding, counted by the training process from
each batch it trains on (the recipe's two DataLoader workers collate them), and tokens/s
is the training result's ``step_tokens_per_second``: real tokens over the time inside
optimizer steps, so no checkpoint save, evaluation or logging is in it. The first step
(warm-up) is, so tokens/s and MFU are lower bounds (more ``--steps`` bring them closer).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from kedro.config import OmegaConfigLoader
from transformers import BloomConfig, BloomForCausalLM, ByT5Tokenizer

from belle_kedro.common.config import build as build_settings
from belle_kedro.common.template import build_prompt
from belle_kedro.datasets.eval_set import load_eval_set
from belle_kedro.datasets.seed_tasks import load_seed_tasks
from belle_kedro.pipelines.evaluate.answering import (
    answer_in_length_order,
    model_device,
    place_model,
)
from belle_kedro.pipelines.evaluate.settings import GenerationSettings
from belle_kedro.pipelines.train import launcher, trainer
from belle_kedro.pipelines.train.settings import TrainSettings

ROOT = Path(__file__).resolve().parents[1]
# Dense bf16 tensor-core peak FLOP/s (no sparsity) per GPU, by the exact name
# torch.cuda.get_device_name() gives, from NVIDIA's datasheets (the sparse figures
# they headline are twice these). A name not listed is refused, never guessed: pass
# --peak-tflops for it.
BF16_PEAK = {
    "NVIDIA H100 80GB HBM3": 989.4e12,  # H100 SXM5
    "NVIDIA H100 PCIe": 756.0e12,
    "NVIDIA H100 NVL": 835.5e12,
    "NVIDIA H200": 989.4e12,  # H200 SXM
    "NVIDIA H200 NVL": 835.5e12,
    "NVIDIA A100-SXM4-80GB": 312e12,
    "NVIDIA A100-SXM4-40GB": 312e12,
    "NVIDIA A100 80GB PCIe": 312e12,
    "NVIDIA A100-PCIE-40GB": 312e12,
}
# Bytes per parameter (see the module docstring): ZeRO-2 full fine-tuning on one GPU,
# a resumable checkpoint, and weights in bf16.
GPU_BYTES_PER_PARAM = 24
CHECKPOINT_BYTES_PER_PARAM = 16
WEIGHT_BYTES_PER_PARAM = 2
# The resume run's checkpoints on disk at once: conf/belle's save_total_limit (3) and the
# torn one set aside.
RESUME_CHECKPOINTS_ON_DISK = 4
POLL_S = 0.1
RANK_EXIT_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Shape:
    """A BLOOM shape; ``parameters`` counts the tied embedding once, as BLOOM does."""

    label: str
    n_layer: int
    hidden_size: int
    n_head: int
    vocab_size: int

    @property
    def parameters(self) -> int:
        hidden = self.hidden_size
        # Per block: fused QKV (3h^2 + 3h), dense (h^2 + h), MLP (8h^2 + 5h), 2 norms (4h).
        block = 12 * hidden**2 + 13 * hidden
        # Embedding, its norm and the final norm.
        return self.vocab_size * hidden + 4 * hidden + self.n_layer * block

    def with_layers(self, n_layer: int) -> Shape:
        return Shape(
            f"{n_layer} of {self.n_layer} layers",
            n_layer,
            self.hidden_size,
            self.n_head,
            self.vocab_size,
        )

    def describe(self) -> str:
        return (
            f"{self.label}: {self.n_layer} layers, hidden {self.hidden_size}, "
            f"{self.n_head} heads, vocab {self.vocab_size:,} = "
            f"{self.parameters:,} parameters"
        )


# BLOOMZ-7B1-mt's shape, and the small one whose resumable checkpoints fit the disk.
FULL_SHAPE = Shape("full", 30, 4096, 32, 250880)
RESUME_SHAPE = Shape("resume shape", 2, 512, 4, 250880)
# The dry run's: trains in seconds on a CPU (vocab: the byte tokenizer's 384).
TINY_SHAPE = Shape("tiny", 2, 64, 4, 384)


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cpu-dry-run", action="store_true")
    parser.add_argument(
        "--train-layers",
        type=int,
        help="layers of the full shape that step 4 fine-tunes in full (GPU 8; 30 = all)",
    )
    parser.add_argument("--steps", type=int, help="step 4's steps (GPU 30, dry run 4)")
    parser.add_argument(
        "--save-steps", type=int, default=2, help="checkpoint interval of steps 2-3"
    )
    parser.add_argument("--lora-steps", type=int, default=4)
    parser.add_argument("--questions", type=int, default=64)
    parser.add_argument(
        "--max-new-tokens", type=int, help="answer length (GPU 64, dry run 8)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="scratch folder, kept (default: a temporary one)"
    )
    parser.add_argument(
        "--peak-tflops",
        type=float,
        help="dense bf16 peak TFLOP/s per GPU, for a GPU not in BF16_PEAK",
    )
    return parser.parse_args()


def belle_parameters() -> dict[str, Any]:
    """The parameters as ``kedro run --env belle`` resolves them."""
    loader = OmegaConfigLoader(
        conf_source=str(ROOT / "conf"),
        base_env="base",
        default_run_env="belle",
        merge_strategy={"parameters": "soft"},
    )
    return dict(loader["parameters"])


def training_records(count: int) -> pd.DataFrame:
    """``count`` records from the shipped seed tasks' instances, cycled as needed."""
    tasks = load_seed_tasks(ROOT / "data" / "01_raw" / "zh_seed_tasks.json")
    records = [
        {"instruction": instruction, "input": item["input"], "output": item["output"]}
        for instruction, instances in zip(
            tasks["instruction"], tasks["instances"], strict=True
        )
        for item in instances
    ]
    return pd.DataFrame([records[i % len(records)] for i in range(count)])


def eval_questions(count: int) -> pd.DataFrame:
    """The first ``count`` questions of the shipped eval set that have a standard answer."""
    questions = load_eval_set(ROOT / "data" / "01_raw" / "eval_set.json")
    answered = questions[questions["std_answer"].str.strip() != ""]
    return answered.head(count).reset_index(drop=True)


class UnknownDevice(LookupError):
    """A GPU whose peak FLOP/s this check does not know."""


def peak_flops(on_gpu: bool, given_tflops: float | None) -> tuple[str, float]:
    """The device's name and its peak FLOP/s per process (see the module docstring)."""
    if given_tflops is not None:
        name = torch.cuda.get_device_name() if on_gpu else "cpu"
        return f"{name} (peak given)", given_tflops * 1e12
    if not on_gpu:
        return "cpu (fp32 matmul peak measured on one core)", measured_cpu_peak()
    name = torch.cuda.get_device_name()
    if name not in BF16_PEAK:
        raise UnknownDevice(
            f"no bf16 peak known for {name!r} (known: {', '.join(BF16_PEAK)}); "
            "pass --peak-tflops with its dense bf16 figure from NVIDIA's datasheet"
        )
    return name, BF16_PEAK[name]


def measured_cpu_peak(size: int = 512, repeats: int = 20) -> float:
    """FLOP/s of an fp32 matrix product on one thread: the dry run's stand-in peak."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        left, right = torch.randn(size, size), torch.randn(size, size)
        left @ right  # warm-up
        started = time.perf_counter()
        for _ in range(repeats):
            left @ right
        return 2 * size**3 * repeats / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)


def gb(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 1e9:.1f} GB"


class Report:
    """Runs the steps in order and prints PASS/FAIL for each (later steps need earlier)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, bool, str]] = []

    def step(self, name: str, shape: Shape, check: Callable[[], str]) -> None:
        """Run ``check``: it returns its figures, or raises :class:`StepFailed`."""
        label = f"{name} [{shape.label}]"
        if not self.passed:
            self.rows.append((label, False, "skipped: an earlier step failed"))
        else:
            started = time.perf_counter()
            try:
                passed, detail = True, check()
            except Exception as error:  # a failed step is reported, not raised
                passed, detail = False, f"{type(error).__name__}: {error}"
            self.rows.append(
                (label, passed, f"{detail} [{time.perf_counter() - started:.0f} s]")
            )
        label, passed, detail = self.rows[-1]
        print(f"{'PASS' if passed else 'FAIL'}  {label}: {detail}", flush=True)

    @property
    def passed(self) -> bool:
        return all(passed for _, passed, _ in self.rows)


class StepFailed(AssertionError):
    """A step ran but its result is wrong."""


def expect(condition: bool, detail: str) -> None:
    if not condition:
        raise StepFailed(detail)


def build_model(folder: Path, shape: Shape, device: torch.device) -> None:
    """A random-init BLOOM of ``shape`` built in bf16 on ``device``, saved to ``folder``."""
    tokenizer = ByT5Tokenizer()
    config = BloomConfig(
        n_layer=shape.n_layer,
        hidden_size=shape.hidden_size,
        n_head=shape.n_head,
        vocab_size=shape.vocab_size,
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    default_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # no fp32 copy of 7B weights on the way
    try:
        with device:
            model = BloomForCausalLM(config)
    finally:
        torch.set_default_dtype(default_dtype)
    built = sum(p.numel() for p in model.parameters())
    expect(built == shape.parameters, f"built {built:,} parameters, not {shape}")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()


def train_config(
    belle: TrainSettings,
    base_folder: Path,
    runs: Path,
    *,
    steps: int,
    save_steps: int,
    processes: int,
    on_gpu: bool,
    lora: bool = False,
    save_only_model: bool = False,
) -> TrainSettings:
    """``conf/belle``'s train settings, run for ``steps`` steps on the local model folder."""
    trainer_params = {
        **belle.trainer,
        "max_steps": steps,
        "save_steps": save_steps,
        # The run's end-of-training checkpoint without the optimizer: it cannot be
        # resumed, but it is 2 bytes/param on disk, not 16.
        "save_only_model": save_only_model,
        "logging_steps": 1,
        "disable_tqdm": True,
        # Throughput and checkpoints are the point, not the held-out loss.
        "eval_strategy": "no",
    }
    if not on_gpu:
        # fp32 on a CPU avoids slow bf16 emulation; the recipe's DataLoader workers
        # stay, since the token counts must reach the training process through them.
        trainer_params.update(bf16=False)
    if belle.deepspeed is None:
        raise StepFailed("conf/belle names no DeepSpeed config")
    changed = dataclasses.replace(
        belle,
        checkpoint_root=str(runs),
        model=dataclasses.replace(
            belle.model,
            name_or_path=str(base_folder),
            dtype="bfloat16" if on_gpu else "float32",
        ),
        finetuning=dataclasses.replace(
            belle.finetuning, method="lora" if lora else "full"
        ),
        deepspeed=str(ROOT / belle.deepspeed),
        launcher=dataclasses.replace(
            belle.launcher, command="torchrun", nproc_per_node=processes
        ),
        trainer=trainer_params,
    )
    # Built again from plain values, so the changed settings pass every rule too.
    return build_settings(TrainSettings, changed.as_dict(), "train")


def checkpoint_steps(run_dir: Path, *, complete: bool) -> list[int]:
    """Steps of the run's checkpoint folders (only the complete ones if ``complete``)."""
    root = run_dir / trainer.CHECKPOINT_DIR
    if not root.is_dir():
        return []
    return sorted(
        int(path.name.rsplit("-", 1)[1])
        for path in root.glob("checkpoint-*")
        if path.name.rsplit("-", 1)[1].isdigit()
        and (not complete or trainer.checkpoint_is_complete(path))
    )


def descendants(pid: int) -> set[int]:
    """Every process under ``pid`` (Linux ``/proc``), found by following parent ids."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # it exited while we looked
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (an unreaped zombie still answers kill(pid, 0))."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def train_and_kill(run_dir: Path, processes: int, timeout_s: float) -> tuple[int, str]:
    """Start the launcher's command for ``run_dir`` and SIGKILL the launcher mid-run.

    The kill comes once a checkpoint is complete and the next one's folder has appeared
    (on a GPU that one is still being written: a torn checkpoint). The ranks run in
    sessions of their own, so they are not in the launcher's process group: they must
    die with their launcher (:func:`~belle_kedro.pipelines.train.trainer.die_with_launcher`).
    Returns the newest complete checkpoint's step once every process is gone.
    """
    command = launcher.launcher_command(run_dir, trainer.read_job(run_dir).train)
    if command is None:
        raise StepFailed("DeepSpeed must go through a launcher")
    process = subprocess.Popen(
        command, env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True
    )
    deadline = time.monotonic() + timeout_s
    ranks: set[int] = set()
    try:
        while True:
            complete = checkpoint_steps(run_dir, complete=True)
            if (
                complete
                and max(checkpoint_steps(run_dir, complete=False)) > complete[0]
            ):
                break
            if process.poll() is not None:
                raise StepFailed(
                    f"training exited ({process.returncode}) before the second checkpoint"
                )
            expect(
                time.monotonic() < deadline, f"no checkpoint within {timeout_s:.0f} s"
            )
            ranks |= descendants(process.pid)
            time.sleep(POLL_S)
        ranks |= descendants(process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    rank_deadline = time.monotonic() + RANK_EXIT_TIMEOUT_S
    while any(running(pid) for pid in ranks) and time.monotonic() < rank_deadline:
        time.sleep(POLL_S)
    survivors = sorted(pid for pid in ranks if running(pid))
    for pid in survivors:  # left running they would finish the run behind the resume
        os.kill(pid, signal.SIGKILL)
    expect(
        not survivors,
        f"processes {survivors} outlived their SIGKILLed launcher by {RANK_EXIT_TIMEOUT_S:.0f} s",
    )
    expect(
        len(ranks) >= processes,
        f"found {len(ranks)} processes under the launcher, expected {processes} ranks",
    )
    expect(not launcher.is_finished(run_dir), "training finished before the kill")
    complete = checkpoint_steps(run_dir, complete=True)
    on_disk = checkpoint_steps(run_dir, complete=False)
    torn = sorted(set(on_disk) - set(complete))
    return complete[-1], (
        f"launcher SIGKILLed at checkpoints {on_disk} (complete {complete}, torn "
        f"{torn or 'none'}); its {len(ranks)} processes died with it"
    )


def throughput(
    result: Mapping[str, Any],
    parameters: int,
    peak: float,
    *,
    full_finetuning: bool,
) -> str:
    """Tokens/s and MFU inside the optimizer steps (no checkpoint save); both non-zero."""
    rate = float(result["step_tokens_per_second"])
    world_size = int(result["world_size"])
    expect(
        rate > 0 and int(result["train_tokens"]) > 0,
        f"{result['train_tokens']} tokens counted, {rate} tokens/s",
    )
    utilisation = (
        f"{6 * parameters * rate / (peak * world_size):.2%}"
        if full_finetuning
        else "n/a"
    )
    return (
        f"tokens/s {rate:,.0f} and MFU {utilisation} (inside optimizer steps, no "
        f"checkpoint save: {float(result['step_seconds']):.1f} s of "
        f"{float(result['train_runtime_s']):.1f} s), "
        f"peak GPU memory {gb(result['peak_gpu_memory_bytes'])} (rank 0), "
        f"padding waste {float(result['padding_waste']):.1%}, "
        f"backend {result['distributed_backend']}, world size {world_size}"
    )


def check_trained(result: Mapping[str, Any], steps: int, backend: str) -> None:
    expect(result["global_step"] == steps, f"stopped at step {result['global_step']}")
    expect(
        result["distributed_backend"] == backend,
        f"trained over {result['distributed_backend']}, not {backend}",
    )
    expect(math.isfinite(float(result["train_loss"])), "the loss is not finite")


def evaluate(
    run_dir: Path,
    config: TrainSettings,
    questions: pd.DataFrame,
    generation: GenerationSettings,
    *,
    expect_adapter: bool,
) -> str:
    """The evaluate stage's answers and reference NLLs for ``questions``, on the GPU if any."""
    model, tokenizer = trainer.load_trained(run_dir, config)
    model = place_model(model, generation.device, generation.dtype)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    answers, nll = answer_in_length_order(
        model,
        tokenizer,
        [build_prompt(question) for question in questions["question"]],
        list(questions["std_answer"]),
        generation,
        progress="answer",
    )
    elapsed = time.perf_counter() - started
    is_adapter = hasattr(model, "get_base_model")
    device = model_device(model)
    del model
    peak = None
    if torch.cuda.is_available():
        peak = torch.cuda.max_memory_allocated()
        torch.cuda.empty_cache()  # the next launcher's ranks need this GPU's memory
    expected_device = "cuda" if torch.cuda.is_available() else "cpu"
    expect(device.type == expected_device, f"the model ran on {device}")
    expect(is_adapter == expect_adapter, f"PeftModel: {is_adapter}")
    expect(
        len(answers) == len(questions) and all(isinstance(a, str) for a in answers),
        f"{len(answers)} answers for {len(questions)} questions",
    )
    scored = [(total, tokens) for total, tokens in nll if tokens > 0]
    expect(
        len(scored) == len(questions) and all(math.isfinite(t) for t, _ in scored),
        f"{len(scored)} finite reference NLLs for {len(questions)} questions",
    )
    tokens = sum(count for _, count in scored)
    return (
        f"{len(answers)} answers ({sum(map(len, answers)):,} characters) and "
        f"{len(scored)} reference NLLs (mean {sum(t for t, _ in scored) / tokens:.2f} "
        f"nats/token over {tokens:,} tokens) in {elapsed:.0f} s on "
        f"{'a PeftModel' if is_adapter else 'the merged model'} on {device} in "
        f"{generation.dtype}, peak GPU memory {gb(peak)}"
    )


def main() -> int:
    arguments = parse_arguments()
    dry = arguments.cpu_dry_run
    on_gpu = torch.cuda.is_available() and not dry
    if not dry and not on_gpu:
        print("no CUDA device: run on an NVIDIA machine, or pass --cpu-dry-run")
        return 2
    if dry:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the launched ranks too
    full_shape = TINY_SHAPE if dry else FULL_SHAPE
    train_shape = full_shape.with_layers(arguments.train_layers or (2 if dry else 8))
    resume_shape = TINY_SHAPE if dry else RESUME_SHAPE
    steps = arguments.steps or (4 if dry else 30)
    save_steps = arguments.save_steps
    resume_steps = 3 * save_steps  # checkpoints at 1x, 2x (the kill) and 3x
    processes = 2 if dry else torch.cuda.device_count()
    backend = "nccl" if on_gpu else "gloo"
    try:
        device_name, peak = peak_flops(on_gpu, arguments.peak_tflops)
    except UnknownDevice as error:
        print(error)
        return 2
    params = belle_parameters()
    belle = build_settings(TrainSettings, params["train"], "train")
    generation = build_settings(
        GenerationSettings,
        {
            **params["evaluate"]["generation"],
            "max_new_tokens": arguments.max_new_tokens or (8 if dry else 64),
            "dtype": "bfloat16" if on_gpu else "float32",
        },
        "evaluate.generation",
    )
    workdir = arguments.workdir or Path(tempfile.mkdtemp(prefix="gpu_check."))
    workdir.mkdir(parents=True, exist_ok=True)
    runs = workdir / "runs"
    folders = {
        shape.label: workdir / f"base-{index}"
        for index, shape in enumerate((full_shape, train_shape, resume_shape))
    }
    print(f"command: python {' '.join(sys.argv)}")
    print(
        f"device: {device_name} x{processes if on_gpu else 0} "
        f"(peak {peak:.3g} FLOP/s each), "
        f"{backend} over {processes} processes, workdir {workdir}"
    )
    for shape in dict.fromkeys((full_shape, train_shape, resume_shape)):
        print(f"shape {shape.describe()}")
    print(
        "Nothing here ran at the full shape unless its line says [full]. "
        f"Global batch: {belle.trainer['per_device_train_batch_size']} per "
        f"device x {belle.trainer['gradient_accumulation_steps']} "
        f"accumulated x {processes} processes.",
        flush=True,
    )

    per_step = (
        processes
        * int(belle.trainer["per_device_train_batch_size"])
        * int(belle.trainer["gradient_accumulation_steps"])
    )
    records = training_records(per_step * max(steps, resume_steps))
    questions = eval_questions(arguments.questions)

    def prepared(
        name: str, shape: Shape, **overrides: Any
    ) -> tuple[Path, TrainSettings]:
        config = train_config(
            belle,
            folders[shape.label],
            runs,
            processes=processes,
            on_gpu=on_gpu,
            **overrides,
        )
        run_dir = launcher.prepare_run_dir(name, records, records.head(0), config)
        return run_dir, config

    report = Report()
    killed_at: dict[str, int] = {}
    # Each run folder is prepared (tokenised) once its model folder exists.
    runs_ready: dict[str, tuple[Path, TrainSettings]] = {}

    def prepare_runs() -> None:
        runs_ready["resume"] = prepared(
            "resume", resume_shape, steps=resume_steps, save_steps=save_steps
        )
        runs_ready["train"] = prepared(
            "train", train_shape, steps=steps, save_steps=steps, save_only_model=True
        )
        runs_ready["lora"] = prepared(
            "lora",
            full_shape,
            steps=arguments.lora_steps,
            save_steps=arguments.lora_steps,
            lora=True,
        )

    def build() -> str:
        weights = sum(
            WEIGHT_BYTES_PER_PARAM * shape.parameters
            for shape in (full_shape, train_shape, resume_shape)
        )
        resume_run = (
            RESUME_CHECKPOINTS_ON_DISK * CHECKPOINT_BYTES_PER_PARAM
            + WEIGHT_BYTES_PER_PARAM
        ) * resume_shape.parameters
        # Step 4: an end-of-run checkpoint of the weights only, and the final model.
        train_run = 2 * WEIGHT_BYTES_PER_PARAM * train_shape.parameters
        needed = weights + max(resume_run, train_run)
        free = shutil.disk_usage(workdir).free
        expect(
            needed < free,
            f"~{gb(needed)} of disk needed at the peak, {gb(free)} free in {workdir}: "
            "pass --workdir on a larger disk or fewer --train-layers",
        )
        device = torch.device("cuda" if on_gpu else "cpu")
        started = time.perf_counter()
        for shape in dict.fromkeys((full_shape, train_shape, resume_shape)):
            build_model(folders[shape.label], shape, device)
        prepare_runs()
        return (
            f"built in bf16 on {device} and saved in {time.perf_counter() - started:.0f} s; "
            f"disk needed at the peak ~{gb(needed)} of {gb(free)} free; step 4 needs "
            f"~{gb(GPU_BYTES_PER_PARAM * train_shape.parameters)} of GPU memory per "
            "rank for weights, gradients and optimizer before activations"
        )

    def kill() -> str:
        killed_at["step"], detail = train_and_kill(
            runs_ready["resume"][0], processes, timeout_s=600
        )
        return detail

    def resume() -> str:
        result = launcher.launch(runs_ready["resume"][0])
        torn = sorted(
            path.name for path in (runs_ready["resume"][0] / trainer.TORN_DIR).glob("*")
        )
        expect(
            result["resumed_from_step"] == killed_at["step"],
            f"resumed from step {result['resumed_from_step']}, not from the complete "
            f"checkpoint-{killed_at['step']}",
        )
        check_trained(result, resume_steps, backend)
        shutil.rmtree(runs_ready["resume"][0])  # its disk is step 4's
        return (
            f"resumed from checkpoint-{result['resumed_from_step']} to step "
            f"{result['global_step']}, set aside as torn: {torn or 'none'}; "
            + throughput(result, resume_shape.parameters, peak, full_finetuning=True)
        )

    def train_at_scale() -> str:
        result = launcher.launch(runs_ready["train"][0])
        check_trained(result, steps, backend)
        return f"{steps} steps of full fine-tuning, ZeRO-2; " + throughput(
            result, train_shape.parameters, peak, full_finetuning=True
        )

    def evaluate_merged() -> str:
        detail = evaluate(
            *runs_ready["train"], questions, generation, expect_adapter=False
        )
        shutil.rmtree(runs_ready["train"][0])
        return detail

    def lora_train() -> str:
        result = launcher.launch(runs_ready["lora"][0])
        check_trained(result, arguments.lora_steps, backend)
        adapter = runs_ready["lora"][0] / trainer.MODEL_DIR / "adapter_config.json"
        expect(adapter.is_file(), f"no adapter in {adapter.parent}")
        return f"{result['global_step']} steps, adapter saved; " + throughput(
            result, full_shape.parameters, peak, full_finetuning=False
        )

    report.step("build", full_shape, build)
    report.step("train+kill", resume_shape, kill)
    report.step("resume", resume_shape, resume)
    report.step("train", train_shape, train_at_scale)
    report.step("evaluate merged", train_shape, evaluate_merged)
    report.step("LoRA train", full_shape, lora_train)
    report.step(
        "evaluate LoRA",
        full_shape,
        lambda: evaluate(
            *runs_ready["lora"], questions, generation, expect_adapter=True
        ),
    )
    passed = sum(ok for _, ok, _ in report.rows)
    print(
        f"{'PASS' if report.passed else 'FAIL'}: {passed}/{len(report.rows)} steps passed"
    )
    if not arguments.workdir:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
