"""“What this model reproduces”: the pack's measured claims and honest limits (core.analysis.claims)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.analysis.claims import Claim, PackClaims, pack_claims
from core.lesson.notes import implosion_note
from core.results.pack import RESULTS, Pack, load_pack

# plain glyphs in Streamlit colours: emoji fonts are missing on many projector laptops
MARK = {True: ":green[✓]", False: ":red[✗]", None: ":gray[–]"}


@st.cache_data(show_spinner=False, max_entries=16)
def _claims(root: str, stamp: float) -> dict:
    return pack_claims(load_pack(Path(root))).to_dict()


def _line(c: Claim) -> str:
    return f"{MARK[c.holds]} **{c.title}** — {c.detail}. *Target: {c.target}.*"


def _from_dict(d: dict) -> PackClaims:
    from core.analysis.claims import Interval

    claims = tuple(
        Claim(**{**c, "interval": Interval(**c["interval"]) if c["interval"] else None})
        for c in d["claims"]
    )
    return PackClaims(claims, tuple(d["limits"]))


def render_claims_panel(pack: Pack | Path | None) -> None:
    """An expander: the claims this pack reproduces (✓, measured numbers) and its honest limits
    (✗ targets missed, – not measured, notes from science.json). ``pack``: a loaded pack or a
    pack folder (Home passes the demo folder); None or a folder without results shows nothing."""
    if pack is None:
        return
    # duck-typed: a Pack cached by a server from before a code reload is another class object;
    # a Path has a .root of its own ("/"), so paths are checked first
    root = Path(pack) if isinstance(pack, (str, Path)) else Path(pack.root)
    path = root / RESULTS
    if not path.is_file():
        return
    try:
        pc = _from_dict(_claims(str(root), path.stat().st_mtime))
    except (FileNotFoundError, ValueError) as e:
        st.warning(f"Cannot check this pack's claims: {e}")
        return
    held = [c for c in pc.claims if c.holds]
    # collapsed: the label already says how many claims hold; the page's figures stay in view
    with st.expander(f"What this model reproduces — {len(held)} of {len(pc.claims)} claims hold"):
        st.markdown("\n".join(f"- {_line(c)}" for c in held) or "No claim holds on this pack.")
        if pc.limits:
            missed = {c.title: MARK[c.holds] for c in pc.claims if not c.holds}
            lines = [f"- {missed.get(t.split(':')[0], ':gray[•]')} {t}" for t in pc.limits]
            note = implosion_note(pc)
            if note:  # a ✗ beside a Story whose prompts visibly fail: say what each measures
                title = pc.get("implosion_ratio").title
                at = next((i for i, t in enumerate(pc.limits) if t.startswith(title)), None)
                lines.insert(len(lines) if at is None else at + 1, f"  - *{note}*")
            st.markdown("**Honest limits**\n" + "\n".join(lines))
        st.caption("Means over the pack's seeds with 95 % t-intervals (core/analysis/claims.py).")
