"""CLIP-based metrics for real models: alignment score and zero-shot attack success.

* alignment: mean_i cos(E_img(x_i), E_txt(p_i)) over generated images x_i of prompts p_i
  (CLIP score without the ×100 / clipping of Hessel et al. 2021).
* attack success (Nightshade §5.2): generate images for prompts of poisoned concept A; CLIP
  classifies each zero-shot among the prompts of all candidate concepts (argmax cosine); success
  = share classified as target B. ``source_accuracy`` is the share still classified as A.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import torch

from core.data.captioned import to_uint8_image


class Embedder(Protocol):
    """What :class:`core.models.dual.ClipEmbedder` offers (L2-normalised outputs)."""

    def encode_images(self, images: list[Any]) -> np.ndarray: ...

    def encode_texts(self, texts: list[str]) -> np.ndarray: ...


def to_pil(images: torch.Tensor | np.ndarray) -> list[Any]:
    """(N, 3, S, S) in [-1, 1] → list of PIL RGB images."""
    arr = images.detach().float().cpu().numpy() if isinstance(images, torch.Tensor) else images
    return [to_uint8_image(x) for x in arr]


def clip_alignment(embedder: Embedder, images: list[Any], prompts: list[str]) -> np.ndarray:
    """Per-image cosine (N,) between CLIP image and text embeddings of matching prompts."""
    if len(images) != len(prompts):
        raise ValueError(f"{len(images)} images but {len(prompts)} prompts; give one per image")
    x = embedder.encode_images(images)
    y = embedder.encode_texts(prompts)
    return np.sum(x * y, axis=1)


def zero_shot(embedder: Embedder, images: list[Any], class_prompts: list[str]) -> np.ndarray:
    """Index (N,) of the best-matching class prompt for each image (argmax cosine)."""
    return np.argmax(zero_shot_scores(embedder, images, class_prompts)["cosine"], axis=1)


def zero_shot_scores(
    embedder: Embedder, images: list[Any], class_prompts: list[str]
) -> dict[str, np.ndarray]:
    """CLIP zero-shot classification of N images among K class prompts.

    Returns ``image_emb`` (N, d), ``cosine`` (N, K) = cos(E_img(x_i), E_txt(p_k)), ``probs`` (N, K)
    = softmax_k(τ · cosine) with CLIP's learned temperature τ = exp(logit_scale) (100 for
    ViT-B/32; 100 if the embedder has no CLIP model), ``pred`` (N,) = argmax_k and ``incoherence``
    (N,) = H(probs_i) / log K ∈ [0, 1], the normalised entropy (1: CLIP cannot tell which concept
    the image shows, 0: it is sure).
    """
    if len(class_prompts) < 2:
        raise ValueError(f"need ≥ 2 class prompts for zero-shot scores, got {len(class_prompts)}")
    x = embedder.encode_images(images)
    cos = x @ embedder.encode_texts(class_prompts).T
    scale = getattr(getattr(embedder, "model", None), "logit_scale", None)
    tau = float(scale.detach().exp()) if scale is not None else 100.0
    z = tau * cos.astype(np.float64)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    entropy = -(p * np.log(np.clip(p, 1e-300, None))).sum(axis=1)
    return {
        "image_emb": x,
        "cosine": cos,
        "probs": p,
        "pred": np.argmax(cos, axis=1),
        "incoherence": entropy / np.log(len(class_prompts)),
    }


def attack_success(
    embedder: Embedder, images: list[Any], concepts: list[str], source: str, target: str
) -> dict[str, float]:
    """Share of ``images`` (generated for ``source``) that CLIP puts in ``target``'s class among
    ``concepts`` (class prompt "a photo of a {c}"), and the share still put in ``source``."""
    for c in (source, target):
        if c not in concepts:
            raise ValueError(f"{c!r} is not among the concepts {concepts}; add it to --concepts")
    pred = zero_shot(embedder, images, [f"a photo of a {c}" for c in concepts])
    return {
        "attack_success": float(np.mean(pred == concepts.index(target))),
        "source_accuracy": float(np.mean(pred == concepts.index(source))),
        "n": len(images),
    }


def evaluate_attack(
    sd: Any,
    embedder: Embedder,
    concepts: list[str],
    source: str,
    target: str,
    samples: int = 8,
    seed: int = 0,
    steps: int = 25,
    guidance: float = 7.5,
) -> dict[str, Any]:
    """Generate ``samples`` images of every concept ("a photo of a {c}") with ``sd``; report the
    mean CLIP alignment per concept and the attack success of ``source`` → ``target``."""
    per: dict[str, float] = {}
    src_images: list[Any] = []
    for c in concepts:
        prompts = [f"a photo of a {c}"] * samples
        imgs = to_pil(sd.sample(prompts, seed=seed, steps=steps, guidance=guidance))
        per[c] = float(clip_alignment(embedder, imgs, prompts).mean())
        if c == source:
            src_images = imgs
    if not src_images:
        raise ValueError(f"source {source!r} is not among the concepts {concepts}")
    others = [v for c, v in per.items() if c not in (source, target)]
    return {
        "alignment": per,
        "alignment_unpoisoned_mean": float(np.mean(others)) if others else None,
        **attack_success(embedder, src_images, concepts, source, target),
    }
