"""notebooks/compare_variants.ipynb runs against a store holding variant runs."""

from __future__ import annotations

import mlflow
import nbformat
import pytest
from mlflow.tracking import MlflowClient
from nbclient import NotebookClient

from belle_kedro.hooks.mlflow_runs import VARIANT_TAG
from tests.support.project import REPO_ROOT

NOTEBOOK = REPO_ROOT / "notebooks" / "compare_variants.ipynb"
SIZES = {"small": 24, "medium": 48}


def log_variant_runs(tracking_uri: str) -> str:
    """A parent run with one child per variant, logged under the names the train pipeline uses."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("belle_kedro")
    with mlflow.start_run(run_name="__default__") as parent:
        for variant, size in SIZES.items():
            with mlflow.start_run(
                run_name=variant, nested=True, tags={VARIANT_TAG: variant}
            ):
                mlflow.log_params({"train_size": size, "variant": variant})
                for step in range(1, 5):
                    mlflow.log_metric("train_loss", 5.0 / step, step=step)
                    mlflow.log_metric("eval_loss", 5.5 / step, step=step)
                mlflow.log_metrics(
                    {
                        "train.train_loss": 1.2,
                        "train.eval_loss": 1.4,
                        "train.tokens_per_second": 900.0,
                        "train.padding_waste": 0.02,
                    }
                )
    return parent.info.run_id


@pytest.mark.slow
def test_the_notebook_tables_and_plots_the_latest_variants(kedro_project, mlflow_store):
    log_variant_runs(mlflow_store)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(kedro_project)}},
    ).execute()

    outputs = {
        cell.source.splitlines()[0]: cell.outputs
        for cell in notebook.cells
        if cell.cell_type == "code" and cell.source
    }
    table_html = next(
        out["data"]["text/plain"]
        for out in outputs["def final(run, key):"]
        if out.get("output_type") == "execute_result"
    )
    assert "small" in table_html and "medium" in table_html
    assert "0.02" in table_html and "900.0" in table_html
    plot_outputs = outputs[
        "fig, (train_axes, eval_axes) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)"
    ]
    assert any("image/png" in out.get("data", {}) for out in plot_outputs)
    assert MlflowClient().search_runs(
        [mlflow.get_experiment_by_name("belle_kedro").experiment_id]
    )
