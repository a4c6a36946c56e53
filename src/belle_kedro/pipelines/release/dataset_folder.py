"""The dataset folder, laid out as a Hugging Face dataset repo, and its card.

::

    README.md                                   the card (YAML header + body)
    data/<variant>/train-00000-of-0000N.parquet one config per variant (train split)
    data/holdout/test-00000-of-0000N.parquet    the held-out set (every config's test split)
    exports/<format>/<variant>.json[l]          BELLE, Alpaca, ShareGPT, messages
    dataset_info.json                           LLaMA-Factory's index of the exports

Every figure in the card is read from the run's records (:class:`RunRecords`), never
typed by hand, so a changed parameter upstream changes the card.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd
import yaml

from belle_kedro.common.records import RECORD_COLUMNS, records_digest
from belle_kedro.pipelines.release.exports import dataset_info, export_files
from belle_kedro.pipelines.release.settings import DatasetReleaseSettings

# The released columns: the record and the two provenance fields every record has.
RELEASED_COLUMNS = (*RECORD_COLUMNS, "category", "source")
HOLDOUT = "holdout"


@dataclass(frozen=True)
class RunRecords:
    """What the card states, each from a catalog dataset of the run."""

    generation_summary: Mapping[str, Any]
    prompt_digest: str
    seed_tasks_digest: str
    seed_tasks_count: int
    clean_report: Mapping[str, Any]
    split_report: Mapping[str, Any]
    model_versions: Mapping[str, Mapping[str, Any]]
    eval_macro: pd.DataFrame
    champion: Mapping[str, Any]
    run_command: Mapping[str, Any]
    parent_run_id: str | None
    # review_report when the review stage ran (review.enabled), else None.
    review_report: Mapping[str, Any] | None = None


def content_digest(value: Any) -> str:
    """SHA-256 of a JSON-able value (keys sorted): a prompt file's identity."""
    # default=str: numpy scalars in a DataFrame's records hash by their value.
    text = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def released_frame(records: pd.DataFrame) -> pd.DataFrame:
    """The released columns as strings (absent provenance: null)."""
    frame = pd.DataFrame(index=records.index)
    for column in RELEASED_COLUMNS:
        if column in RECORD_COLUMNS:
            frame[column] = records[column].fillna("").astype(str)
        elif column in records.columns:
            frame[column] = records[column].astype("string")
        else:
            frame[column] = pd.Series(pd.NA, index=records.index, dtype="string")
    return frame.reset_index(drop=True)


def parquet_shards(
    records: pd.DataFrame, folder: str, split: str, per_shard: int
) -> dict[str, bytes]:
    """``<folder>/<split>-0000i-of-0000n.parquet`` shards of at most ``per_shard`` rows."""
    frame = released_frame(records)
    count = max(1, math.ceil(len(frame) / per_shard))
    shards = {}
    for index in range(count):
        buffer = io.BytesIO()
        part = frame.iloc[index * per_shard : (index + 1) * per_shard]
        part.to_parquet(buffer, index=False)
        shards[f"{folder}/{split}-{index:05d}-of-{count:05d}.parquet"] = (
            buffer.getvalue()
        )
    return shards


