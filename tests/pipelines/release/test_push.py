"""release.push: both folders arrive at a loopback Hub; the token is sent, never logged."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from belle_kedro.common.config import build
from belle_kedro.datasets.credentials import Credentials
from belle_kedro.pipelines.release.model_folder import ReleaseError
from belle_kedro.pipelines.release.push import push_release
from belle_kedro.pipelines.release.settings import PushSettings
from tests.support.hub_server import FakeHubServer
from tests.support.project import declared

TOKEN = "hf_loopbackSECRET123"


def _folders(tmp_path: Path, variants: tuple[str, ...]) -> tuple[Path, Path]:
    dataset = tmp_path / "dataset"
    (dataset / "data" / "small").mkdir(parents=True)
    (dataset / "README.md").write_text(
        "---\nlicense: apache-2.0\n---\n# 数据\n", encoding="utf-8"
    )
    (dataset / "data" / "small" / "train-00000-of-00001.parquet").write_bytes(
        b"PAR1\x00\x01"
    )
    models = tmp_path / "models"
    for variant in variants:
        (models / variant).mkdir(parents=True)
        (models / variant / "config.json").write_text('{"model_type": "bloom"}')
        (models / variant / "model.safetensors").write_bytes(bytes(range(256)) * 4)
    return dataset, models


def _settings(endpoint: str, **changes: object) -> PushSettings:
    wanted = {
        "enabled": True,
        "endpoint": endpoint,
        "dataset_repo": "me/belle-data",
        "model_repo": "me/belle-sft",
        **changes,
    }
    params = declared("release", "push", **wanted)
    return build(PushSettings, params, "release.push")


def _files(folder: Path) -> dict[str, bytes]:
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in folder.rglob("*")
        if path.is_file()
    }


def test_upload_folder_sends_every_file_with_the_token(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset, models = _folders(tmp_path, ("xlarge",))
    caplog.set_level(logging.DEBUG)
    with FakeHubServer() as hub:
        result = push_release(
            dataset, models, Credentials({"token": TOKEN}), _settings(hub.endpoint)
        )
    assert hub.unknown == []
    assert hub.files["datasets/me/belle-data"] == _files(dataset)
    assert hub.files["models/me/belle-sft"] == _files(models / "xlarge")
    assert [c.get("type", "model") for c in hub.created] == ["dataset", "model"]
    assert {c["visibility"] for c in hub.created} == {"private"}
    assert set(hub.authorizations) == {f"Bearer {TOKEN}"}
    assert set(result["commits"]) == {"me/belle-data", "me/belle-sft"}
    assert TOKEN not in str(result) and TOKEN not in caplog.text


def test_several_variants_go_to_one_repo_each(tmp_path: Path) -> None:
    dataset, models = _folders(tmp_path, ("small", "large"))
    with FakeHubServer() as hub:
        push_release(
            dataset, models, Credentials({"token": TOKEN}), _settings(hub.endpoint)
        )
    assert set(hub.files) == {
        "datasets/me/belle-data",
        "models/me/belle-sft-small",
        "models/me/belle-sft-large",
    }


def test_push_without_a_token_is_refused_before_any_request(tmp_path: Path) -> None:
    dataset, models = _folders(tmp_path, ("xlarge",))
    with (
        FakeHubServer() as hub,
        pytest.raises(ReleaseError, match="huggingface: token"),
    ):
        push_release(dataset, models, Credentials({}), _settings(hub.endpoint))
    assert hub.authorizations == []


def test_push_off_sends_nothing(tmp_path: Path) -> None:
    dataset, models = _folders(tmp_path, ("xlarge",))
    with FakeHubServer() as hub:
        result = push_release(
            dataset,
            models,
            Credentials({"token": TOKEN}),
            _settings(hub.endpoint, enabled=False),
        )
    assert result == {"pushed": False} and hub.authorizations == []


def test_push_needs_both_repos() -> None:
    from belle_kedro.common.config import ParameterError

    with pytest.raises(ParameterError, match="release.push.dataset_repo"):
        _settings("http://127.0.0.1:1", dataset_repo=None)
