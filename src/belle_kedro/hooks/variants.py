"""Builds the variant namespaces and the review switch from the session's own configuration."""

from __future__ import annotations

from typing import Any

from kedro.framework.hooks import hook_impl

from belle_kedro.common.variants import use_session_parameters


class VariantsFromConfigHook:
    """Hands the session's ``split.variant_sizes`` and ``review.enabled`` to the registry.

    ``KedroSession.run`` creates the context (this hook) before it first reads the
    pipelines, so ``--env`` and ``--params`` decide which namespaces exist and what
    split reads. When a later session in the same process (a notebook, a test) names
    other variants or switches the review, the cached pipelines are rebuilt.
    """

    @hook_impl
    def after_context_created(self, context: Any) -> None:
        if use_session_parameters(context.params):
            from kedro.framework.project import PACKAGE_NAME, pipelines

            pipelines.configure(f"{PACKAGE_NAME}.pipeline_registry")
