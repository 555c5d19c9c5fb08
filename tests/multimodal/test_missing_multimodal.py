"""``multimodal.sequence_dropout`` on items (issue 15): a dropped item has exactly one x_I channel
zeroed, that of a sequence it has, and the x_B variant encoded without it; the draws replay when the
generator is reseeded; a cached item is never changed."""

import torch
from multimodal_items import make_items

from gliotype.multimodal.augment import SequenceDropout
from gliotype.multimodal.data import collate

SEQUENCES = ("t1", "t1c", "t2", "flair")


def _dataset(n=40):
    items = make_items(n, seed=2)
    g = torch.Generator().manual_seed(5)
    for i, it in enumerate(items):
        present = SEQUENCES if i % 4 else ("t1", "t2", "flair")  # every 4th lacks t1c
        if i % 10 == 9:
            present = ("flair",)  # one sequence left: never dropped
        if "t1c" not in present:
            it["tumor_image"][1] = 0.0
        it["present"] = present
        it["variants"] = {s: (torch.randn(it["node_x"].shape, generator=g), torch.randn(it["edge_attr"].shape,
                                                                                        generator=g))
                          for s in present}
    return items


def test_a_dropped_item_loses_exactly_one_present_channel_and_takes_its_variant():
    items = _dataset()
    originals = [{k: (v.clone() if isinstance(v, torch.Tensor) else v) for k, v in it.items()} for it in items]
    gen = torch.Generator().manual_seed(0)
    data = SequenceDropout(items, 0.5, gen)
    out = [data[i] for i in range(len(data))]
    dropped = [i for i, it in enumerate(out) if "dropped" in it]
    assert 10 < len(dropped) < 30
    for i, it in enumerate(out):
        orig = originals[i]
        if "dropped" not in it:
            assert it is items[i]
            continue
        seq = it["dropped"]
        assert seq in orig["present"] and len(orig["present"]) >= 2
        c = SEQUENCES.index(seq)
        zeroed = [k for k in range(4) if not torch.equal(it["tumor_image"][k], orig["tumor_image"][k])]
        assert zeroed == [c] and not it["tumor_image"][c].any()
        assert torch.equal(it["tumor_image"][4:], orig["tumor_image"][4:])
        assert it["node_x"] is items[i]["variants"][seq][0] and it["edge_attr"] is items[i]["variants"][seq][1]
        assert torch.equal(it["points"], orig["points"])
    assert all("dropped" not in out[i] for i in range(len(out)) if len(items[i]["present"]) < 2)
    # the dataset's own (cached) items are untouched
    for it, orig in zip(items, originals):
        assert torch.equal(it["tumor_image"], orig["tumor_image"]) and torch.equal(it["node_x"], orig["node_x"])
    # the same generator state, the same choices (fit() reseeds it every epoch)
    gen.manual_seed(0)
    again = [data[i].get("dropped") for i in range(len(data))]
    assert again == [it.get("dropped") for it in out]
    gen.manual_seed(1)
    assert [data[i].get("dropped") for i in range(len(data))] != again
    # the batch is collated from the dropped items (the extra keys are ignored)
    batch = collate(out[:4])
    assert torch.equal(batch.node_x[: out[0]["node_x"].shape[0]], out[0]["node_x"])


def test_probability_zero_and_one():
    items = _dataset(12)
    none = SequenceDropout(items, 0.0, torch.Generator().manual_seed(0))
    assert all(none[i] is items[i] for i in range(len(items)))
    every = SequenceDropout(items, 1.0, torch.Generator().manual_seed(0))
    assert all(("dropped" in every[i]) == (len(items[i]["present"]) >= 2) for i in range(len(items)))
