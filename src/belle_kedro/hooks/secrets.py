"""Keeps credential values out of every log record (owner: generate)."""

from kedro.framework.hooks import hook_impl


class SecretRedactionHook:
    """TODO(generate helper): install a logging filter that masks credential values."""

    @hook_impl
    def after_context_created(self, context) -> None:  # noqa: D401
        return None
