"""Label Studio, as the review needs it: project, import, export, through label-studio-sdk.

The SDK is the ``review`` extra (``pip install 'belle-kedro[review]'``), pinned to
2.0.19: the newest release whose dependencies fit the project's pins (2.0.20 and
later cap numpy below 2.3 or pydantic-core below 2.44; docs/review.md). It is imported only
when a server is used, so reading an exported file needs nothing extra. Every failure
names the server's address and the call; nothing is written when one fails.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from belle_kedro.pipelines.review.settings import ServerSettings

if TYPE_CHECKING:
    from label_studio_sdk import LabelStudio as Client


class ReviewServerError(RuntimeError):
    """Label Studio unreachable or refusing a request; names the URL."""


def _sdk() -> type[Client]:
    try:
        from label_studio_sdk import LabelStudio as Client
    except ImportError:
        raise ReviewServerError(
            "label-studio-sdk is not installed: pip install 'belle-kedro[review]' "
            "(scripts/install.sh installs it)"
        ) from None
    return Client


@dataclass(frozen=True)
class LabelStudio:
    """One Label Studio server reached with one user's token (an SDK client)."""

    url: str
    client: Client

    @classmethod
    def connect(cls, url: str, token: str, timeout_s: float) -> LabelStudio:
        """A client of the server at ``url``."""
        url = url.rstrip("/")
        return cls(url, _sdk()(base_url=url, api_key=token, timeout=timeout_s))

    @classmethod
    def of(cls, settings: ServerSettings, token: str | None) -> LabelStudio:
        """The server of ``review.label_studio``; its token from the environment."""
        if settings.url is None:
            raise ReviewServerError("review.label_studio.url is null: no server to use")
        if not token:
            raise ReviewServerError(
                f"no API token for Label Studio at {settings.url}: set the environment "
                f"variable {settings.token_env} (Account & Settings -> Access Token)"
            )
        return cls.connect(settings.url, token, settings.timeout_s)

    @contextmanager
    def calling(self, what: str) -> Iterator[None]:
        """Turn the SDK's transport and HTTP errors into one naming the URL and call."""
        import httpx
        from label_studio_sdk.core.api_error import ApiError

        try:
            yield
        except httpx.TransportError as error:
            raise ReviewServerError(
                f"Label Studio at {self.url} is unreachable ({what}): "
                f"{type(error).__name__}; is the server started (docs/review.md)?"
            ) from None
        except ApiError as error:
            raise ReviewServerError(
                f"Label Studio at {self.url} refused {what}: HTTP "
                f"{error.status_code} {str(error.body)[:200]}"
            ) from None

    def find_project(self, title: str) -> int | None:
        """The id of the project called ``title``, or None."""
        with self.calling("projects.list"):
            projects: Iterable[Any] = self.client.projects.list(title=title)
            matches = [p.id for p in projects if p.title == title and p.id is not None]
        return min(matches) if matches else None

    def ensure_project(self, title: str, label_config: str) -> int:
        """The project called ``title`` (created with ``label_config`` when absent)."""
        found = self.find_project(title)
        if found is not None:
            with self.calling(f"projects.update({found})"):
                self.client.projects.update(found, label_config=label_config)
            return found
        with self.calling("projects.create"):
            created = self.client.projects.create(
                title=title, label_config=label_config
            )
        if created.id is None:
            raise ReviewServerError(
                f"Label Studio at {self.url} created project {title!r} without an id"
            )
        return created.id

    def export(self, project: int) -> list[dict[str, Any]]:
        """Every task of ``project`` with its annotations (Label Studio's JSON export)."""
        with self.calling(f"projects.exports.download_sync({project})"):
            body = b"".join(
                self.client.projects.exports.download_sync(
                    project, export_type="JSON", download_all_tasks=True
                )
            )
        try:
            answer = json.loads(body)
        except ValueError:
            answer = None
        if not isinstance(answer, list):
            raise ReviewServerError(
                f"Label Studio at {self.url}: the export of project {project} is not a "
                "JSON list of tasks"
            )
        return answer

    def record_ids(self, project: int) -> set[str]:
        """The ``record_id`` of every task already in ``project``."""
        with self.calling(f"tasks.list(project={project})"):
            tasks: Iterable[Any] = self.client.tasks.list(project=project)
            return {str(task.data.get("record_id")) for task in tasks if task.data}

    def import_new(self, project: int, tasks: list[dict[str, Any]]) -> int:
        """Import the tasks whose record is not in ``project`` yet; how many were new."""
        present = self.record_ids(project)
        # Our tasks are Label Studio's import JSON already; the SDK sends them as they are.
        new: list[Any] = [t for t in tasks if t["data"]["record_id"] not in present]
        if new:
            with self.calling(f"projects.import_tasks({project})"):
                self.client.projects.import_tasks(project, request=new)
        return len(new)
