"""StrictParametersHook: conf/base declares every parameter; envs and --params only change values.

Every block of every shipped env goes through its stage's settings class, and a mis-set
key in any (nested) settings class is refused by its dotted name. The stages come from
the hook's own table, so a stage added there is covered here too.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Union

import pytest
import yaml
from kedro.framework.startup import bootstrap_project

from belle_kedro.common.config import ParameterError, build
from belle_kedro.common.parameters import load_parameters
from belle_kedro.hooks.parameters import STAGE_SETTINGS, check_stages, settings_class
from belle_kedro.llm.registry import lookup, registered_names
from belle_kedro.llm.settings import BackendChoice, LLMSettings
from tests.support.project import REPO_ROOT, open_session

ENVS = ("base", "openai", "belle", "zh_instructions")
STAGES = sorted(STAGE_SETTINGS)


@pytest.fixture(scope="module")
def env_parameters() -> dict[str, dict[str, Any]]:
    """Each shipped env's parameters, base merged softly under it (as a session reads them)."""
    bootstrap_project(REPO_ROOT)
    return {env: load_parameters(REPO_ROOT / "conf", env) for env in ENVS}


def _options(hint: Any) -> tuple[Any, ...]:
    """The alternatives of a union annotation, or the annotation alone."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        return typing.get_args(hint)
    return (hint,)


def _settings_classes(hint: Any) -> list[type]:
    """The settings classes a field's annotation holds (``X``, ``X | None``)."""
    return [
        option
        for option in _options(hint)
        if isinstance(option, type) and dataclasses.is_dataclass(option)
    ]


def _nested(
    cls: type, values: Mapping[str, Any], path: tuple[str, ...]
) -> Iterator[tuple[type, tuple[str, ...]]]:
    """``cls`` and every settings class inside it, with its path in the block."""
    if cls is LLMSettings:
        # A registry's block: the backend choice, then one block per backend.
        yield from _nested(BackendChoice, values, path)
        for name in registered_names():
            if name in values:
                yield from _nested(lookup(name).settings, values[name], (*path, name))
        return
    yield cls, path
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        value = values[field.name]
        hint = hints[field.name]
        for inner in _settings_classes(hint):
            if isinstance(value, Mapping):
                yield from _nested(inner, value, (*path, field.name))
        args = typing.get_args(hint)
        if typing.get_origin(hint) is dict and _settings_classes(args[-1]):
            for key, entry in value.items():
                yield from _nested(args[-1], entry, (*path, field.name, key))


def _takes_a_mapping(hint: Any) -> bool:
    return any(
        option in (dict, Mapping) or typing.get_origin(option) in (dict, Mapping)
        for option in _options(hint)
    )


def _mis_set_field(cls: type) -> tuple[str, Any]:
    """A field of ``cls`` and a value its annotation refuses (plain fields first)."""
    hints = typing.get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls) if hints[f.name] is not Any]
    fields.sort(key=lambda name: bool(_settings_classes(hints[name])))
    name = fields[0]
    return name, "mis-set" if _takes_a_mapping(hints[name]) else {"mis": "set"}


def _at(block: Mapping[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    """The sub-block of ``block`` at ``path``."""
    for key in path:
        block = block[key]
    return dict(block)


def _replaced(
    block: Mapping[str, Any], path: tuple[str, ...], sub_block: dict[str, Any]
) -> dict[str, Any]:
    """A copy of ``block`` with ``sub_block`` at ``path``."""
    if not path:
        return sub_block
    head, *rest = path
    return {**block, head: _replaced(block[head], tuple(rest), sub_block)}


@pytest.mark.parametrize("env", ENVS)
@pytest.mark.parametrize("stage", STAGES)
def test_every_block_of_every_env_builds_its_settings(
    env_parameters: dict[str, dict[str, Any]], env: str, stage: str
) -> None:
    settings: object = build(settings_class(stage), env_parameters[env][stage], stage)
    assert isinstance(settings, settings_class(stage))


@pytest.mark.parametrize("stage", STAGES)
def test_a_mis_set_key_of_every_settings_class_is_named(
    env_parameters: dict[str, dict[str, Any]], stage: str
) -> None:
    block = env_parameters["base"][stage]
    for cls, path in _nested(settings_class(stage), block, ()):
        where = ".".join((stage, *path))
        name, wrong = _mis_set_field(cls)
        sub_block = _at(block, path)
        mis_typed = _replaced(block, path, {**sub_block, name: wrong})
        with pytest.raises(ParameterError) as refused:
            build(settings_class(stage), mis_typed, stage)
        assert f"{where}.{name}" in str(refused.value), (cls.__name__, refused.value)
        typo = {
            (f"{key}_typo" if key == name else key): v for key, v in sub_block.items()
        }
        misspelled = _replaced(block, path, typo)
        with pytest.raises(ParameterError, match=rf"{re.escape(where)}\.{name}_typo\b"):
            build(settings_class(stage), misspelled, stage)


def _write_env(project: Path, env: str, name: str, content: dict) -> None:
    folder = project / "conf" / env
    folder.mkdir(exist_ok=True)
    (folder / name).write_text(yaml.safe_dump(content), encoding="utf-8")


def test_a_block_of_no_stage_is_refused() -> None:
    with pytest.raises(ParameterError, match="unknown parameter block.*genrate"):
        check_stages({**load_parameters(REPO_ROOT / "conf", "base"), "genrate": {}})


def test_a_misspelled_key_in_an_env_stops_the_session(kedro_project: Path) -> None:
    _write_env(
        kedro_project,
        "typo",
        "parameters_generate.yml",
        {"generate": {"max_in_fligh": 8}},
    )
    with open_session(kedro_project, env="typo") as session:
        with pytest.raises(ParameterError, match=r"generate\.max_in_fligh"):
            session.load_context()


def test_a_misspelled_runtime_parameter_stops_the_session(kedro_project: Path) -> None:
    with open_session(
        kedro_project,
        runtime_params={"evaluate": {"judge": {"sampels": 5}}},
    ) as session:
        with pytest.raises(ParameterError, match=r"evaluate\.judge\.sampels"):
            session.load_context()


def test_a_mis_set_stage_key_in_an_env_stops_the_session(kedro_project: Path) -> None:
    _write_env(
        kedro_project,
        "typo",
        "parameters_clean.yml",
        {"clean": {"matching": {"minhash": {"permutations": 4}}}},
    )
    with open_session(kedro_project, env="typo") as session:
        with pytest.raises(
            ParameterError,
            match=r"^clean\.matching\.minhash\.permutations must be ≥ rows_per_band",
        ):
            session.load_context()


def test_a_wrong_typed_runtime_parameter_stops_the_session(kedro_project: Path) -> None:
    with open_session(
        kedro_project,
        runtime_params={"split": {"mix_in": {"mode": "everywhere"}}},
    ) as session:
        with pytest.raises(
            ParameterError, match=r"^split\.mix_in\.mode must be one of"
        ):
            session.load_context()


def test_every_shipped_env_declares_only_known_keys(kedro_project: Path) -> None:
    for env in ("openai", "belle", "zh_instructions"):
        with open_session(kedro_project, env=env) as session:
            params = session.load_context().params
        assert params["split"]["variant_sizes"]
