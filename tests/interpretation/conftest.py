"""Fixtures of the interpretation tests: one tiny network, one- and two-patient batches."""

import pytest

from gliotype.multimodal.data import collate
from multimodal_items import make_items, make_model


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture
def batch():
    return collate(make_items(1))


@pytest.fixture
def batch2():
    return collate(make_items(2))