def size_category(count: int) -> str:
    """The Hub's ``size_categories`` bucket of ``count`` records."""
    bounds = [(1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K")]
    bounds += [(1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M")]
    for bound, name in bounds:
        if count < bound:
            return name
    return "10M<n<100M"


def card_header(
    settings: DatasetReleaseSettings, variants: Mapping[str, int], default: str
) -> dict[str, Any]:
    """The card's YAML header: licence, language, task, size and one config per variant."""

    def test() -> dict[str, str]:
        # A fresh mapping each time: a shared one would become a YAML anchor.
        return {"split": "test", "path": f"data/{HOLDOUT}/test-*.parquet"}

    configs: list[dict[str, Any]] = [
        {
            "config_name": name,
            **({"default": True} if name == default else {}),
            "data_files": [
                {"split": "train", "path": f"data/{name}/train-*.parquet"},
                test(),
            ],
        }
        for name in variants
    ]
    configs.append({"config_name": HOLDOUT, "data_files": [test()]})
    return {
        "license": settings.license,
        "language": list(settings.language),
        "task_categories": ["text-generation"],
        "size_categories": [size_category(max(variants.values(), default=0))],
        "pretty_name": settings.pretty_name,
        "configs": configs,
    }


def _generation_lines(summary: Mapping[str, Any], records: RunRecords) -> list[str]:
    return [
        "## How it was made",
        "",
        "### Generation",
        "",
        f"- Generator: `{summary['model']}` through the `{summary['backend']}` backend "
        f"({summary['api']} API), random seed {summary['random_seed']}.",
        f"- Prompt template (conf/base/prompts/self_instruct.yml) SHA-256: `{records.prompt_digest}`.",
        f"- Seed tasks: {records.seed_tasks_count} records, digest `{records.seed_tasks_digest}`.",
        f"- Tasks asked for: {summary['instructions_target']}; requests planned: "
        f"{summary['requests_planned']}; answers received: {summary['responses_ok']} "
        f"({summary['responses_failed']} failed, {summary['responses_truncated']} cut off "
        f"by the token limit); tasks parsed: {summary['instructions_parsed']}.",
        "",
    ]


def _clean_lines(report: Mapping[str, Any]) -> list[str]:
    lines = [
        "### Cleaning",
        "",
        f"{report['input_records']} records in, {report['output_records']} kept. "
        "Each step, in order:",
        "",
        "| step | records in | dropped | setting |",
        "|---|---|---|---|",
    ]
    for step in report["steps"]:
        setting = (
            (f"threshold {step['threshold']}" if "threshold" in step else "")
            if step.get("enabled", True)
            else "off"
        )
        lines.append(
            f"| {step['rule']} | {step['input']} | {step['dropped']} | {setting} |"
        )
    by_rule = {step["rule"]: step for step in report["steps"]}
    dedup = by_rule.get("near_duplicates")
    decon = by_rule.get("decontamination")
    lines.append("")
    if dedup:
        lines.append(
            f"Near duplicates: character ROUGE-L ≥ {dedup['threshold']} against kept "
            f"records{' and the seed tasks' if dedup.get('against_seed_tasks') else ''}; "
            f"{dedup['dropped']} dropped."
        )
    if decon:
        lines.append(
            f"Decontamination: against the eval set with digest "
            f"`{report['eval_set_digest']}` ({decon.get('eval_questions', 0)} questions, "
            f"ROUGE-L ≥ {decon['threshold']}); {decon['dropped']} dropped."
        )
    classes = report["task_classes"]
    kept = classes["kept_per_class"]
    dropped: dict[str, int] = {}
    for per_class in classes["dropped_per_rule_and_class"].values():
        for name, count in per_class.items():
            dropped[name] = dropped.get(name, 0) + count
    lines += [
        "",
        "Records per task class, as predicted by a character n-gram classifier trained "
        "on the eval set's questions and the seed tasks (held-out accuracy "
        f"{classes['classifier']['held_out_accuracy']}):",
        "",
        "| class | kept | dropped |",
        "|---|---|---|",
        *(
            f"| {name} | {kept.get(name, 0)} | {dropped.get(name, 0)} |"
            for name in sorted({*kept, *dropped})
        ),
        "",
    ]
    return lines


def _share_cell(entry: Mapping[str, Any]) -> str:
    if entry["share"] is None:
        return "–"
    return (
        f"{entry['share']} [{entry['low']}, {entry['high']}] "
        f"({entry['accepted']}/{entry['reviewed']})"
    )


def _review_lines(report: Mapping[str, Any] | None) -> list[str]:
    """The review's measured filter quality (Wilson 95 % intervals), when it ran."""
    if report is None:
        return []
    quality = report["quality"]
    keep, drops = quality["keep_precision"], quality["false_drops"]
    lines = [
        "### Review by people",
        "",
        f"Reviewers decided on {report['reviewed_records']} sampled records in Label "
        f"Studio; {report['input_records']} records in, {report['output_records']} "
        "after the review. Precision of keeping: the share of reviewed kept records "
        "they accepted; false drops: the share of reviewed dropped records they would "
        "have kept. Share [Wilson 95 % interval] (accepted/reviewed):",
        "",
        "| group | precision of keeping | false drops |",
        "|---|---|---|",
        f"| all | {_share_cell(keep['all'])} | {_share_cell(drops['all'])} |",
    ]
    empty = {"share": None}
    for kind, label in (("by_class", "class"), ("by_rule", "rule")):
        for name in sorted({*keep[kind], *drops[kind]}):
            lines.append(
                f"| {label} {name} | {_share_cell(keep[kind].get(name, empty))} | "
                f"{_share_cell(drops[kind].get(name, empty))} |"
            )
    lines.append("")
    return lines


def source_counts(records: pd.DataFrame) -> str:
    """Records per ``source`` (generated vs mixed-in seed tasks, …), largest first."""
    if "source" not in records.columns:
        return ""
    counts = records["source"].fillna("unknown").astype(str).value_counts()
    return ", ".join(f"{source} {count}" for source, count in counts.items())


def _split_lines(
    report: Mapping[str, Any], records: RunRecords, sources: Mapping[str, str]
) -> list[str]:
    lines = [
        "### Split and variants",
        "",
        f"Seed {report['seed']}. Each larger variant contains every smaller one; no "
        "variant shares an instruction with the held-out set.",
        "",
        "| config | records | by source | digest (SHA-256 of instruction/input/output) "
        "| MLflow run | registry version |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in report["variants"].items():
        version = records.model_versions.get(name, {})
        lines.append(
            f"| {name} | {entry['size']} | {sources.get(name, '')} | `{entry['digest']}` "
            f"| `{version.get('run_id', '-')}` | {version.get('model_uri', '-')} |"
        )
    holdout = report["holdout"]
    lines += [
        f"| {HOLDOUT} (test) | {holdout['size']} | {sources.get(HOLDOUT, '')} "
        f"| `{holdout['digest']}` | | |",
        "",
    ]
    return lines


def _eval_lines(macro: pd.DataFrame, champion: Mapping[str, Any]) -> list[str]:
    if macro.empty:
        return []
    lines = [
        "### Models trained on it",
        "",
        "| variant | records | macro score | bootstrap CI |",
        "|---|---|---|---|",
    ]
    for row in macro.to_dict("records"):
        lines.append(
            f"| {row['variant']} | {row['train_size']} | {row['macro']:.4f} | "
            f"[{row['macro_ci_low']:.4f}, {row['macro_ci_high']:.4f}] |"
        )
    lines += [
        "",
        f"Champion: `{champion['variant']}` ({champion['model_uri']}), "
        f"{champion['metric']} {champion['score']:.4f}, rule: {champion['rule_description']}.",
        "",
    ]
    return lines


def code_note(run_command: Mapping[str, Any]) -> str:
    """The code's version in words: its commit, and whether uncommitted changes ran too."""
    commit = run_command.get("commit")
    if commit is None:
        return (
            "Code: not run from a git checkout, so the commit is unknown; the "
            "command below reproduces the run only with the same source tree."
        )
    if run_command.get("dirty"):
        return (
            f"Code: belle-kedro commit `{commit}`, **dirty** (the tree had uncommitted "
            "changes when it ran, so this commit alone may not reproduce it)."
        )
    return f"Code: belle-kedro commit `{commit}` (clean tree)."


def reproduce_lines(run_command: Mapping[str, Any]) -> list[str]:
    """The ``Reproduce`` section: checkout of the run's commit, install, the command."""
    commit = run_command.get("commit")
    checkout = (
        [f"git checkout {commit}"]
        if commit
        else ["# the commit is unknown (not a git checkout); use the same source tree"]
    )
    return [
        "## Reproduce",
        "",
        code_note(run_command),
        "",
        "From a clone of belle-kedro:",
        "",
        "```bash",
        *checkout,
        "bash scripts/install.sh",
        f".venv/bin/{run_command['command']}",
        "```",
        "",
    ]


def _reproduce_lines(records: RunRecords) -> list[str]:
    command = records.run_command
    overrides = command.get("runtime_params") or {}
    lines = [
        *reproduce_lines(command),
        f"Environment: `{command['env']}`; parameter overrides: "
        + (", ".join(f"`{k}={v}`" for k, v in sorted(overrides.items())) or "none")
        + ".",
    ]
    if records.parent_run_id:
        lines.append(f"MLflow run of this release: `{records.parent_run_id}`.")
    lines.append("")
    return lines


def limitations(model: bool) -> str:
    """The Limitations section, in our words, for the dataset or a model trained on it."""
    who = (
        "This model learnt from records written by a language model and filtered by "
        "rules, not checked by people, and repeats their faults. Expect:"
        if model
        else "These records were written by a language model and filtered by rules, "
        "not checked by people. Expect:"
    )
    subject = "The model" if model else "A model trained on this data"
    return f"""## Limitations

{who}

- **Wrong facts.** Answers can state false things with confidence (dates, names,
  figures); fluent wording says nothing about whether an answer is true.
- **Harmful requests not always refused.** The generator was not asked to screen
  harmful instructions, and some answers go along with them. {subject} may do the same.
- **Weak reasoning and code.** Mathematics, multi-step reasoning and programming
  answers are often wrong or incomplete; do not use them as references.

Use it for research on instruction tuning, not in a product people rely on for facts
or advice.
"""


def dataset_card(
    header: Mapping[str, Any],
    records: RunRecords,
    settings: DatasetReleaseSettings,
    sources: Mapping[str, str],
) -> str:
    """The card: YAML header, then how the data was made, its use and its limits."""
    front = yaml.safe_dump(dict(header), allow_unicode=True, sort_keys=False)
    body = [
        f"# {settings.pretty_name}",
        "",
        "Chinese instruction-following records made by self-instruct from seed tasks, "
        "cleaned and split into nested sample-size variants by "
        "belle-kedro (a reproducible rebuild of BELLE's data pipeline as a Kedro "
        "project). Load one variant:",
        "",
        "```python",
        "from datasets import load_dataset",
        f'ds = load_dataset("path/or/repo", name="{header["configs"][0]["config_name"]}")',
        "```",
        "",
        "Columns: `instruction`, `input` (empty when none), `output`, `category` "
        "(the task's class where known), `source` (where the record came from). "
        "`exports/` holds the same records as BELLE JSON lines, Alpaca JSON, ShareGPT "
        "JSON and OpenAI `messages` JSON lines; `dataset_info.json` lists them for "
        "LLaMA-Factory.",
        "",
        *_generation_lines(records.generation_summary, records),
        *_clean_lines(records.clean_report),
        *_review_lines(records.review_report),
        *_split_lines(records.split_report, records, sources),
        *_eval_lines(records.eval_macro, records.champion),
        *_reproduce_lines(records),
        limitations(model=False),
    ]
    return f"---\n{front}---\n\n" + "\n".join(body)


def dataset_folder(
    holdout: pd.DataFrame,
    variants: Mapping[str, pd.DataFrame],
    records: RunRecords,
    settings: DatasetReleaseSettings,
) -> dict[str, str | bytes]:
    """Every file of the dataset folder, keyed by its path inside it."""
    sizes = {name: len(frame) for name, frame in variants.items()}
    for name, frame in variants.items():
        expected = records.split_report["variants"][name]["digest"]
        if records_digest(frame) != expected:
            raise ValueError(
                f"{name}.train_data does not match split_report (digest differs): "
                "the release must read the same run's records"
            )
    default = str(records.champion.get("variant") or next(iter(variants)))
    files: dict[str, str | bytes] = {}
    per_shard = settings.max_records_per_shard
    for name, frame in variants.items():
        files.update(parquet_shards(frame, f"data/{name}", "train", per_shard))
        files.update(export_files(frame, name, settings.system_prompt))
    files.update(parquet_shards(holdout, f"data/{HOLDOUT}", "test", per_shard))
    files.update(export_files(holdout, HOLDOUT, settings.system_prompt))
    names = {**dict.fromkeys(variants, "train"), HOLDOUT: "test"}
    info = dataset_info(names, settings.prefix, settings.system_prompt is not None)
    files["dataset_info.json"] = json.dumps(info, ensure_ascii=False, indent=2) + "\n"
    sources = {name: source_counts(frame) for name, frame in variants.items()}
    sources[HOLDOUT] = source_counts(holdout)
    files["README.md"] = dataset_card(
        card_header(settings, sizes, default), records, settings, sources
    )
    return files
