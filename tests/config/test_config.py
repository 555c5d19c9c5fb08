"""Presets, YAML files and --set overrides resolve into a validated GliotypeConfig."""

import pytest
import yaml

from gliotype.config import PRESETS, GliotypeConfig, config_hash, load_config, parse_override, save_config
from gliotype.errors import GliotypeError


def test_paper_preset_is_the_paper():
    """Section 4.3 sizes and hyper-parameters, verbatim."""
    c = load_config("paper")
    assert c.ssl.node.hidden + [c.ssl.node.latent] == [2048, 1024, 512, 128, 32, 16]
    assert c.ssl.edge.mri_hidden + [c.ssl.edge.latent] == [2048, 1024, 512, 128, 32, 16]
    assert c.ssl.edge.fa_hidden + [c.ssl.edge.latent] == [1024, 512, 128, 32, 16]
    assert (c.atlas.node_positions * 4, c.atlas.edge_positions * 4, c.atlas.edge_positions) == (4000, 4000, 1000)
    assert (c.atlas.n_regions, c.atlas.n_tracts) == (90, 2309)
    for sched, opt in ((c.ssl.node, "adam"), (c.ssl.edge, "sgd")):
        assert (sched.optimizer, sched.weight_decay, sched.batch_size, sched.epochs) == (opt, 5e-4, 50, 1000)
        assert (sched.lr, sched.lr_step_epochs, sched.lr_gamma) == (1e-3, 50, 0.9)
    mm = c.multimodal
    assert mm.image.channels == [64, 128, 128, 256, 256] and mm.image.fc == [512, 256, 32]
    assert mm.image.in_channels == 4
    assert mm.point_cloud.channels == [32, 64, 64, 128, 128] and mm.point_cloud.fc == [256, 128, 32]
    assert mm.brain_network.gat == [64, 128, 128, 256, 256, 256] and mm.brain_network.fc == [512, 256, 32]
    assert mm.brain_network.node_attention_head == [16, 32, 64, 128]
    assert mm.heads.modality == [32, 64, 128, 128] and mm.heads.tumor == [64, 64, 128, 128]
    assert (mm.contrastive.temperature, mm.contrastive.lam) == (0.1, 0.8)
    assert (mm.optimizer, mm.weight_decay, mm.batch_size, mm.epochs, mm.lr) == ("sgd", 5e-4, 20, 1000, 1e-3)
    pg = c.population_graph
    assert (pg.theta, pg.gat, pg.optimizer, pg.epochs, pg.batch_size) == (0.5, [64, 128, 128, 128], "adam", 200, 20)
    assert c.modalities.crop_size == (120, 120, 120) and c.preprocess.spacing_mm == 2.0


@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_loads_with_its_name(preset):
    c = load_config(preset)
    assert isinstance(c, GliotypeConfig) and c.preset == preset


def test_smaller_presets_keep_the_interfaces_the_code_relies_on():
    """Projection heads take the encoder output size; g_T takes <u_I, u_P>."""
    for preset in PRESETS:
        mm = load_config(preset).multimodal
        assert mm.heads.modality[0] == mm.image.fc[-1] == mm.point_cloud.fc[-1] == mm.brain_network.fc[-1]
        assert mm.heads.tumor[0] == mm.image.fc[-1] + mm.point_cloud.fc[-1]
        assert mm.heads.modality[-1] == mm.heads.tumor[-1]


@pytest.mark.parametrize(
    "item, expected",
    [
        ("ssl.node.epochs=5", {"ssl": {"node": {"epochs": 5}}}),
        ("seed=3", {"seed": 3}),
        ("multimodal.encoders=[image, point_cloud]", {"multimodal": {"encoders": ["image", "point_cloud"]}}),
        ("multimodal.use_attention=false", {"multimodal": {"use_attention": False}}),
        ("atlas.node_atlas=my atlas.nii.gz", {"atlas": {"node_atlas": "my atlas.nii.gz"}}),
    ],
)
def test_parse_override(item, expected):
    assert parse_override(item) == expected


