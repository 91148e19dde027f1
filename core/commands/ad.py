"""``implosion ad``: Alignment Difficulty of image/text embedding pairs.

    implosion ad --embeddings FILE.npz [--alpha A] [--scale LO HI | --no-scale] [--sample N]
                 [--labels KEY] [--json]
    implosion ad --dataset DIR [--clip PATH] [same options, without --labels]

FILE.npz holds ``image`` and ``text`` (n×d each) and optionally labels under KEY. ``--json`` prints
one line ``{"ad", "feature", "structure", "n", "alpha", "scale"}`` (+ ``ci`` with --sample,
+ ``per_concept`` with --labels).
"""

from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from core.metrics.ad import CLIP_SCALE, ADResult


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "ad",
        help="Alignment Difficulty (AD) of image/text embedding pairs",
        description="Alignment Difficulty AD = α·D_fea + (1−α)·D_stru (Ding et al., CCS 2024).",
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument(
        "--embeddings", type=Path, metavar="FILE.npz", help="npz with arrays image, text (n×d)"
    )
    src.add_argument(
        "--dataset", type=Path, metavar="DIR", help="folder of images with same-name .txt captions"
    )
    p.add_argument(
        "--clip", metavar="PATH", default=None, help="dual-encoder weights for --dataset"
    )
    p.add_argument("--alpha", type=float, default=0.8, help="weight of D_fea in [0, 1] (0.8)")
    scale = p.add_mutually_exclusive_group()
    scale.add_argument(
        "--scale",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help=f"rescale matched cosines [LO, HI] → [0, 1] (default {CLIP_SCALE[0]} {CLIP_SCALE[1]},"
        " CLIP ViT-B/32)",
    )
    scale.add_argument("--no-scale", action="store_true", help="use raw matched cosines")
    p.add_argument(
        "--sample", type=int, metavar="N", help="estimate D_stru from N random pairs (95%% CI)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the pair sampler (0)")
    p.add_argument("--labels", metavar="KEY", help="npz array of concept ids: per-concept shares")
    p.add_argument("--batch-size", type=int, default=32, help="images per batch for --dataset")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    p.set_defaults(func=run)


def load_npz(path: Path, labels_key: str | None) -> tuple[np.ndarray, np.ndarray, Any]:
    """Arrays ``image``, ``text`` (and ``labels_key``) of an npz, loaded with allow_pickle=False."""
    if not path.is_file():
        raise ValueError(f"--embeddings: {path} does not exist or is not a file")
    fix = "save it with np.savez(FILE, image=..., text=...)"
    with open(path, "rb") as fh:
        magic = fh.read(6)
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06", b"\x93NUMPY")):
        # np.load would call any other file "pickled data" and suggest loading it unsafely
        raise ValueError(f"--embeddings: {path} is not an .npz archive (not a NumPy file); {fix}")
    try:
        z = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"--embeddings: {path} is not a readable .npz file ({e}); {fix}") from e
    if not isinstance(z, np.lib.npyio.NpzFile):
        raise ValueError(f"--embeddings: {path} holds a single array, not an .npz archive; {fix}")
    with z:
        keys = sorted(z.files)
        missing = [k for k in ("image", "text") if k not in keys]
        if missing:
            raise ValueError(
                f"--embeddings: {path.name} has no array(s) {', '.join(missing)}; arrays present: "
                f"{', '.join(keys) or 'none'}; {fix}"
            )
        if labels_key is not None and labels_key not in keys:
            raise ValueError(
                f"--labels: {path.name} has no array {labels_key!r}; arrays present: "
                f"{', '.join(keys)}"
            )
        out: list[Any] = []
        for key in ("image", "text", labels_key):
            if key is None:
                out.append(None)
                continue
            try:
                out.append(z[key])
            except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
                raise ValueError(
                    f"--embeddings: array {key!r} in {path.name} cannot be read ({e}); "
                    "store plain numeric arrays (no Python objects)"
                ) from e
    return out[0], out[1], out[2]


