"""Cross-attention maps: which pixels each prompt word attends to, clean level beside poisoned."""

from pathlib import Path

import streamlit as st

from core.figures.images import overlay_heatmap, upscale
from core.results.pack import list_models
from pages._present import intro
from pages._ui import current_pack, pack_key, route_through_app, run_banner

route_through_app()

intro(
    "Cross-attention maps",
    "Which pixels each word of the prompt looks at, clean model beside poisoned: in a healthy "
    "model the colour and shape words light up the object; after implosion the maps blur or "
    "drift.",
    "poisoned",
)
st.caption(
    "Attention of the denoiser's cross-attention layers, averaged over heads, layers and "
    "denoising steps. Bright = the word is used there. Each level of a run is its fine-tune's "
    "saved weights (a rank-1 LoRA: kilobytes) put back on the base it was trained from."
)

NO_WEIGHTS = (
    "This run saved no fine-tuned weights, so only the base model can be shown. Runs made "
    "with this version keep every level's weights in `weights/`: start one from **Poison "
    "setup**, or run `implosion sweep --preset cpu-quick --out runs/my-sweep`, and open it "
    "in the sidebar."
)


@st.cache_resource(show_spinner=False, max_entries=2)
def load_base(path: str):
    """The base model and its UNet fingerprint (what a level's weights must have been trained on)."""
    from core.models.adapter import unet_fingerprint
    from core.models.ldm import MiniLDM

    ldm = MiniLDM.from_pretrained(Path(path))
    return ldm, unet_fingerprint(ldm.unet)


@st.cache_resource(show_spinner=False, max_entries=4)
def load_level(base: str, root: str, c_p: int, seed: int, stamp: float):
    """The base with level (c_p, seed)'s weights (read through the validating reader)."""
    from core.analysis.attention import level_model
    from core.results.weights import read_level_weights

    ldm, sha = load_base(base)
    return level_model(ldm, read_level_weights(Path(root), c_p, seed), sha)


@st.cache_data(show_spinner=False, max_entries=32)
def maps_for(base: str, level: tuple | None, prompt: str, seed: int, steps: int):
    """(image, tokens, maps) of the base (``level`` None) or of (root, c_p, seed, stamp)."""
    from core.analysis.attention import cross_attention_maps

    ldm = load_base(base)[0] if level is None else load_level(base, *level)
    return cross_attention_maps(ldm, prompt, seed=seed, steps=steps)


def base_folder(pack, models: dict[str, Path]) -> Path:
    """The base a pack's weights apply to: the model folder its config names when the app knows
    that folder (the shipped base or a model under runs/), else the shipped base. A pack is
    untrusted: it never makes the page load a folder of its own choosing."""
    known = {p.resolve(): p for p in models.values()}
    named = (pack.config.get("model") if pack is not None else None) or None
    if named and Path(str(named)).resolve() in known:
        return known[Path(str(named)).resolve()]
    from core.io import default_base

    return default_base()


def panel(
    col, title: str, note: str, base: Path, level: tuple | None, prompt: str, seed: int,
    steps: int, words: list[str] | None = None,
):  # fmt: skip
    """One column: the generated image and one overlay per prompt word (only ``words`` if
    given: the concept's own words), or why it cannot be drawn."""
    with col:
        st.subheader(title)
        st.caption(note)
        try:
            with st.spinner("Sampling and recording cross-attention…"):
                image, tokens, maps = maps_for(str(base), level, prompt, seed, steps)
        except (ValueError, FileNotFoundError) as e:  # BrokenPack is a ValueError
            st.error(f"Maps unavailable: {e}")
            return
        keep = [i for i, t in enumerate(tokens) if words is None or t in words]
        st.image(upscale(image, 6), caption="generated image", width=192)
        overlays = [upscale(overlay_heatmap(image, maps[i]), 4) for i in keep]
        st.image(overlays, caption=[tokens[i] for i in keep], width=120)


def concept_label(pack, c_p: int, seed: int):
    """Label of concept i at level (c_p, seed): its name, group and, if poisoned, its target."""
    try:
        groups = pack.groups(c_p, seed)
    except ValueError:  # the pack records no plan for this seed: names only
        groups = {"poisoned": [], "related": [], "unrelated": []}
    plan = pack.seed_plan(seed)
    targets = plan[1] if plan else {}
    group_of = {i: g for g, ids in groups.items() for i in ids}
    names = pack.concepts

    def label(i: int) -> str:
        g = group_of.get(i, "unpoisoned")
        if g == "poisoned" and i in targets:
            return f"{names[i]} — poisoned (→ {names[targets[i]]})"
        return f"{names[i]} — {g}"

    order = groups["poisoned"] + groups["related"] + groups["unrelated"]
    order += [i for i in range(len(names)) if i not in order]
    return order, label


