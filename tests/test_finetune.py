import numpy as np
import pytest
import torch

from core.models.ldm import MiniLDM
from core.training.finetune import FinetuneConfig, encode_images, finetune_unet, make_pairs


@pytest.fixture()
def setup(tiny_model_dir):
    ldm = MiniLDM.from_pretrained(tiny_model_dir)
    d = ldm.world.sample(1, seed=0)
    mean, std = encode_images(ldm, d.images)
    data = make_pairs(ldm, mean, std, np.arange(len(d)), d.captions)
    return ldm, data


@pytest.mark.parametrize("params", ["all", "cross-attention", "lora"])
def test_modes_change_the_right_parameters(setup, params):
    ldm, data = setup
    before = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    r = finetune_unet(ldm, data, FinetuneConfig(steps=2, batch=4, lr=1e-2, params=params))
    assert r["steps"] == 2 and np.isfinite(r["loss"])
    after = ldm.unet.state_dict()
    assert set(after) == set(before)  # LoRA adapters are merged away: a plain UNet again
    changed = {k for k, v in after.items() if not torch.equal(v, before[k])}
    assert changed
    if params == "lora":  # low-rank updates (default rank 4) of attn2 projections only
        assert all(".attn2." in k for k in changed)
        for k in changed:
            assert torch.linalg.matrix_rank(after[k] - before[k]).item() <= 4
    elif params == "cross-attention":
        assert all(".attn2." in k for k in changed)
    else:
        assert any(".attn2." not in k for k in changed)


def test_stop_and_resume_step_count(setup):
    ldm, data = setup
    r = finetune_unet(ldm, data, FinetuneConfig(steps=5, batch=2), should_stop=lambda: True)
    assert r["steps"] == 1
    r2 = finetune_unet(
        ldm, data, FinetuneConfig(steps=3, batch=2), start_step=1, optimizer_state=r["optimizer"]
    )
    assert r2["steps"] == 3


@pytest.mark.parametrize(
    "kw",
    [
        {"steps": 0},
        {"batch": 0},
        {"lr": 0},
        {"params": "lorra"},
        {"lora_rank": 0},
        {"ema_decay": 1.0},
    ],
)
def test_config_errors(kw):
    with pytest.raises(ValueError):
        FinetuneConfig(**kw)


def test_lora_fine_tune_does_not_depend_on_the_global_rng(setup):
    """Two LoRA fine-tunes with the same seed give the same weights whatever the global RNG did
    before (peft initialises adapters from it)."""
    ldm, data = setup
    base = {k: v.clone() for k, v in ldm.unet.state_dict().items()}
    cfg = FinetuneConfig(steps=2, batch=4, lr=1e-2, params="lora", lora_rank=1, seed=3)
    out = []
    for draw in (1, 2):
        ldm.unet.load_state_dict(base)
        torch.manual_seed(draw)  # a different global RNG state each time
        finetune_unet(ldm, data, cfg)
        out.append({k: v.clone() for k, v in ldm.unet.state_dict().items()})
    assert all(torch.equal(out[0][k], out[1][k]) for k in out[0])