def test_overrides_apply_over_preset_and_file(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text(yaml.safe_dump({"ssl": {"node": {"epochs": 7, "lr": 0.01}}, "seed": 4}))
    c = load_config("cpu", f, ["ssl.node.epochs=5"])
    assert (c.ssl.node.epochs, c.ssl.node.lr, c.seed) == (5, 0.01, 4)
    assert c.multimodal.image.channels == load_config("cpu").multimodal.image.channels


@pytest.mark.parametrize(
    "preset, overrides, match",
    [
        ("nope", [], "unknown preset 'nope'"),
        ("cpu", ["ssl.node.epochz=3"], "ssl.node.epochz"),
        ("cpu", ["multimodal.lr=abc"], "multimodal.lr"),
        ("cpu", ["no_equals_sign"], "not of the form"),
        ("cpu", ["population_graph.node_weight=uX"], "population_graph.node_weight"),
    ],
)
def test_bad_config_is_one_clear_line(preset, overrides, match):
    with pytest.raises(GliotypeError, match=match) as info:
        load_config(preset, None, overrides)
    assert "\n" not in str(info.value)


def test_bad_config_file(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("- just\n- a list\n")
    with pytest.raises(GliotypeError, match="bad.yaml: expected a mapping"):
        load_config("cpu", f)
    with pytest.raises(GliotypeError, match="missing.yaml: cannot read"):
        load_config("cpu", tmp_path / "missing.yaml")


def test_saved_config_reloads_identically_and_hash_tracks_values(tmp_path):
    c = load_config("tiny", overrides=["seed=9"])
    path = save_config(c, tmp_path / "out" / "config.yaml")
    again = GliotypeConfig.model_validate(yaml.safe_load(path.read_text()))
    assert again == c
    assert config_hash(again) == config_hash(c)
    assert config_hash(load_config("tiny", overrides=["seed=10"])) != config_hash(c)
    assert config_hash(c, "ssl") == config_hash(load_config("tiny", overrides=["seed=10"]), "ssl")


def test_paper_reading_overlay_restores_every_option_the_cpu_preset_changes():
    """configs/paper_reading.yaml over `cpu` = the `paper` preset's reading at cpu sizes."""
    from pathlib import Path

    import yaml

    overlay = Path(__file__).parents[2] / "configs" / "paper_reading.yaml"
    literal = load_config("cpu", overlay)
    paper, cpu = load_config("paper"), load_config("cpu")
    changed = 0
    for section, values in yaml.safe_load(overlay.read_text()).items():
        for key in values:
            if isinstance(values[key], dict):
                for sub in values[key]:
                    got = getattr(getattr(getattr(literal, section), key), sub)
                    assert got == getattr(getattr(getattr(paper, section), key), sub), (section, key, sub)
                    changed += got != getattr(getattr(getattr(cpu, section), key), sub)
            else:
                got = getattr(getattr(literal, section), key)
                want = getattr(getattr(paper, section), key)
                assert got == want, (section, key)
                changed += got != getattr(getattr(cpu, section), key)
    assert changed >= 15  # the overlay is not a no-op
    # the population graph of the demo: at most 10 neighbours per patient (design.md point 51), the paper's every pair
    assert (cpu.population_graph.max_neighbours, literal.population_graph.max_neighbours) == (10, 0)



#: a value other than the neutral one, for every option of NEUTRAL_OPTIONS
NON_NEUTRAL = {"modalities.image_label_channels": "true", "multimodal.image.pool": "avg",
               "multimodal.image.compartment_weight": "1.0", "multimodal.image.pretrain_epochs": "5",
               "multimodal.image.pretrain_lr": "0.01",
               "multimodal.unlabelled": "cohort", "multimodal.contrastive.weight": "0.1",
               "preprocess.nonfinite": "zero", "input.missing_sequences": "1",
               "ssl.sequence_dropout": "0.5", "multimodal.sequence_dropout": "0.5",
               "population_graph.phenotype": "age_sex",
               "population_graph.threshold_transfer": "rank",
               "population_graph.neighbours": "ann", "population_graph.max_neighbours": "10",
               "population_graph.candidates": "32", "population_graph.sampling": "neighbour",
               "population_graph.fanout": "[5, 5, 5, 5]", "threads": "2", "multimodal.average_from_epoch": "8"}
#: what a non-neutral value needs beside it to be valid
ALONG = {"population_graph.neighbours": ["population_graph.max_neighbours=10"],
         "multimodal.image.compartment_weight": ["modalities.image_label_channels=true"],
         "multimodal.image.pretrain_epochs": ["modalities.image_label_channels=true"],
         "population_graph.candidates": ["population_graph.neighbours=ann", "population_graph.max_neighbours=10"],
         "population_graph.fanout": ["population_graph.sampling=neighbour"],
         "population_graph.threshold_transfer": ["population_graph.threshold_folds=2"]}


def test_options_at_their_neutral_value_leave_every_cache_key_unchanged():
    """An option added later, at the value that reproduces the old behaviour, is not hashed;
    any other value is (so a cached stage is reused exactly when its result cannot differ)."""
    import copy

    from gliotype.config.loader import NEUTRAL_OPTIONS, values_hash

    assert set(NON_NEUTRAL) == set(NEUTRAL_OPTIONS)
    config = load_config("paper")  # every option at its schema default (cpu turns some on)
    dumped = config.model_dump(mode="json")
    for dotted, neutral in NEUTRAL_OPTIONS.items():
        *parents, leaf = dotted.split(".")
        older = copy.deepcopy(dumped)  # the config as written before the option existed
        node = older
        for key in parents:
            node = node[key]
        assert node.pop(leaf) == neutral, f"{dotted}: the schema default must be its neutral value"
        assert values_hash(older) == config_hash(config)
        base = load_config("paper", overrides=ALONG.get(dotted, []))
        changed = load_config("paper", overrides=[*ALONG.get(dotted, []), f"{dotted}={NON_NEUTRAL[dotted]}"])
        section = parents[:1]  # a top-level option (threads) is in the whole config's hash only
        assert config_hash(changed, *section) != config_hash(base, *section)


def test_location_options_are_in_no_hash_whatever_their_value():
    """``atlas.cache_dir`` says where the tract atlas is cached, not what it is: no config hash
    sees it, at null, at a folder, or absent (a config written before it existed)."""
    import copy

    from gliotype.config.loader import LOCATION_OPTIONS, values_hash

    assert "atlas.cache_dir" in LOCATION_OPTIONS
    for preset in PRESETS:
        config = load_config(preset)
        assert config.atlas.cache_dir is None
        moved = load_config(preset, overrides=["atlas.cache_dir=/somewhere/else"])
        assert moved.atlas.cache_dir == "/somewhere/else"
        for sections in ((), ("atlas",), ("ssl", "atlas", "preprocess")):
            assert config_hash(moved, *sections) == config_hash(config, *sections)
        older = copy.deepcopy(config.model_dump(mode="json"))
        for dotted in LOCATION_OPTIONS:
            *parents, leaf = dotted.split(".")
            node = older
            for key in parents:
                node = node[key]
            del node[leaf]
        assert values_hash(older) == config_hash(config) == config_hash(moved)
        assert config_hash(load_config(preset, overrides=["atlas.n_tracts=7"]), "atlas") != \
            config_hash(config, "atlas")
