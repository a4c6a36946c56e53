"""StrictParametersHook: conf/base declares every parameter; envs and --params only change values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from kedro.framework.session import KedroSession

from belle_kedro.common.config import ParameterError
from belle_kedro.hooks.parameters import undeclared_keys


def _write_env(project: Path, env: str, name: str, content: dict) -> None:
    folder = project / "conf" / env
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(content), encoding="utf-8")


def test_undeclared_keys_are_named_dotted_and_open_blocks_take_any_key():
    declared = {
        "generate": {"llm": {"timeout_s": 1}, "sampling": {"temperature": 1.0}},
        "evaluate": {"report": {"published": None}},
    }
    values = {
        "generate": {
            "llm": {"timeout_s": 2, "time_out_s": 3},
            "sampling": {"presence_penalty": 0.5},
            "extra": 1,
        },
        "evaluate": {"report": {"published": {"label": "x", "overall": {1: 0.5}}}},
    }
    assert sorted(undeclared_keys(values, declared)) == [
        "generate.extra",
        "generate.llm.time_out_s",
    ]
    assert list(undeclared_keys({"generate": {"llm": 5}}, declared)) == [
        "generate.llm (must be a mapping)"
    ]


def test_a_misspelled_key_in_an_env_stops_the_session(kedro_project: Path):
    _write_env(
        kedro_project,
        "typo",
        "parameters_generate.yml",
        {"generate": {"max_in_fligh": 8}},
    )
    with KedroSession.create(project_path=kedro_project, env="typo") as session:
        with pytest.raises(ParameterError, match=r"generate\.max_in_fligh"):
            session.load_context()


def test_a_misspelled_runtime_parameter_stops_the_session(kedro_project: Path):
    with KedroSession.create(
        project_path=kedro_project,
        runtime_params={"evaluate": {"judge": {"sampels": 5}}},
    ) as session:
        with pytest.raises(ParameterError, match=r"evaluate\.judge\.sampels"):
            session.load_context()


def test_every_shipped_env_declares_only_known_keys(kedro_project: Path):
    for env in ("openai", "belle", "zh_instructions"):
        with KedroSession.create(project_path=kedro_project, env=env) as session:
            params = session.load_context().params
        assert params["split"]["variant_sizes"]
