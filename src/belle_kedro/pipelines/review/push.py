"""``python -m belle_kedro review push``: create the Label Studio project, import the tasks.

Reads ``review_tasks`` and ``review_label_config`` (written by ``kedro run
--pipeline=review_tasks``) through the project's catalog, and ``review.label_studio``
from its parameters (``--env`` as for ``kedro run``). Tasks whose record is already in
the project are not imported again, so pushing twice is harmless.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from belle_kedro.common.config import build
from belle_kedro.pipelines.review.server import LabelStudio, ReviewServerError
from belle_kedro.pipelines.review.settings import ReviewSettings


def push(env: str | None, url: str | None) -> str:
    """Push the stored tasks; a one-line account of what was done."""
    from kedro.framework.session import KedroSession
    from kedro.framework.startup import bootstrap_project

    bootstrap_project(Path.cwd())
    with KedroSession.create(env=env) as session:
        context = session.load_context()  # type: ignore[attr-defined]
        settings = build(
            ReviewSettings, context.params["review"], "review"
        ).label_studio
        if url is not None:
            settings = type(settings)(
                url, settings.token_env, settings.project_title, settings.timeout_s
            )
        tasks = context.catalog.load("review_tasks")
        config = context.catalog.load("review_label_config")
    server = LabelStudio.of(settings, os.environ.get(settings.token_env))
    project = server.ensure_project(settings.project_title, config)
    new = server.import_new(project, tasks)
    return (
        f"Label Studio at {server.url}: project {settings.project_title!r} (id {project}), "
        f"{new} task(s) imported, {len(tasks) - new} already there"
    )


def main(argv: list[str]) -> int:
    """The ``review`` command line; its exit status."""
    parser = argparse.ArgumentParser(prog="python -m belle_kedro review")
    parser.add_argument("action", choices=["push"])
    parser.add_argument("--env", default=None, help="Kedro configuration environment")
    parser.add_argument("--url", default=None, help="overrides review.label_studio.url")
    arguments = parser.parse_args(argv)
    try:
        sys.stdout.write(push(arguments.env, arguments.url) + "\n")
    except ReviewServerError as error:
        sys.stderr.write(f"review push failed: {error}\n")
        return 1
    return 0