def _embed_dataset(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray]:
    from core.metrics.folder import embed_folder, summarise_skips

    try:
        from core.models.dual import load_embedder
    except ImportError as e:
        raise ValueError(
            f"--dataset: the dual encoder is not available in this install "
            f"(core.models.dual.load_embedder: {e}); embed the pairs yourself and pass "
            "--embeddings FILE.npz"
        ) from e
    embedder = load_embedder(args.clip)
    emb = embed_folder(args.dataset, embedder, batch_size=args.batch_size)
    for line in summarise_skips(emb):
        print(f"implosion ad: {line}", file=sys.stderr)
    return emb.image, emb.text


def run(args: argparse.Namespace) -> int:
    from core.metrics.ad import alignment_difficulty
    from core.metrics.decompose import per_concept

    if args.dataset is not None:
        if args.labels is not None:
            raise ValueError("--labels: only available with --embeddings FILE.npz")
        image, text = _embed_dataset(args)
        labels = None
    else:
        if args.clip is not None:
            raise ValueError("--clip: only used with --dataset DIR")
        image, text, labels = load_npz(args.embeddings, args.labels)
    scale = None if args.no_scale else (tuple(args.scale) if args.scale else CLIP_SCALE)
    kw: dict[str, Any] = {"alpha": args.alpha, "scale": scale}
    shares = None
    if labels is not None:
        result, shares = per_concept(
            image, text, labels, sample=args.sample, seed=args.seed, labels_field="--labels", **kw
        )
    else:
        on_step = _exact_feedback(image, text, kw) if args.sample is None else None
        result = alignment_difficulty(
            image, text, sample=args.sample, seed=args.seed, on_step=on_step, **kw
        )
    out = result.to_dict()
    if shares is not None:
        out["per_concept"] = {str(s.label): s.to_dict() for s in shares}
    if args.json:
        print(json.dumps(out))
    else:
        print(format_table(result, out.get("per_concept")))
    return 0


LONG_EXACT_N = 20_000  # exact AD above this many pairs gets the --sample hint and a progress bar


def _exact_feedback(image: Any, text: Any, kw: dict[str, Any]) -> Any:
    """For a long exact AD: print the --sample hint on stderr and return an
    ``on_step(done, total)`` progress bar (with time left, measured as blocks finish); None for
    small inputs."""
    from tqdm.auto import tqdm

    n = len(image)
    if n < LONG_EXACT_N:
        return None
    print(
        f"implosion ad: exact AD on {n:,} pairs compares every pair (n² = {n * n:.2g}), so time "
        f"grows with n²; progress and time left below. For an estimate with a 95 % CI in time "
        f"∝ N instead, add --sample N (e.g. --sample 1000000)",
        file=sys.stderr,
        flush=True,
    )
    bar = tqdm(total=None, desc="exact AD", unit="block", file=sys.stderr, mininterval=1.0)

    def on_step(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    return on_step


def format_table(result: ADResult, per_concept: dict[str, Any] | None = None) -> str:
    """Short human-readable summary of an AD result."""
    a = result.alpha
    if result.scale is None:
        scale = "none (raw cosines)"
    else:
        scale = f"[{result.scale[0]:g}, {result.scale[1]:g}] ({result.calibration})"
    lines = [
        f"Alignment Difficulty  n={result.n:,}  alpha={a:g}  scale={scale}",
        f"  {'term':<8}{'value':>10}{'weight':>9}",
        f"  {'D_fea':<8}{result.d_fea:>10.4f}{a:>9.2f}",
        f"  {'D_stru':<8}{result.d_stru:>10.4f}{1 - a:>9.2f}",
        f"  {'AD':<8}{result.ad:>10.4f}",
    ]
    if result.ci is not None:
        lo, hi = result.ci["ad"]
        slo, shi = result.ci["structure"]
        lines.append(
            f"  95% CI from {result.samples:,} sampled pairs: AD [{lo:.4f}, {hi:.4f}], "
            f"D_stru [{slo:.4f}, {shi:.4f}] (D_fea exact)"
        )
    if per_concept:
        lines.append(f"  {'concept':<12}{'n':>7}{'D_fea':>10}{'D_stru':>10}{'AD':>10}")
        for label, s in per_concept.items():
            lines.append(
                f"  {label:<12}{s['n']:>7}{s['feature']:>10.4f}{s['structure']:>10.4f}"
                f"{s['ad']:>10.4f}"
            )
        lines.append("  (concept shares sum to the totals above)")
    return "\n".join(lines)
