"""Implosion Lab: routing only. Each page lives in pages/ and reads like its screen."""

import streamlit as st

st.set_page_config(page_title="Implosion Lab", page_icon=":material/science:", layout="wide")

PAGES = {
    "Learn": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
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
        st.Page("pages/jobs.py", title="Jobs", icon=":material/timer:", url_path="jobs"),
    ],
}

st.navigation(PAGES, expanded=True).run()
