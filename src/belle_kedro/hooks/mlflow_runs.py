"""One MLflow child run per variant namespace (owner: train)."""

from kedro.framework.hooks import hook_impl


class VariantChildRunHook:
    """TODO(train helper): switch to the variant's nested MLflow run around its nodes."""

    @hook_impl
    def after_context_created(self, context) -> None:  # noqa: D401
        return None
