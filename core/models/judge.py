"""The judge: a small CNN that reads size, colour and shape off an image.

Used to score generations: a concept counts as correct when all three heads are right. Because a
judge can be confidently wrong, :func:`judge_scores` also reports *incoherence*: the mean
normalised entropy of the three heads (0 = certain, 1 = uniform), and the *undefined rate*: the
share of images on which some head's top probability is below ``undefined_threshold``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from core.io import atomic_write_json, atomic_write_with


class Judge(nn.Module):
    """CNN with three heads. Input (N, 3, S, S) in [-1, 1]; output logits per attribute."""

    def __init__(self, n_sizes: int, n_colours: int, n_shapes: int, width: int = 32) -> None:
        super().__init__()
        self.head_sizes = (n_sizes, n_colours, n_shapes)
        w = width

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]

        self.features = nn.Sequential(
            *block(3, w),
            *block(w, w),
            nn.MaxPool2d(2),
            *block(w, 2 * w),
            *block(2 * w, 2 * w),
            nn.MaxPool2d(2),
            *block(2 * w, 4 * w),
            nn.AdaptiveMaxPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * w, sum(self.head_sizes))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Logits ``[(N, n_sizes), (N, n_colours), (N, n_shapes)]``."""
        return list(torch.split(self.head(self.features(x)), list(self.head_sizes), dim=1))

    def loss(self, x: torch.Tensor, attrs: torch.Tensor) -> torch.Tensor:
        """Sum of cross-entropies; ``attrs`` (N, 3) int64 (size, colour, shape)."""
        logits = self(x)
        return sum(nn.functional.cross_entropy(lg, attrs[:, i]) for i, lg in enumerate(logits))  # type: ignore[return-value]

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write_with(path / "model.safetensors", lambda p: save_file(state, str(p)))
        n_sizes, n_colours, n_shapes = self.head_sizes
        width = self.features[0].out_channels  # type: ignore[union-attr]
        atomic_write_json(
            path / "config.json",
            {"n_sizes": n_sizes, "n_colours": n_colours, "n_shapes": n_shapes, "width": width},
        )

    @staticmethod
    def load(path: Path) -> Judge:
        path = Path(path)
        cfg = json.loads((path / "config.json").read_text())
        judge = Judge(**cfg)
        judge.load_state_dict(load_file(str(path / "model.safetensors")))
        return judge.eval()


@dataclass(frozen=True)
class JudgeScores:
    """Per-image judgement. predicted: (N,) concept ids; correct: (N,) bool; entropy: (N,)."""

    predicted: torch.Tensor
    attrs: torch.Tensor
    entropy: torch.Tensor
    undefined: torch.Tensor


@torch.no_grad()
def judge_scores(
    judge: Judge,
    images: torch.Tensor,
    attribute_ids: torch.Tensor,
    undefined_threshold: float = 0.6,
    batch: int = 512,
) -> JudgeScores:
    """Judge images (N, 3, S, S) in [-1, 1] against the world's (K, 3) attribute table."""
    preds, ents, undef = [], [], []
    for i in range(0, images.shape[0], batch):
        logits = judge(images[i : i + batch].float())
        probs = [lg.softmax(-1) for lg in logits]
        preds.append(torch.stack([p.argmax(-1) for p in probs], 1))
        h = sum(-(p * p.clamp_min(1e-12).log()).sum(-1) for p in probs)
        hmax = sum(math.log(p.shape[1]) for p in probs)
        ents.append(h / hmax)  # type: ignore[operator]
        undef.append(
            torch.stack([p.max(-1).values for p in probs], 1).min(1).values < undefined_threshold
        )
    attrs = torch.cat(preds)
    match = (attrs[:, None, :] == attribute_ids[None].to(attrs.device)).all(-1)
    predicted = torch.where(
        match.any(1), match.float().argmax(1), torch.full_like(match[:, 0], -1, dtype=torch.long)
    )
    return JudgeScores(predicted, attrs, torch.cat(ents), torch.cat(undef))
