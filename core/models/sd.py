"""Stable Diffusion 1.x / 2.x and SDXL base in diffusers format, behind the MiniLDM interface.

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
so ``core.training.finetune.finetune_unet`` / ``make_pairs`` and ``core.poison.builders.nightshade_perturb`` work
unchanged (for SD 1.x/2.x). An SDXL base folder (+ ``tokenizer_2/``, ``text_encoder_2/``) loads
into the same class; what the UNet is conditioned on comes from :meth:`RealSD.conditioning`
(:mod:`core.models.sdxl` for SDXL), which training and sampling use. SDXL refiners are refused.
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

from core.io import check_safetensors as check_safetensors  # re-exported
from core.models.sampling import Conditioning, LatentDiffusion
from core.models.sdxl import (
    HOW_TO_GET_SDXL,
    SDXL_PARTS,
    check_sdxl_components,
    check_sdxl_folder,
    is_sdxl_folder,
    load_sdxl_text,
    sdxl_conditioning,
)

SUBFOLDERS = ("tokenizer", "text_encoder", "vae", "unet", "scheduler")
HOW_TO_GET = (
    "download a diffusers-format Stable Diffusion 1.x/2.x folder on a machine with network "
    "(e.g. `huggingface-cli download stable-diffusion-v1-5/stable-diffusion-v1-5 --local-dir "
    "DIR`), copy it here and pass --model DIR"
)


@dataclass
class RealSD(LatentDiffusion):
    """A loaded SD model. ``scheduler`` is a DDPMScheduler with the model's training betas;
    ``resolution`` is the native image size (unet.sample_size × VAE downsampling). SDXL also has
    ``tokenizer_2`` / ``text_encoder_2`` (None for SD 1.x/2.x)."""

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
    tokenizer_2: Any = None
    text_encoder_2: Any = None
    force_zeros_for_empty_prompt: bool = False

    def __post_init__(self) -> None:
        if self.is_sdxl:  # the SDXL pipeline's default guidance; 1024 px wants smaller batches
            self.default_guidance, self.sample_batch, self.decode_batch = 5.0, 4, 4

    # ------------------------------------------------------------------ basics
    @property
    def is_sdxl(self) -> bool:
        """True for an SDXL base (two text encoders, size-conditioned UNet)."""
        return self.text_encoder_2 is not None

    @property
    def networks(self) -> dict[str, torch.nn.Module]:
        """The networks by folder name (``text_encoder_2`` only for SDXL)."""
        mods = {"text_encoder": self.text_encoder, "vae": self.vae, "unet": self.unet}
        if self.is_sdxl:
            mods["text_encoder_2"] = self.text_encoder_2
        return mods

    def to(self, device: str | torch.device) -> RealSD:
        """Move every module to ``device`` (returns self)."""
        self.device = torch.device(device)
        for m in self.networks.values():
            m.to(self.device)
        return self

    def eval(self) -> RealSD:
        """Put every module in eval mode (returns self)."""
        for m in self.networks.values():
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
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.networks.items()}

    # ------------------------------------------------------------------ save / load
    def save_pretrained(self, path: Path, extra: dict[str, Any] | None = None) -> None:
        """Write the standard diffusers layout (loadable by ``StableDiffusionPipeline`` or, for
        SDXL, ``StableDiffusionXLPipeline`` too)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        parts: dict[str, Any] = {"tokenizer": self.tokenizer, **self.networks}
        if self.is_sdxl:
            parts["tokenizer_2"] = self.tokenizer_2
        parts["scheduler"] = self.scheduler
        for name, part in parts.items():
            part.save_pretrained(str(path / name))
        classes = {k: type(v).__name__ for k, v in parts.items()}
        index = model_index(classes, self.is_sdxl, self.force_zeros_for_empty_prompt)
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
    def conditioning(
        self, prompts: list[str], check: bool = True, size: int | None = None
    ) -> Conditioning:
        """The UNet conditioning of ``prompts`` for images of ``size`` px (default
        ``resolution``): SD 1.x/2.x the CLIP last hidden states (N, L, D) alone; SDXL
        (:func:`core.models.sdxl.sdxl_conditioning`) both encoders' penultimate states plus
        ``text_embeds`` and ``time_ids``. ``check`` is accepted for MiniLDM compatibility."""
        if self.is_sdxl:
            return sdxl_conditioning(self, list(prompts), size or self.resolution)
        return Conditioning(self.text_encoder(input_ids=self.tokenize(list(prompts)))[0])

    def encode_prompts(self, prompts: list[str], check: bool = True) -> torch.Tensor:
        """Cross-attention context (N, L, D) (see :meth:`conditioning`; an SDXL UNet needs the
        added conditions too, so use :meth:`conditioning` to call it)."""
        return self.conditioning(prompts, check).context


def model_index(classes: dict[str, str], sdxl: bool, force_zeros: bool = True) -> dict[str, Any]:
    """model_index.json of a folder whose sub-folders hold ``classes`` (name → class name), as
    ``StableDiffusionPipeline`` or (``sdxl``) ``StableDiffusionXLPipeline`` expects it."""
    lib = {"vae": "diffusers", "unet": "diffusers", "scheduler": "diffusers"}
    index: dict[str, Any] = {
        "_class_name": "StableDiffusionXLPipeline" if sdxl else "StableDiffusionPipeline",
        "_diffusers_version": _version("diffusers"),
        **{k: [lib.get(k, "transformers"), v] for k, v in classes.items()},
    }
    if sdxl:
        return index | {"force_zeros_for_empty_prompt": force_zeros}
    no_checker = {"safety_checker": [None, None], "feature_extractor": [None, None]}
    return index | no_checker | {"requires_safety_checker": False}


