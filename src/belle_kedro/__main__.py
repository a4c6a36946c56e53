"""belle-kedro file for ensuring the package is executable
as `belle-kedro` and `python -m belle_kedro`; `python -m belle_kedro review push` pushes
the review tasks to Label Studio (docs/review.md).
"""

import sys
from pathlib import Path
from typing import Any

from kedro.framework.cli.utils import find_run_command
from kedro.framework.project import configure_project


def main(*args: Any, **kwargs: Any) -> Any:
    if sys.argv[1:2] == ["review"]:
        from belle_kedro.pipelines.review.push import main as review

        sys.exit(review(sys.argv[2:]))
    package_name = Path(__file__).parent.name
    configure_project(package_name)

    interactive = hasattr(sys, "ps1")
    kwargs["standalone_mode"] = not interactive

    run = find_run_command(package_name)
    return run(*args, **kwargs)


if __name__ == "__main__":
    main()
