"""Label Studio's REST API, as the review needs it: project, import, export.

Plain HTTP through ``requests`` (already a dependency of MLflow): label-studio-sdk
would downgrade numpy in the project's environment, so it stays in the Label Studio
server's own environment (scripts/install_label_studio.sh). Every failure names the
server's address and the request; nothing is written when one fails.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from belle_kedro.pipelines.review.settings import ServerSettings


class ReviewServerError(RuntimeError):
    """Label Studio unreachable or refusing a request; names the URL."""


@dataclass(frozen=True)
class LabelStudio:
    """One Label Studio server reached with one user's token."""

    url: str
    token: str
    timeout_s: float

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
        return cls(settings.url.rstrip("/"), token, settings.timeout_s)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """One API call; its JSON answer."""
        address = f"{self.url}{path}"
        try:
            answer = requests.request(
                method,
                address,
                headers={"Authorization": f"Token {self.token}"},
                timeout=self.timeout_s,
                **kwargs,
            )
        except requests.RequestException as error:
            raise ReviewServerError(
                f"Label Studio at {self.url} is unreachable ({method} {path}): "
                f"{type(error).__name__}; is the server started (docs/review.md)?"
            ) from None
        if answer.status_code >= 400:
            raise ReviewServerError(
                f"Label Studio at {self.url} refused {method} {path}: HTTP "
                f"{answer.status_code} {answer.text[:200]}"
            )
        return answer.json() if answer.content else None

    def find_project(self, title: str) -> int | None:
        """The id of the project called ``title``, or None."""
        answer = self.request(
            "GET", "/api/projects", params={"title": title, "page_size": 1000}
        )
        projects = answer["results"] if isinstance(answer, dict) else answer
        matches = [p["id"] for p in projects if p.get("title") == title]
        return min(matches) if matches else None

    def ensure_project(self, title: str, label_config: str) -> int:
        """The project called ``title`` (created with ``label_config`` when absent)."""
        found = self.find_project(title)
        if found is not None:
            self.request(
                "PATCH", f"/api/projects/{found}", json={"label_config": label_config}
            )
            return found
        created = self.request(
            "POST", "/api/projects", json={"title": title, "label_config": label_config}
        )
        return int(created["id"])

    def export(self, project: int) -> list[dict[str, Any]]:
        """Every task of ``project`` with its annotations (Label Studio's JSON export)."""
        answer = self.request(
            "GET",
            f"/api/projects/{project}/export",
            params={"exportType": "JSON", "download_all_tasks": "true"},
        )
        if not isinstance(answer, list):
            raise ReviewServerError(
                f"Label Studio at {self.url}: the export of project {project} is not a "
                "list of tasks"
            )
        return answer

    def import_new(self, project: int, tasks: list[dict[str, Any]]) -> int:
        """Import the tasks whose record is not in ``project`` yet; how many were new."""
        present = {task["data"].get("record_id") for task in self.export(project)}
        new = [task for task in tasks if task["data"]["record_id"] not in present]
        if new:
            self.request("POST", f"/api/projects/{project}/import", json=new)
        return len(new)
