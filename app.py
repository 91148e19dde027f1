"""Implosion Lab: routing only. Each page lives in pages/ and reads like its screen.

Before the page runs, a class server shows its join form and stops until a right code
(pages/_class.py); then the sidebar gets what every page shares: the run picker and the presenter
mode switch (both also in the URL: ``?pack=…&present=1``).
"""

from pathlib import Path

# Imported once, before any page draws: plotly looks pandas and PIL.Image up in sys.modules when it
# checks a figure's values, so a session drawing a figure while another session's thread was still
# importing one of them for the first time (a table, an image) failed with "partially initialized
# module 'pandas'". An import statement waits for a module being imported; that lookup does not.
import pandas  # noqa: F401
import PIL.Image  # noqa: F401
import streamlit as st

from pages._class import class_gate, nav_position
from pages._present import PRESENTER_CSS, presenter, presenter_toggle
from pages._ui import run_picker

# The favicon is a file served by this server: a Material icon would be fetched from an internet
# font host (a broken icon and a console error in a lecture hall without network).
FAVICON = Path(__file__).parent / "assets" / "favicon.png"
st.set_page_config(
    page_title="Implosion Lab",
    page_icon=str(FAVICON) if FAVICON.is_file() else None,
    layout="wide",
    initial_sidebar_state="collapsed" if presenter() else "auto",
)

PAGES = {
    "Learn": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
        st.Page("pages/story.py", title="Story", icon=":material/slideshow:", url_path="story"),
        st.Page("pages/lesson.py", title="Lesson", icon=":material/school:", url_path="lesson"),
    ],
    "Explore results": [
        st.Page("pages/graph.py", title="Alignment graph", icon=":material/hub:", url_path="graph"),
        st.Page(
            "pages/trajectory.py",
            title="AD trajectory",
            icon=":material/show_chart:",
            url_path="trajectory",
        ),
        st.Page(
            "pages/generations.py",
            title="Generations",
            icon=":material/grid_view:",
            url_path="generations",
        ),
        st.Page(
            "pages/attention.py",
            title="Cross-attention",
            icon=":material/visibility:",
            url_path="attention",
        ),
        st.Page(
            "pages/compare.py",
            title="Compare & export",
            icon=":material/compare:",
            url_path="compare",
        ),
    ],
    "Run experiments": [
        st.Page(
            "pages/poison.py", title="Poison setup", icon=":material/science:", url_path="poison"
        ),
        st.Page("pages/audit.py", title="Audit", icon=":material/fact_check:", url_path="audit"),
        st.Page("pages/defend.py", title="Defend", icon=":material/shield:", url_path="defend"),
        st.Page("pages/jobs.py", title="Jobs", icon=":material/timer:", url_path="jobs"),
    ],
}

page = st.navigation(PAGES, expanded=True, position=nav_position())
class_gate(page.url_path)  # a class server: only the join form until a right code (pages/_class.py)
run_picker()
if presenter_toggle():
    st.html(PRESENTER_CSS)
page.run()
