"""Pack fixtures' one recipe: an assets folder whose demo pack is synthetic (seconds to write)."""

from __future__ import annotations

from pathlib import Path

from core.results.synthetic import write_synthetic_demo_pack


def write_assets(tmp_path_factory: object, name: str = "assets") -> Path:
    """A fresh ``<tmp>/<name>`` assets folder with ``demo/``: 16 concepts, C_P 0, 2, 4, 8, 16."""
    assets: Path = tmp_path_factory.mktemp(name)  # type: ignore[attr-defined]
    write_synthetic_demo_pack(assets / "demo", n_concepts=16, levels=(0, 2, 4, 8, 16))
    return assets
