"""The compartment head of f_I (``multimodal.image.compartment_weight``, docs/design.md point 49):
its target read off x_I, its loss term, and that f_I learns to predict it."""

import numpy as np
import pytest
import torch

from gliotype.config import load_config
from gliotype.errors import GliotypeError
from gliotype.multimodal import MultiModalNet, multimodal_loss
from gliotype.multimodal.data import collate
from gliotype.multimodal.model import compartment_summary
from multimodal_items import CROP, make_items


def _with_compartments(items, seed=0):
    """x_I of 4 sequences + 3 compartment channels (0/1, disjoint), the third patient without edema."""
    g = torch.Generator().manual_seed(seed)
    for i, item in enumerate(items):
        label = torch.randint(0, 4, (CROP, CROP, CROP), generator=g)  # 0 background, 1 ncr, 2 ed, 3 et
        if i == 2:
            label[label == 2] = 0
        parts = torch.stack([(label == k).float() for k in (1, 2, 3)])
        item["tumor_image"] = torch.cat([item["tumor_image"], parts])
    return items


def _model(*sets, weight=0.5):
    config = load_config("tiny", overrides=["modalities.image_label_channels=true",
                                            f"multimodal.image.compartment_weight={weight}", *sets])
    torch.manual_seed(0)
    return MultiModalNet(config.multimodal, config.modalities.crop_size, image_channels=7)


def test_summary_equals_a_reference_loop_over_patients_compartments_and_sequences():
    x = collate(_with_compartments(make_items(3))).tumor_image
    got = compartment_summary(x).numpy()
    assert got.shape == (3, 15)
    for b in range(3):
        parts = x[b, 4:].numpy().astype(bool)
        counts = np.array([p.sum() for p in parts], dtype=float)
        np.testing.assert_allclose(got[b, :3], counts / counts.sum(), rtol=1e-5)
        lesion = parts.any(0)
        for s in range(4):
            for c in range(3):
                seq = x[b, s].numpy()
                want = (seq[parts[c]].mean() - seq[lesion].mean()) / seq[lesion].std() if counts[c] else 0.0
                np.testing.assert_allclose(got[b, 3 + 3 * s + c], want, rtol=1e-4, atol=1e-6)
    assert got[2, 1] == 0 and np.all(got[2, [4, 7, 10, 13]] == 0)  # no edema: share and z-scores 0
    # the same summary on another intensity scale and offset
    scaled = x.clone()
    scaled[:, :4] = 50 + 17.2 * scaled[:, :4]
    np.testing.assert_allclose(compartment_summary(scaled).numpy(), got, rtol=1e-4, atol=1e-6)


def test_the_loss_term_is_the_weighted_mse_and_its_gradient_reaches_f_i():
    model = _model(weight=0.5).train()
    batch = collate(_with_compartments(make_items(4)))
    out = model(batch)
    pred, target = out.compartments
    assert torch.equal(target, compartment_summary(batch.tumor_image))
    _, terms = multimodal_loss(model, out, batch.label)
    assert terms["compartments"] == pytest.approx(0.5 * float(((pred.detach() - target) ** 2).mean()), rel=1e-5)
    batch.label[:] = -1  # unlabelled patients train the head too: only L_multi and this term
    loss, terms = multimodal_loss(model, model(batch), batch.label)
    assert set(terms) == {"contrastive", "compartments"}
    model.zero_grad()
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.compartment_head.parameters())
    assert model.image.features[0][0].weight.grad.abs().sum() > 0


def test_at_weight_zero_there_is_no_head_and_no_term():
    model = _model(weight=0.0).train()
    assert model.compartment_head is None
    assert not any(n.startswith("compartment_head") for n, _ in model.named_parameters())
    batch = collate(_with_compartments(make_items(4)))
    out = model(batch)
    assert out.compartments is None
    assert "compartments" not in multimodal_loss(model, out, batch.label)[1]


def test_the_option_without_compartment_channels_is_one_config_line():
    with pytest.raises(GliotypeError) as err:
        load_config("tiny", overrides=["multimodal.image.compartment_weight=1"])
    message = str(err.value)
    assert "\n" not in message and "modalities.image_label_channels" in message
    assert "Value error" not in message


def test_f_i_learns_to_predict_the_compartment_shares():
    """A few dozen steps on the head's loss alone: the shares of held-out patients come out
    far better than their mean, so the head reads them from x_I and does not memorise. Five
    average-pooled blocks bring the 32^3 crop to one voxel, as the ``cpu`` preset's five blocks
    do with its 40^3 crop: the last block is a global mean."""
    model = _model("multimodal.encoders=[image]", "multimodal.use_bce=false", "multimodal.image.pool=avg",
                   "multimodal.image.channels=[4, 8, 8, 8, 8]", weight=1.0).train()
    g = torch.Generator().manual_seed(1)

    def patients(n, seed):
        items = make_items(n, seed)
        for item in items:  # lesions whose enhancing share varies from patient to patient
            label = torch.zeros(CROP, CROP, CROP, dtype=torch.long)
            share = float(torch.rand((), generator=g))
            mask = torch.rand(CROP, CROP, CROP, generator=g)
            label[mask < 0.5] = 1
            label[mask < 0.5 * share] = 3
            parts = torch.stack([(label == k).float() for k in (1, 2, 3)])
            item["tumor_image"] = torch.cat([item["tumor_image"] * 0.1, parts])
        return collate(items)

    train, test = patients(16, 0), patients(8, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        optimiser.zero_grad()
        multimodal_loss(model, model(train), train.label)[0].backward()
        optimiser.step()
    model.eval()
    with torch.no_grad():
        pred, target = model(test).compartments
    enhancing = 2
    error = ((pred[:, enhancing] - target[:, enhancing]) ** 2).mean()
    baseline = ((target[:, enhancing] - target[:, enhancing].mean()) ** 2).mean()
    assert error < 0.2 * baseline
