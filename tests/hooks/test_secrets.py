"""Secrets: refused as parameters before MLflow sees them, masked in every log record."""

from __future__ import annotations

import logging

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from belle_kedro.common.config import ParameterError
from belle_kedro.hooks.secrets import (
    MASK,
    install_redaction,
    key_env_values,
    refuse_secret_parameters,
    secret_values,
)
from tests.support.project import open_session


def test_secret_looking_parameters_are_refused_by_name_without_their_value():
    params = {
        "generate": {"llm": {"api_key": "sk-live-0123456789", "api_key_env": "X"}},
        "train": {"hub": {"hf_token": "hf_abcdefghij"}, "max_tokens": 5},
        "evaluate": {"judge": {"request_params": {"max_tokens": 256}}},
    }
    with pytest.raises(ParameterError) as raised:
        refuse_secret_parameters(params, set())
    message = str(raised.value)
    assert "generate.llm.api_key" in message and "train.hub.hf_token" in message
    assert "llm.api_key_env" not in message and "max_tokens" not in message
    assert "sk-live" not in message and "hf_abc" not in message
    # Declared keys with no value, token budgets and tokenizers are not secrets.
    refuse_secret_parameters(
        {
            "llm": {"api_key": None, "api_key_env": "OPENAI_API_KEY"},
            "tokenizer": "bytes",
        },
        set(),
    )


def test_the_value_of_an_api_key_env_variable_is_refused_under_any_name(monkeypatch):
    monkeypatch.setenv("MY_JUDGE_VAR", "judge-value-4242")
    params = {
        "evaluate": {"judge": {"backend": {"api_key_env": "MY_JUDGE_VAR"}}},
        "generate": {"llm": {"base_url": "http://x/?k=judge-value-4242"}},
    }
    assert key_env_values(params) == {"judge-value-4242"}
    with pytest.raises(ParameterError, match=r"generate\.llm\.base_url"):
        refuse_secret_parameters(params, key_env_values(params))


def test_masking_covers_every_variable_an_api_key_env_names(monkeypatch, caplog):
    # The name does not look like a key, so only api_key_env says it holds one.
    monkeypatch.setenv("GATEWAY_PASS_PHRASE", "gw-phrase-987654")
    secrets = secret_values(params={"llm": {"api_key_env": "GATEWAY_PASS_PHRASE"}})
    assert "gw-phrase-987654" in secrets
    install_redaction(secrets)
    with caplog.at_level(logging.INFO):
        logging.getLogger("belle_kedro.test").info("sending %s", "gw-phrase-987654")
    assert caplog.records[-1].getMessage() == f"sending {MASK}"


@pytest.mark.slow
def test_a_kedro_run_with_a_key_in_a_parameter_fails_before_mlflow_logs_it(
    kedro_project, monkeypatch
):
    # A declared parameter (the strict hook accepts it) holding generate's key.
    secret = "sk-test-not-a-real-key-123"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with (
        open_session(
            kedro_project, runtime_params={"generate": {"llm": {"model": secret}}}
        ) as session,
        pytest.raises(ParameterError, match=r"generate\.llm\.model") as raised,
    ):
        session.run(pipeline_names=["split"])
    assert secret not in str(raised.value)
    client = MlflowClient(mlflow.get_tracking_uri())
    for experiment in client.search_experiments():
        for run in client.search_runs([experiment.experiment_id]):
            assert secret not in str(run.data.params)
