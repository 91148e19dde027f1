"""Stable Diffusion 1.x / 2.x in diffusers format, behind the MiniLDM interface.

``load_sd(path_or_id)`` reads the standard pipeline layout::

    model_index.json
    tokenizer/      CLIPTokenizer (vocab.json + merges.txt, or tokenizer.json)
    text_encoder/   transformers CLIPTextModel
    vae/            diffusers AutoencoderKL
    unet/           diffusers UNet2DConditionModel
    scheduler/      any diffusers scheduler config (training uses DDPM with the same betas)

and returns a :class:`RealSD` that offers what the rest of the code uses from ``MiniLDM``
(``tokenize``, ``encode_prompts``, ``sample``, ``encode_images`` / ``decode_latents``, ``.unet``,
``.vae``, ``.scheduler``, ``.device``, ``latent_shape``, ``save_pretrained`` / ``from_pretrained``),
so ``core.finetune.finetune_unet`` / ``make_pairs`` and ``core.poison.nightshade_perturb`` work
unchanged. SDXL (two text encoders) is detected and refused with a clear error.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel

from core.models.sampling import LatentDiffusion

SUBFOLDERS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
SDXL_MARKERS = ("text_encoder_2", "tokenizer_2")
HOW_TO_GET = (
    "download a diffusers-format Stable Diffusion 1.x/2.x folder on a machine with network "
    "(e.g. `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir "
    "DIR`), copy it here and pass --model DIR"
)


@dataclass
class RealSD(LatentDiffusion):
    """A loaded SD model. ``scheduler`` is a DDPMScheduler with the model's training betas;
    ``resolution`` is the native image size (unet.sample_size × VAE downsampling)."""

    default_guidance = 7.5  # SD's usual CFG scale
    sample_batch = 8
    decode_batch = 16

    tokenizer: Any
    text_encoder: CLIPTextModel
    vae: AutoencoderKL
    unet: UNet2DConditionModel
    scheduler: DDPMScheduler
    device: torch.device = torch.device("cpu")
    resolution: int = 512
    source: str = ""

    # ------------------------------------------------------------------ basics
    def to(self, device: str | torch.device) -> RealSD:
        """Move every module to ``device`` (returns self)."""
        self.device = torch.device(device)
        for m in (self.text_encoder, self.vae, self.unet):
            m.to(self.device)
        return self

    def eval(self) -> RealSD:
        """Put every module in eval mode (returns self)."""
        for m in (self.text_encoder, self.vae, self.unet):
            m.eval()
        return self

    @property
    def vae_scale(self) -> int:
        """Pixel-to-latent downsampling factor, 2^(number of VAE blocks − 1) (8 for SD)."""
        return int(2 ** (len(self.vae.config.block_out_channels) - 1))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """(C, s, s) of one latent at ``resolution``."""
        s = self.resolution // self.vae_scale
        return (int(self.unet.config.in_channels), s, s)

    @property
    def prediction_type(self) -> str:
        """``epsilon`` (SD 1.x, SD 2 base) or ``v_prediction`` (SD 2.x 768)."""
        return str(self.scheduler.config.prediction_type)

    def n_parameters(self) -> dict[str, int]:
        """Parameter count per module."""
        mods = {"text_encoder": self.text_encoder, "vae": self.vae, "unet": self.unet}
        return {k: sum(p.numel() for p in m.parameters()) for k, m in mods.items()}

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the standard diffusers SD layout (loadable by ``StableDiffusionPipeline`` too)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(path / "tokenizer"))
        self.text_encoder.save_pretrained(str(path / "text_encoder"))
        self.vae.save_pretrained(str(path / "vae"))
        self.unet.save_pretrained(str(path / "unet"))
        self.scheduler.save_pretrained(str(path / "scheduler"))
        index = {
            "_class_name": "StableDiffusionPipeline",
            "_diffusers_version": _version("diffusers"),
            "tokenizer": ["transformers", type(self.tokenizer).__name__],
            "text_encoder": ["transformers", type(self.text_encoder).__name__],
            "vae": ["diffusers", "AutoencoderKL"],
            "unet": ["diffusers", "UNet2DConditionModel"],
            "scheduler": ["diffusers", type(self.scheduler).__name__],
            "safety_checker": [None, None],
            "feature_extractor": [None, None],
            "requires_safety_checker": False,
        }
        if extra:  # kept out of model_index.json so diffusers pipelines load the folder as is
            (path / "implosion.json").write_text(json.dumps(extra, indent=2, default=str))
        # written last: its presence marks a complete folder
        (path / "model_index.json").write_text(json.dumps(index, indent=2))

    @staticmethod
    def from_pretrained(
        path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> RealSD:
        """Same as :func:`load_sd`."""
        return load_sd(path, device, dtype)

    # ------------------------------------------------------------------ encoders
    @torch.no_grad()
    def encode_prompts(self, prompts: list[str], check: bool = True) -> torch.Tensor:
        """Cross-attention context (N, L, D): CLIP text last hidden states. ``check`` is accepted
        for MiniLDM compatibility (a real BPE tokenizer has no unknown words)."""
        return self.text_encoder(input_ids=self.tokenize(list(prompts)))[0]


# ---------------------------------------------------------------------- loading
def load_sd(
    path_or_id: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RealSD:
    """Load an SD 1.x/2.x diffusers folder (or a hub id when the network is allowed).

    Raises FileNotFoundError for a missing folder/component and ValueError for SDXL, a hub id
    while offline (``HF_HUB_OFFLINE=1``), corrupt files or mismatched components; every message
    says what to obtain and where to put it.
    """
    from diffusers.utils import logging as dlog
    from transformers import CLIPTokenizer
    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    src = str(path_or_id)
    local = Path(src).expanduser()
    if local.exists():
        check_sd_folder(local)
        root: str = str(local)
    else:
        root = _hub_source(src)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(root, subfolder="text_encoder", dtype=dtype)
        vae = AutoencoderKL.from_pretrained(root, subfolder="vae", torch_dtype=dtype)
        unet = UNet2DConditionModel.from_pretrained(root, subfolder="unet", torch_dtype=dtype)
        sched_cfg = DDPMScheduler.load_config(root, subfolder="scheduler")
    except (OSError, ValueError, KeyError, json.JSONDecodeError, RuntimeError) as e:
        raise ValueError(
            f"model {src}: could not load ({type(e).__name__}: {str(e)[:300]}); {HOW_TO_GET}"
        ) from e
    scheduler = DDPMScheduler.from_config(_ddpm_config(sched_cfg))
    check_components(text_encoder, vae, unet, src)
    scale = int(2 ** (len(vae.config.block_out_channels) - 1))
    sd = RealSD(
        tokenizer,
        text_encoder,
        vae,
        unet,
        scheduler,
        resolution=int(unet.config.sample_size) * scale,
        source=src,
    )
    for m in (text_encoder, vae, unet):
        m.requires_grad_(False)
    return sd.to(device).eval()


def check_sd_folder(path: Path) -> dict[str, Any]:
    """Validate the folder layout; returns model_index.json (or {} if absent but complete)."""
    if not path.is_dir():
        raise FileNotFoundError(f"model {path}: not a folder; {HOW_TO_GET}")
    index: dict[str, Any] = {}
    if (path / "model_index.json").is_file():
        try:
            index = json.loads((path / "model_index.json").read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"model {path}: model_index.json is not valid JSON ({e})") from e
    if (
        any(k in index for k in SDXL_MARKERS)
        or "XL" in str(index.get("_class_name", ""))
        or any((path / k).is_dir() for k in SDXL_MARKERS)
    ):
        raise ValueError(
            f"model {path}: SDXL (two text encoders) is not supported yet; use a Stable "
            f"Diffusion 1.x/2.x folder (e.g. stable-diffusion-v1-5 or stable-diffusion-2-1-base)"
        )
    if (path / "model.json").is_file() and (path / "clip").is_dir():
        raise ValueError(
            f"model {path}: this is a mini model folder (model.json, clip/); use it with the "
            f"mini-model commands, or pass a diffusers SD folder to `implosion real`"
        )
    missing = [s for s in SUBFOLDERS if not (path / s).is_dir()]
    no_config = [
        s
        for s in ("text_encoder", "vae", "unet")
        if s not in missing and not (path / s / "config.json").is_file()
    ]
    if missing or no_config:
        what = [f"{s}/" for s in missing] + [f"{s}/config.json" for s in no_config]
        raise FileNotFoundError(
            f"model {path}: missing {', '.join(what)} (expected the diffusers layout "
            f"{'/, '.join(SUBFOLDERS)}/ + model_index.json); {HOW_TO_GET}"
        )
    return index


def check_components(text_encoder: Any, vae: Any, unet: Any, src: str = "model") -> None:
    """ValueError if the parts cannot work together (context width, latent channels)."""
    hidden = int(text_encoder.config.hidden_size)
    xdim = unet.config.cross_attention_dim
    xdims = xdim if isinstance(xdim, list | tuple) else [xdim]
    if any(int(d) != hidden for d in xdims):
        raise ValueError(
            f"model {src}: unet cross_attention_dim {xdim} ≠ text_encoder hidden_size {hidden}; "
            f"text_encoder/ and unet/ come from different models — take both from the same "
            f"checkpoint (SD 1.x: 768, SD 2.x: 1024)"
        )
    lat = int(vae.config.latent_channels)
    if int(unet.config.in_channels) != lat:
        raise ValueError(
            f"model {src}: unet in_channels {unet.config.in_channels} ≠ vae latent_channels {lat} "
            f"(inpainting/depth UNets are not supported); use a text-to-image SD checkpoint"
        )


def _hub_source(repo_id: str) -> str:
    """A hub id is used only when the network is allowed (or the files are already cached)."""
    if "/" not in repo_id or repo_id.startswith((".", "/", "~")) or repo_id.count("/") > 1:
        raise FileNotFoundError(f"model {repo_id}: no such folder; {HOW_TO_GET}")
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
    if offline:
        try:
            from huggingface_hub import snapshot_download

            return str(snapshot_download(repo_id, local_files_only=True))
        except Exception as e:  # noqa: BLE001 — any cache miss means "not available offline"
            raise ValueError(
                f"model {repo_id}: HF_HUB_OFFLINE=1 and it is not in the local cache "
                f"({type(e).__name__}); {HOW_TO_GET}"
            ) from e
    return repo_id


def _ddpm_config(cfg: dict[str, Any]) -> dict[str, Any]:
    """The training schedule of any SD scheduler config (PNDM/DDIM/Euler share the betas)."""
    keys = (
        "num_train_timesteps",
        "beta_start",
        "beta_end",
        "beta_schedule",
        "trained_betas",
        "prediction_type",
        "steps_offset",
        "timestep_spacing",
        "rescale_betas_zero_snr",
    )
    out = {k: cfg[k] for k in keys if k in cfg and cfg[k] is not None}
    out.setdefault("prediction_type", "epsilon")
    out["clip_sample"] = False  # SD never clips latents
    return out


def _version(pkg: str) -> str:
    from importlib.metadata import version

    return version(pkg)
