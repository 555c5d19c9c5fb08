"""The node autoencoder (section 4.3) learns: deep sizes do not collapse to the mean."""

import numpy as np
import pytest
import torch

from gliotype.self_supervised.models import NodeAutoencoder


def _low_rank(n=400, features=200, rank=4, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, rank)) @ rng.normal(size=(rank, features)) + 0.3 * rng.normal(size=(n, features))
    return torch.tensor(x + 50.0, dtype=torch.float32)


def _train(init: str, epochs=15) -> float:
    from gliotype.encoders.mlp import MLP

    torch.manual_seed(0)
    x = _low_rank()
    model = NodeAutoencoder(x.shape[1], [128, 64, 32, 16, 8], 4)
    if init == "pytorch":  # the library default initialisation, for comparison
        model.encoder = MLP(model.encoder.sizes, init="pytorch")
        model.decoder = MLP(model.decoder.sizes, init="pytorch")
    model.norm.fit(x)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=5e-4)
    for _ in range(epochs):
        for batch in torch.randperm(len(x)).split(50):
            recon, target = model(x[batch])
            loss = ((recon - target) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        recon, target = model(x)
        return float(((recon - target) ** 2).mean())


def test_deep_autoencoder_beats_the_mean_baseline():
    # the standardised input has variance 1: predicting the mean scores 1.0
    assert _train("kaiming") < 0.7  # the PyTorch default init stays at 0.998 here


def test_unknown_init_is_an_error():
    from gliotype.encoders.mlp import MLP

    with pytest.raises(ValueError, match="init"):
        MLP([4, 2], init="xavier")
