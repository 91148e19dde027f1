"""The app imports the modules plotly looks up in ``sys.modules`` once, before any page draws.

Plotly checks a figure's values against ``pandas`` and ``PIL.Image`` only if they are already in
``sys.modules`` (``get_module(..., should_load=False)``); a module another thread is still
importing is there half-built, so a session drawing a figure while another session's thread
imported pandas for the first time failed with "partially initialized module 'pandas'". An
``import`` statement waits for such a module, the lookup does not: app.py imports both first.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

RACE = textwrap.dedent(
    """
    import sys, threading
    import plotly.graph_objects as go
    {prologue}
    errors, done = [], threading.Event()

    def draw():  # a session drawing figures
        while not done.is_set():
            try:
                go.Figure(go.Scatter(x=[1, 2, 3], y=[3, 2, 1]))
            except Exception as e:
                errors.append(repr(e))
                return

    t = threading.Thread(target=draw)
    t.start()
    import pandas  # another session's first table
    done.set()
    t.join()
    print(errors[0] if errors else "ok")
    """
)


def _race(prologue: str) -> str:
    code = RACE.format(prologue=prologue)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_a_figure_drawn_during_a_first_pandas_import_fails_unless_imported_before():
    assert "partially initialized module 'pandas'" in _race("")
    assert _race("import pandas") == "ok"


def test_app_imports_them_before_any_page_module():
    body = ast.parse((ROOT / "app.py").read_text()).body
    order = [
        alias.name if isinstance(node, ast.Import) else node.module
        for node in body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    ]
    first_page = next(i for i, name in enumerate(order) if name and name.startswith("pages"))
    assert {"pandas", "PIL.Image"} <= set(order[:first_page]), order