models = list_models()
pack = current_pack()
if pack is not None:
    run_banner(pack)
base = base_folder(pack, models)
if not (base / "model.json").is_file():
    st.info(
        "No model to inspect yet: the shipped base (assets/base) is missing. Build it with "
        "`implosion train-base --out assets/base` (or restore it with `git checkout assets/`), "
        "then fine-tune with poison from **Poison setup**."
    )
    st.stop()

saved: list[tuple[int, int]] = []
problem = None
if pack is not None:
    from core.results.weights import weights_levels

    try:
        saved = weights_levels(pack.root)
    except ValueError as e:  # a link in weights/: shown, never followed
        problem = f"This run's weights folder cannot be read: {e}"
first = None
if pack is not None and saved:
    from core.analysis.attention import default_comparison

    first = default_comparison(saved, len(pack.concepts), pack.shown_seed)

if first is None or pack is None:
    if saved and problem is None:
        problem = "This run saved only its clean level's weights; showing the base model."
    st.info(problem or NO_WEIGHTS)
    p1, p2, p3 = st.columns([3, 1, 1])
    prompt = p1.text_input("Prompt", "a photo of a large red star", key="att_prompt")
    seed = p2.number_input("Sample seed", 0, 10_000, 0, key="att_seed")
    steps = p3.number_input("DDIM steps", 2, 50, 20, key="att_steps")
    if st.button("Compute maps", key="att_go"):
        note = "The model every run fine-tunes from."
        panel(st.container(), "Base model (clean)", note, base, None, prompt, int(seed), int(steps))
    st.stop()

stamp = pack_key(pack)[1]
seeds = sorted({s for _, s in saved})
a, b = st.columns(2)
run_seed = a.selectbox("Run seed (its own poisoned concepts)", seeds, seeds.index(first[1]),
                       key="att_run_seed")  # fmt: skip
levels = [c for c, s in saved if s == run_seed and c > 0]
if not levels:
    st.info(f"Seed {run_seed} saved no poisoned level's weights; choose another seed.")
    st.stop()
start = first[0] if first[1] == run_seed and first[0] in levels else levels[-1]
label_cp = "Poisoned level C_P (concepts poisoned)"
if len(levels) > 1:
    c_p = b.select_slider(label_cp, levels, value=start, key=f"att_cp_{run_seed}")
else:  # a slider of one stop draws as a lone dot
    c_p = b.selectbox(label_cp, levels, key=f"att_cp_{run_seed}")
order, label = concept_label(pack, c_p, run_seed)
p1, p2, p3 = st.columns([3, 1, 1])
concept = p1.selectbox(
    "Prompt (concept)", order, 0, format_func=label, key=f"att_c_{run_seed}_{c_p}"
)
prompt = f"a photo of a {pack.concepts[concept]}"
seed = p2.number_input("Sample seed", 0, 10_000, 0, key="att_seed")
steps = p3.number_input("DDIM steps", 2, 50, 20, key="att_steps")
if st.button("Compute maps", key="att_go"):
    st.session_state["att_shown"] = True
if st.session_state.get("att_shown"):
    st.caption(f"Prompt: “{prompt}”, same noise in both columns.")
    left, right = st.columns(2)
    root = str(pack.root)
    words = pack.concepts[concept].split()
    if (0, run_seed) in saved:
        note = "Fine-tuned like every level, on clean pairs only."
        clean = ("Clean: C_P 0", note, (root, 0, run_seed, stamp))
    else:
        clean = ("Clean: base model", "This run saved no C_P 0 level.", None)
    panel(left, *clean[:2], base, clean[2], prompt, int(seed), int(steps), words)
    note = f"{c_p} concept{'s' if c_p != 1 else ''} poisoned in run seed {run_seed}."
    if (pack.config.get("finetune") or {}).get("params") == "all":  # core.models.adapter.COVERS
        note += " Only its cross-attention weights were saved: the rest of the UNet is the base's."
    level = (root, c_p, run_seed, stamp)
    panel(right, f"Poisoned: C_P {c_p}", note, base, level, prompt, int(seed), int(steps), words)