# ---------------------------------------------------------------------- loading
def load_sd(
    path_or_id: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> RealSD:
    """Load an SD 1.x/2.x or SDXL base diffusers folder (or a hub id when the network is allowed).

    The family comes from the UNet: ``addition_embed_type="text_time"`` means SDXL, which also
    loads ``tokenizer_2/`` and ``text_encoder_2/``. In float16 an SDXL VAE that asks for it
    (``force_upcast``) stays float32 (the SDXL VAE overflows in fp16). Raises FileNotFoundError
    for a missing folder/component and ValueError for a refiner, a hub id while offline
    (``HF_HUB_OFFLINE=1``), corrupt files or mismatched components; every message says what to
    obtain and where to put it.
    """
    from diffusers.utils import logging as dlog
    from transformers import CLIPTokenizer
    from transformers.utils import logging as tlog

    tlog.disable_progress_bar()
    dlog.disable_progress_bar()
    src = str(path_or_id)
    local = Path(src).expanduser()
    index: dict[str, Any] = {}
    if local.exists():
        index = check_sd_folder(local)
        root: str = str(local)
    else:
        root = _hub_source(src)
    try:
        tokenizer = CLIPTokenizer.from_pretrained(root, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(
            root, subfolder="text_encoder", dtype=dtype, use_safetensors=True
        )
        unet = UNet2DConditionModel.from_pretrained(
            root, subfolder="unet", torch_dtype=dtype, use_safetensors=True
        )
        xl = unet.config.addition_embed_type == "text_time"
        tokenizer_2, text_encoder_2 = load_sdxl_text(root, dtype) if xl else (None, None)
        vae_cfg = AutoencoderKL.load_config(root, subfolder="vae")
        upcast = xl and dtype == torch.float16 and vae_cfg.get("force_upcast", True)
        vae_dtype = torch.float32 if upcast else dtype
        vae = AutoencoderKL.from_pretrained(
            root, subfolder="vae", torch_dtype=vae_dtype, use_safetensors=True
        )
        sched_cfg = DDPMScheduler.load_config(root, subfolder="scheduler")
    except (OSError, ValueError, KeyError, json.JSONDecodeError, RuntimeError) as e:
        raise ValueError(
            f"model {src}: could not load ({type(e).__name__}: {str(e)[:300]}); {HOW_TO_GET}"
        ) from e
    scheduler = DDPMScheduler.from_config(_ddpm_config(sched_cfg, src))
    check_components(text_encoder, vae, unet, src, text_encoder_2)
    if xl:
        check_sdxl_components(text_encoder, text_encoder_2, (tokenizer, tokenizer_2), unet, src)
    scale = int(2 ** (len(vae.config.block_out_channels) - 1))
    sd = RealSD(
        tokenizer,
        text_encoder,
        vae,
        unet,
        scheduler,
        resolution=int(unet.config.sample_size) * scale,
        source=src,
        tokenizer_2=tokenizer_2,
        text_encoder_2=text_encoder_2,
        force_zeros_for_empty_prompt=bool(index.get("force_zeros_for_empty_prompt", xl)),
    )
    for m in sd.networks.values():
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
    if (path / "model.json").is_file() and (path / "clip").is_dir():
        raise ValueError(
            f"model {path}: this is a mini model folder (model.json, clip/); use it with the "
            f"mini-model commands, or pass a diffusers SD folder to `implosion real`"
        )
    xl = is_sdxl_folder(path, index)
    if xl:
        check_sdxl_folder(path, index)
    parts = SUBFOLDERS + (SDXL_PARTS if xl else ())
    missing = [s for s in parts if not (path / s).is_dir()]
    no_config = [
        s
        for s in ("text_encoder", "vae", "unet")
        if s not in missing and not (path / s / "config.json").is_file()
    ]
    if missing or no_config:
        what = [f"{s}/" for s in missing] + [f"{s}/config.json" for s in no_config]
        raise FileNotFoundError(
            f"model {path}: missing {', '.join(what)} (expected the diffusers layout "
            f"{'/, '.join(parts)}/ + model_index.json); {HOW_TO_GET_SDXL if xl else HOW_TO_GET}"
        )
    for part in ("text_encoder", "vae", "unet", *(("text_encoder_2",) if xl else ())):
        check_safetensors(path / part, f"model {path}")
    return index


def check_components(
    text_encoder: Any, vae: Any, unet: Any, src: str = "model", text_encoder_2: Any = None
) -> None:
    """ValueError if the parts cannot work together (context width, latent channels); the SDXL
    context width is checked by :func:`core.models.sdxl.check_sdxl_components`."""
    hidden = int(text_encoder.config.hidden_size)
    xdim = unet.config.cross_attention_dim
    xdims = xdim if isinstance(xdim, list | tuple) else [xdim]
    if text_encoder_2 is None and any(int(d) != hidden for d in xdims):
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


def _ddpm_config(cfg: dict[str, Any], src: str = "model") -> dict[str, Any]:
    """The training schedule of any SD scheduler config (PNDM/DDIM/Euler share the betas).
    EDM schedulers (e.g. Playground v2.5) have no betas and are refused."""
    name = str(cfg.get("_class_name", ""))
    if name.startswith("EDM"):
        raise ValueError(
            f"model {src}: scheduler {name} (EDM, continuous sigmas) is not supported; the "
            f"training loss here is DDPM with discrete betas (SD 1.x/2.x, SDXL base)"
        )
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
