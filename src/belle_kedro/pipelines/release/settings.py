"""Typed settings of the release pipeline: the whole ``release`` block.

Defaults live in ``conf/base/parameters_release.yml``.
"""

from __future__ import annotations

from dataclasses import dataclass

from belle_kedro.common.config import InvalidSetting, Settings, setting


@dataclass(frozen=True)
class DatasetReleaseSettings(Settings):
    """``release.dataset``: the dataset folder, its card and its exports."""

    pretty_name: str = setting("the dataset card's title")
    license: str = setting("license id in the card's YAML header")
    language: list[str] = setting("language codes in the card's YAML header")
    max_records_per_shard: int = setting("records per Parquet shard")
    system_prompt: str | None = setting("system turn of the chat exports; null: none")
    prefix: str = setting("LLaMA-Factory dataset names: <prefix>_<variant>_<format>")

    def check(self) -> None:
        if self.max_records_per_shard < 1:
            raise InvalidSetting("max_records_per_shard", "must be at least 1")


@dataclass(frozen=True)
class ModelReleaseSettings(Settings):
    """``release.model``: the model folders and their cards."""

    license: str = setting("license id in the model card's YAML header")
    language: list[str] = setting("language codes in the model card's YAML header")
    max_shard_size: str = setting("safetensors shard size (transformers' notation)")


@dataclass(frozen=True)
class PushSettings(Settings):
    """``release.push``: the optional upload with huggingface_hub."""

    enabled: bool = setting("upload the folders (needs a token in the credentials)")
    endpoint: str = setting("the Hub's URL")
    dataset_repo: str | None = setting("dataset repo id (owner/name)")
    model_repo: str | None = setting("model repo id (owner/name)")
    private: bool = setting("create the repos private")

    def check(self) -> None:
        if self.enabled and not (self.dataset_repo and self.model_repo):
            raise InvalidSetting(
                "dataset_repo", "and model_repo must both be set when enabled is true"
            )


@dataclass(frozen=True)
class ReleaseSettings(Settings):
    """The whole ``release`` block."""

    variants: str | list[str] = setting(
        "champion: one model folder, the champion's version; all: every variant; or "
        "a list of variant names"
    )
    dataset: DatasetReleaseSettings = setting("the dataset folder")
    model: ModelReleaseSettings = setting("the model folders")
    push: PushSettings = setting("the optional upload")

    def check(self) -> None:
        if isinstance(self.variants, str) and self.variants not in ("champion", "all"):
            raise InvalidSetting(
                "variants",
                f"must be champion, all or a list of names, got {self.variants!r}",
            )
