"""Upload the release folders to a Hugging Face Hub (or any server speaking its API).

Off by default: the project never needs the network. With ``release.push.enabled`` the
token comes from the ``huggingface`` section of ``conf/local/credentials.yml`` only;
it is handed to :class:`huggingface_hub.HfApi` and never logged or returned.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from belle_kedro.pipelines.release.model_folder import ReleaseError
from belle_kedro.pipelines.release.settings import PushSettings


def _upload(api: Any, folder: Path, repo_id: str, repo_type: str, private: bool) -> str:
    api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
    info = api.upload_folder(
        folder_path=str(folder),
        repo_id=repo_id,
        repo_type=repo_type,
        commit_message="belle-kedro release",
    )
    return str(info.commit_url)


def push_release(
    dataset_folder: Path,
    model_folders: Path,
    credentials: Mapping[str, Any],
    settings: PushSettings,
) -> dict[str, Any]:
    """Upload the dataset folder and each model folder; the commit URLs, by repo.

    One released variant goes to ``model_repo``; several go to ``<model_repo>-<variant>``.
    """
    if not settings.enabled:
        return {"pushed": False}
    token = credentials.get("token")
    if not isinstance(token, str) or not token:
        raise ReleaseError(
            "release.push.enabled is true but conf/local/credentials.yml has no "
            "`huggingface: token:`; add it there (never in parameters)"
        )
    from huggingface_hub import HfApi

    api = HfApi(endpoint=settings.endpoint, token=token)
    assert settings.dataset_repo and settings.model_repo  # PushSettings.check
    commits = {
        settings.dataset_repo: _upload(
            api, dataset_folder, settings.dataset_repo, "dataset", settings.private
        )
    }
    variants = sorted(path for path in model_folders.iterdir() if path.is_dir())
    for folder in variants:
        repo = (
            settings.model_repo
            if len(variants) == 1
            else f"{settings.model_repo}-{folder.name}"
        )
        commits[repo] = _upload(api, folder, repo, "model", settings.private)
    return {"pushed": True, "endpoint": settings.endpoint, "commits": commits}
