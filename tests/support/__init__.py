"""Helpers and constants shared by test folders, imported as ``tests.support.<topic>``.

conftest.py files hold fixtures only: pytest imports every folder's conftest under the same
name, so a test that imported a helper from "conftest" got whichever folder's was loaded last.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
