"""The sample-size variants, named once in ``parameters_split.yml``.

Kedro builds pipelines before it reads configuration, so the registry reads the variant
names straight from the conf folder. Names live in ``conf/base`` and every environment
keeps them (``conf/belle`` only changes their sizes), so ``kedro run --env=belle`` and
``kedro run`` build the same namespaces. ``KEDRO_ENV`` may add or reorder variants.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

SPLIT_PARAMETERS = "parameters_split.yml"
# The project root: src/belle_kedro/variants.py, two folders up (an editable install).
PROJECT_ROOT = Path(__file__).resolve().parents[2]


def _variant_sizes_in(env_dir: Path) -> dict[str, int] | None:
    path = env_dir / SPLIT_PARAMETERS
    if not path.is_file():
        return None
    params = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    sizes = (params.get("split") or {}).get("variant_sizes")
    return dict(sizes) if sizes else None


def variant_names(conf_root: Path | None = None, env: str | None = None) -> list[str]:
    """Variant namespaces, smallest first, from ``conf/base`` overlaid by ``env``."""
    root = conf_root or PROJECT_ROOT / "conf"
    env = env if env is not None else os.environ.get("KEDRO_ENV")
    sizes = _variant_sizes_in(root / "base") or {}
    if env and env != "base":
        sizes = _variant_sizes_in(root / env) or sizes
    return sorted(sizes, key=lambda name: sizes[name])
