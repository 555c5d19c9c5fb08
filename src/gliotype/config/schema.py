"""Typed configuration of the whole method (paper sections 3-4).

Every value of the ``paper`` preset is the paper's (section 4.3 unless noted);
values the paper leaves open are marked *open* and discussed in ``docs/design.md``.
``cpu`` and ``tiny`` keep the same architecture with smaller sizes.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ScheduleConfig(_Section):
    """Optimiser and step learning-rate schedule ("reduced to 90% after every 50 epochs").

    Model sections inherit these fields, so ``--set ssl.node.epochs=5`` works.
    """

    optimizer: Literal["adam", "sgd"] = "adam"
    lr: float = 1e-3
    weight_decay: float = 5e-4
    momentum: float = 0.0  # open: SGD momentum is not given; 0 = plain SGD
    batch_size: int = 50
    epochs: int = 1000
    lr_step_epochs: int = 50
    lr_gamma: float = 0.9


class PreprocessConfig(_Section):
    """Section 4.2: co-registration, skull stripping, normalisation, MNI registration."""

    spacing_mm: float = 2.0  # "MNI-152-T1-2MM-brain"
    # histogram_gm / zscore_gm: Nyul landmarks / robust z-score on grey matter (template GM map after
    # registration), so the white-matter level relative to grey matter survives (preprocessing/normalize.py)
    normalization: Literal["histogram", "zscore", "none", "histogram_gm", "zscore_gm"] = "histogram"
    denoise: bool = False  # SUSAN in the paper; optional here
    registration: Literal["SyN", "Affine", "none"] = "SyN"
    skull_stripped: Literal["auto", "yes", "no"] = "auto"
    # the rest is not in the paper (docs/preprocessing.md)
    coregister: Literal["auto", "always", "never"] = "auto"  # auto: rigid unless all grids are identical
    moving: Literal["t1c", "t1"] = "t1c"  # the sequence registered to the template T1
    reg_iterations: tuple[int, ...] = (40, 20, 0)  # SyN iterations per level (coarse to fine)
    mask_tumor: bool = True  # leave the tumor out of the registration metric (cost-function masking)
    min_tumor_voxels: int = Field(10, ge=1)  # on the template grid
    min_tumor_in_brain: float = Field(0.5, ge=0.0, le=1.0)  # fraction of tumor voxels inside the brain
    qc_min_dice: float = Field(0.8, ge=0.0, le=1.0)  # brain mask vs template brain mask
    seed: int = 0  # ANTs sampling seed
    # NaN / infinite voxels of a sequence or FA: reject the case (validate, predict, preprocessing),
    # or zero: set them to 0, with a warning and a record in qc.json (input/rules.py::check_finite)
    nonfinite: Literal["reject", "zero"] = "reject"


class InputConfig(_Section):
    """Reading a patient's image files (input/volumes.py): limits checked on the header, before any voxel."""

    # voxels an image file may declare (all dimensions): 512^3 = 134,217,728 (0.5 GB as float32);
    # a 1 mm whole-brain scan has 7-17 million, a 0.5 mm one about 80 million
    max_voxels: int = Field(512 ** 3, ge=1)
    # sequences (of t1, t1c, t2, flair) a case may lack: 0 = all four required (the paper). A missing
    # sequence is a zero volume on the template grid, imputed in x_B (docs/design.md point 37)
    missing_sequences: int = Field(0, ge=0, le=3)


class AtlasConfig(_Section):
    """Node (AAL, 90 regions) and edge (tract) atlases, section 3.2."""

    n_regions: int = 90
    n_tracts: int = 2309
    node_positions: int = 1000  # x 4 sequences = 4,000 node inputs (open point 2)
    edge_positions: int = 1000  # x 4 sequences = 4,000 anatomical, 1,000 FA inputs
    node_atlas: str | None = None  # user NIfTI of region labels; None = AAL 1-90
    edge_atlas: str | None = None  # user 4D NIfTI / folder of tracts; None = built-in
    # where tract atlases are cached (its atlases/ folder); None = ~/.cache/gliotype. Says where,
    # not what: left out of every config hash (loader.LOCATION_OPTIONS)
    cache_dir: str | None = None


# which mask labels make a tumour region: all labels > 0, the core (1, 3, 4) or a list of labels
TumorLabels = Literal["whole", "core"] | list[int]


class ModalitiesConfig(_Section):
    """The three data modalities of section 3.2 / 4.2 (docs/design.md, points 14, 15)."""

    tumor_labels: TumorLabels = "whole"  # open point 14; the default of the two below
    # x_P's / x_I's region (None: tumor_labels); fewer than preprocess.min_tumor_voxels -> whole tumour
    point_cloud_labels: TumorLabels | None = None
    image_labels: TumorLabels | None = None
    # f_P's coordinates: unit_ball = centred, largest radius 1 (location and size removed);
    # mni = template millimetres / point_scale_mm (location and size kept; not centred)
    point_coordinates: Literal["unit_ball", "mni"] = "unit_ball"
    point_scale_mm: float = Field(100.0, gt=0)
    image_margin_mm: float = Field(0.0, ge=0)  # x_I's mask: the image labels dilated by this margin
    image_ring_channel: bool = False  # x_I gets a 5th channel: the image labels' mask (undilated)
    image_label_channels: bool = False  # and one channel per BraTS compartment (1, 2, 3/4) of the mask
    crop_size: tuple[int, int, int] = (120, 120, 120)  # 2 mm voxels
    n_points: int = 1024  # open: the paper gives no point count

    @field_validator("tumor_labels", "point_cloud_labels", "image_labels", mode="before")
    @classmethod
    def _labels(cls, value):
        return _tumor_labels(value)


def _tumor_labels(value):
    """A :data:`TumorLabels` value as given in YAML: 'whole', 'core', None or mask labels 1-255 (sorted)."""
    if value is None or value in ("whole", "core"):
        return value
    items = [value] if isinstance(value, int) and not isinstance(value, bool) else value
    if (isinstance(items, list) and items
            and all(isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 255 for v in items)):
        return sorted(set(items))
    raise ValueError(f"expected 'whole', 'core' or a list of mask labels 1-255, got {value!r}")


class NodeAutoencoderConfig(ScheduleConfig):
    """Node autoencoder: MLP 4000 -> 2048-1024-512-128-32-16, mirrored decoder, MSE; Adam."""

    hidden: list[int] = Field(default_factory=lambda: [2048, 1024, 512, 128, 32])
    latent: int = 16


class EdgeModelConfig(ScheduleConfig):
    """Edge model: MLPs on MRI (4000 -> ... -> 16) and FA (1000 -> ... -> 16), eq. 1."""

    mri_hidden: list[int] = Field(default_factory=lambda: [2048, 1024, 512, 128, 32])
    fa_hidden: list[int] = Field(default_factory=lambda: [1024, 512, 128, 32])
    latent: int = 16
    projection: list[int] = Field(default_factory=lambda: [16, 16])  # open: g, g' sizes
    temperature: float = 0.1  # open: tau of eq. 1 (0.1 as in section 4.3 for eqs. 4-6)
    loss: Literal["printed", "infonce"] = "printed"  # open point 1
    # open point 3: tracts of a minibatch; same_tract: one tract from different patients (negatives are
    # that tract in other patients, so v_E must carry the patient's deviation, not the tract identity)
    batching: Literal["mixed", "per_patient", "same_tract"] = "mixed"
    optimizer: Literal["adam", "sgd"] = "sgd"


class SelfSupervisedConfig(_Section):
    """The two self-supervised models that build the brain network (section 3.2)."""

    val_fraction: float = Field(0.2, ge=0.0, lt=1.0)  # FA patients held out to show what was learned
    # node / edge rows: raw samples, or each position's deviation from the normative value at that
    # position (statistics of the self-supervised training patients, stored with the models)
    inputs: Literal["raw", "deviation"] = "raw"
    normative: Literal["mean_sd", "median_mad"] = "mean_sd"  # the normative centre and scale
    # deviation inputs: "mask" sets positions inside the tumour mask to 0 (and left out of the
    # statistics) and appends the tumour-covered fraction of the region / tract as one input
    tumor: Literal["keep", "mask"] = "mask"
    node: NodeAutoencoderConfig = Field(default_factory=NodeAutoencoderConfig)
    edge: EdgeModelConfig = Field(default_factory=EdgeModelConfig)
    # not in the paper: the probability that a training row of the node autoencoder (and an MRI row
    # of the edge model) has one random sequence block imputed as missing (docs/design.md point 37)
    sequence_dropout: float = Field(0.0, ge=0.0, le=1.0)


class ImageEncoderConfig(_Section):
    """f_I: five 3D conv layers with BN + max pooling, then FC 512-256-32."""

    channels: list[int] = Field(default_factory=lambda: [64, 128, 128, 256, 256])
    fc: list[int] = Field(default_factory=lambda: [512, 256, 32])
    in_channels: int = 4
    pool: Literal["max", "avg"] = "max"  # the paper: max pooling in every block
    # weight of an auxiliary loss (not in the paper; docs/design.md point 49): a linear head on u_I
    # predicts each compartment's share of the lesion and each sequence's mean in it, read off
    # x_I's compartment channels (modalities.image_label_channels); 0 = off, the paper
    compartment_weight: float = Field(0.0, ge=0.0)
    # epochs of a label-free pretraining of f_I (not in the paper; docs/design.md point 50): f_I and
    # the compartment head fitted to the standardised compartment summary of every patient of the
    # cohort with Adam at pretrain_lr, once per work folder, before the multi-modal training starts
    # from it; 0 = none, the paper
    pretrain_epochs: int = Field(0, ge=0)
    pretrain_lr: float = Field(1e-3, gt=0.0)


class GeometricEncoderConfig(_Section):
    """f_P: radius graph + NNConv (32-64-64-128-128), FPS, attention pooling, FC 256-128-32."""

    channels: list[int] = Field(default_factory=lambda: [32, 64, 64, 128, 128])
    fc: list[int] = Field(default_factory=lambda: [256, 128, 32])
    radii: list[float] = Field(default_factory=lambda: [0.15, 0.3, 0.35, 0.5, 0.6])  # open point 15; x_P's units
    # radii in millimetres instead (modalities.point_coordinates=mni only): radii_mm / point_scale_mm
    radii_mm: list[float] | None = None
    fps_ratios: list[float] = Field(default_factory=lambda: [0.25, 1.0, 0.5, 0.5, 1.0])  # kept after each layer
    max_neighbors: int = 16  # open
    edge_hidden: int = 16  # open: hidden size of NNConv's edge network
    # not in the paper: the tumour's centroid (template mm) and largest radius (mm), divided by
    # modalities.point_scale_mm, appended to the pooled feature before the FC head, so unit_ball
    # points keep the shape in the convolutions while location and size still reach u_P
    pose: bool = False


class BrainNetworkEncoderConfig(_Section):
    """f_B: GATConv 64-128-128-256-256-256, FC 512-256-32, hierarchical attention (eqs. 2-3)."""

    gat: list[int] = Field(default_factory=lambda: [64, 128, 128, 256, 256, 256])
    fc: list[int] = Field(default_factory=lambda: [512, 256, 32])
    node_attention_head: list[int] = Field(default_factory=lambda: [16, 32, 64, 128])  # g_a^N
    uncrossed_edge_attention: float = 1.0  # open point 4
    crossing_threshold: float = 0.2  # open point 5: tract probability for "crossed"
    crossing_radius_mm: float = 2.0  # open point 5
    node_pooling: Literal["softmax", "sum", "mean"] = "softmax"  # open point 7
    node_temperature: float = 0.1  # softmax temperature of the node pooling
    share_tumor_head: bool = True  # eq. 3 uses g_T of the contrastive loss (False: its own g_T^a)
    heads: int = 1  # GAT heads (averaged); the paper does not say
    # departures against over-smoothing and for edge features in the messages (docs/design.md);
    # the defaults are the paper read literally
    conv: Literal["gat", "gatv2", "gine", "transformer"] = "gat"  # gine/transformer: edge features in messages
    residual: bool = False  # each layer's input added to its output (linear map when sizes differ)
    norm: Literal["none", "layer", "graph"] = "none"  # PyG LayerNorm (per node) / GraphNorm between layers
    jumping_knowledge: Literal["none", "cat", "max"] = "none"  # e^N from all layers (PyG JumpingKnowledge)
    # eq. 2: multiply = x_B . a^E (paper); message = a^E scales each tract's messages;
    # log_attention = log a^E added to the attention logits (gat, gatv2, transformer)
    edge_attention_mode: Literal["multiply", "message", "log_attention"] = "multiply"

    def model_post_init(self, context) -> None:  # noqa: D102 - one-line config error via pydantic
        if self.edge_attention_mode == "log_attention" and self.conv == "gine":
            raise ValueError("edge_attention_mode log_attention needs an attention conv (gat, gatv2, transformer)")


class ProjectionHeadsConfig(_Section):
    """g_I, g_P, g_B: 32-64-128-128; g_T: 64-64-128-128 (section 4.3)."""

    modality: list[int] = Field(default_factory=lambda: [32, 64, 128, 128])
    tumor: list[int] = Field(default_factory=lambda: [64, 64, 128, 128])


class ContrastiveConfig(_Section):
    """Bi-level loss, eqs. 4-7: cosine similarity, tau = 0.1, lambda = 0.8."""

    temperature: float = 0.1
    lam: float = 0.8
    form: Literal["printed", "infonce"] = "printed"  # open point 1
    # L_multi's weight next to the BCE term (open point 8: the paper gives none, i.e. 1;
    # docs/design.md point 54)
    weight: float = Field(1.0, ge=0.0)


class MultiModalConfig(ScheduleConfig):
    """Stage 2: encoders + hierarchical attention + L_multi (+ BCE, open point 8)."""

    image: ImageEncoderConfig = Field(default_factory=ImageEncoderConfig)
    point_cloud: GeometricEncoderConfig = Field(default_factory=GeometricEncoderConfig)
    brain_network: BrainNetworkEncoderConfig = Field(default_factory=BrainNetworkEncoderConfig)
    heads: ProjectionHeadsConfig = Field(default_factory=ProjectionHeadsConfig)
    contrastive: ContrastiveConfig = Field(default_factory=ContrastiveConfig)
    encoders: list[Literal["image", "point_cloud", "brain_network"]] = Field(
        default_factory=lambda: ["image", "point_cloud", "brain_network"]
    )
    use_contrastive: bool = True
    use_attention: bool = True
    use_bce: bool = True
    bce_weight: float = 1.0  # weight of the BCE term next to L_multi (open point 8)
    classifier_hidden: list[int] = Field(default_factory=lambda: [32])  # BCE head on the features
    augment_rotation_deg: float = 15.0  # open: rotation range not given
    # ``cohort``: every other patient of the cohort (half B, test, self-supervision) joins the
    # training without its label; only L_multi sees it (docs/design.md point 35). The paper: ``none``
    unlabelled: Literal["none", "cohort"] = "none"
    # not in the paper: the probability that a training item drops one random present sequence per
    # epoch (its x_I channel zeroed, x_B encoded with it imputed; docs/design.md point 37)
    sequence_dropout: float = Field(0.0, ge=0.0, le=1.0)
    # not in the paper (docs/design.md point 56): k = the features come from the equal average of the
    # network's weights after epochs k to the last (stochastic weight averaging); null = the last weights
    average_from_epoch: int | None = Field(None, ge=1)
    optimizer: Literal["adam", "sgd"] = "sgd"
    batch_size: int = 20


class PopulationGraphConfig(ScheduleConfig):
    """Section 3.4, eq. 8, Table 1; GATConv 64-128-128-128 node classifier."""

    node_weight: Literal["uT", "uB", "uT_uB"] = "uT_uB"
    edge_weight: Literal["uT", "uB", "uT_uB"] = "uB"
    theta: float = 0.5
    gat: list[int] = Field(default_factory=lambda: [64, 128, 128, 128])
    optimizer: Literal["adam", "sgd"] = "adam"
    batch_size: int = Field(20, ge=0)  # labelled nodes per step; 0 = all (one full-graph step per epoch)
    epochs: int = 200
    weight_decay: float = 0.0  # open: the sentence giving it is garbled in the paper (5e-4 its likeliest reading)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)  # not in the paper: input features, attention, each layer's output
    residual: bool = False  # not in the paper: GATConv's root term (a linear skip of the node's own input)
    val_fraction: float = Field(0.0, ge=0.0, lt=1.0)  # labelled nodes held out (stratified) for the threshold
    patience: int = Field(0, ge=0)  # with val_fraction: stop after this many epochs without improvement; 0 = never
    val_metric: Literal["bce", "auc"] = "bce"  # what the best epoch (weights kept) is chosen on
    # k > 0: the threshold on out-of-fold predictions of k extra GNNs (labelled nodes of one fold hidden);
    # the reported GNN still trains on every labelled node. Exclusive with val_fraction
    threshold_folds: int = Field(0, ge=0)
    # not in the paper (design.md point 40): how the threshold chosen on the out-of-fold predictions
    # reaches the reported GNN. ``value``: the same probability; ``rank``: the same quantile of the
    # unlabelled (test) nodes, as the fold GNNs and the reported GNN predict them (no label is read)
    threshold_transfer: Literal["value", "rank"] = "value"
    # which Table 1 row is "Multi-modal + GNN" (Table 3) and the exported model: ``fixed``, the
    # (node_weight, edge_weight) above (the paper's choice); ``out_of_fold``, the row whose
    # out-of-fold predictions of the labelled patients (threshold_folds) have the best AUC
    choose: Literal["fixed", "out_of_fold"] = "fixed"
    standardise: bool = True  # z-score features (training-node statistics) before eq. 8 (open point 9)
    # not in the paper (docs/design.md point 39): age_sex multiplies each eq. 8 weight r by
    # 1 + [same sex] + [|age difference| < 2 years] (a term counts 0 where a value is unknown)
    phenotype: Literal["none", "age_sex"] = "none"
    # not in the paper (docs/scale-out.md, design.md point 46): large cohorts. ``neighbours``: how eq. 8
    # pairs are found, ``exact`` (every pair, the paper) or ``ann`` (candidates from an approximate
    # nearest-neighbour index, faiss HNSW; r >= theta still checked exactly); ``max_neighbours``: each
    # patient keeps at most its k highest r (0 = no cap; an edge stays when either end keeps it);
    # ``candidates``: with ann, the nearest patients the index returns per patient (0 = 2 k)
    neighbours: Literal["exact", "ann"] = "exact"
    max_neighbours: int = Field(0, ge=0)
    candidates: int = Field(0, ge=0)
    # how a training step computes the logits of its labelled nodes: ``full``, the GNN on the whole
    # graph; ``neighbour``, on the nodes within len(gat) hops of them (the same logits), or on a sample
    # of ``fanout[h]`` in-edges per node at hop h (0 = all; empty = all at every hop)
    sampling: Literal["full", "neighbour"] = "full"
    fanout: list[int] = Field(default_factory=list)

    def model_post_init(self, context) -> None:  # noqa: D102 - one-line config error via pydantic
        if self.neighbours == "ann" and not (self.max_neighbours or self.candidates):
            raise ValueError("neighbours: ann needs max_neighbours > 0 or candidates > 0 (how many nearest "
                             "patients the index returns)")
        if self.candidates and self.neighbours != "ann":
            raise ValueError("candidates is the number of patients the ann index returns: set neighbours: ann")
        if self.candidates and self.candidates < self.max_neighbours:
            raise ValueError(f"candidates ({self.candidates}) must be at least max_neighbours ({self.max_neighbours})")
        if self.fanout and self.sampling != "neighbour":
            raise ValueError("fanout samples the neighbours of a mini-batch: set sampling: neighbour")
        if self.fanout and (len(self.fanout) != len(self.gat) or min(self.fanout) < 0):
            raise ValueError(f"fanout needs one count >= 0 per GAT layer ({len(self.gat)}), got {self.fanout}")
        if self.threshold_folds and self.val_fraction:
            raise ValueError("threshold_folds and val_fraction are two ways to choose the threshold: set one")
        if self.threshold_folds == 1:
            raise ValueError("threshold_folds must be 0 (off) or at least 2")
        if self.threshold_transfer == "rank" and not self.threshold_folds:
            raise ValueError("threshold_transfer: rank needs threshold_folds >= 2 (the predictions it carries over)")
        if self.choose == "out_of_fold" and not self.threshold_folds:
            raise ValueError("choose: out_of_fold needs threshold_folds >= 2 (the predictions it compares)")


class BaselinesConfig(ScheduleConfig):
    """Table 3's 3D CNNs (MONAI ResNet34, DenseNet121) on the tumor image, halves A + B.

    The paper gives no schedule for them: the stage-2 one (SGD, batch 20, lr 1e-3 x 0.9
    every 50 epochs, 1000 epochs) in ``paper``; ``cpu`` trains them for fewer epochs.
    """

    models: list[Literal["resnet34", "densenet121"]] = Field(default_factory=lambda: ["resnet34", "densenet121"])
    width: float = Field(1.0, gt=0)  # channel scale; cpu: 0.25 like its encoders
    optimizer: Literal["adam", "sgd"] = "sgd"
    batch_size: int = 20


class FeatureClassifiersConfig(_Section):
    """Table 3-4's classifiers on the multi-modal features (half B): MLP, SVM, L2 logistic regression.

    ``paper``: fixed MLP(32, alpha 1e-3) and RBF SVM (C 1). ``cv``: alpha / C chosen by
    inner stratified cross-validation on half B. The LR row is always LogisticRegressionCV.
    """

    rows: list[Literal["mlp", "svm", "lr"]] = Field(default_factory=lambda: ["mlp", "svm"])
    regularisation: Literal["paper", "cv"] = "paper"
    threshold: Literal["fitted", "out_of_fold"] = "fitted"  # predictions of B the threshold is chosen on
    inner_folds: int = Field(5, ge=2)  # at most the smaller class's size
    scoring: Literal["neg_log_loss", "roc_auc"] = "neg_log_loss"  # inner-CV criterion (AUC ties favour C -> 0)
    mlp_alphas: list[float] = Field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0], min_length=1)
    svm_cs: list[float] = Field(default_factory=lambda: [0.01, 0.1, 1.0, 10.0], min_length=1)
    lr_cs: list[float] = Field(default_factory=lambda: [1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0], min_length=1)


RadiomicsClass = Literal["shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"]


class RadiomicsConfig(_Section):
    """Table 3's "Radiomics + LR / SVM" rows (issue 16; not in the paper, the standard of IDH
    papers): pyradiomics features of each preprocessed sequence inside the tumour, cached per
    patient, and classifiers fitted on the same training patients as the other feature
    classifiers (docs/design.md point 38)."""

    enabled: bool = False  # the paper's Table 3 has no radiomics row
    features: list[RadiomicsClass] = Field(
        default_factory=lambda: ["shape", "firstorder", "glcm", "glrlm", "glszm"], min_length=1)
    filters: list[Literal["wavelet", "log"]] = Field(default_factory=list)  # besides the original image
    log_sigma_mm: list[float] = Field(default_factory=lambda: [2.0, 4.0], min_length=1)  # with filters: [log]
    # intensity units of the normalised volumes (histogram: brain p1 -> 10, p99 -> 90, so about
    # 40 bins over the brain); a z-scored work folder (preprocess.normalization: zscore) wants ~0.1
    bin_width: float = Field(2.0, gt=0)
    labels: TumorLabels = "whole"  # the region: all labels > 0, the core (1, 3, 4) or a list
    sequences: list[Literal["t1", "t1c", "t2", "flair"]] = Field(
        default_factory=lambda: ["t1", "t1c", "t2", "flair"], min_length=1)
    classifiers: list[Literal["lr", "svm"]] = Field(default_factory=lambda: ["lr", "svm"])
    select_k: int = Field(20, ge=1)  # SelectKBest(f_classif) inside every training fold
    cs: list[float] = Field(default_factory=lambda: [1e-3, 1e-2, 1e-1, 1.0, 10.0], min_length=1)  # C by inner CV

    @property
    def has_rows(self) -> bool:
        """Whether a run computes the radiomics rows (and so their features)."""
        return self.enabled and bool(self.classifiers)

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value):
        if value is None:
            raise ValueError("expected 'whole', 'core' or a list of mask labels 1-255, got None")
        return _tumor_labels(value)


class SplitConfig(_Section):
    """Section 4.1: SSL set (FA cases), 7:3 train/test, train halved into A and B."""

    test_fraction: float = 0.3
    seed: int = 0
    repeats: int = 1
    # paper: encoders on A, classifiers on B. crossfit: also encoders on B, classifiers on A;
    # each test patient's probability is the mean of the two (docs/design.md point 22)
    protocol: Literal["paper", "crossfit"] = "paper"


class EvaluationConfig(_Section):
    """Section 5: AUC/ACC/SEN/SPE; threshold chosen on training data (open point 12). Beside
    them (issue 16, design points 41-42): Brier score and ECE in ``calibration_bins``
    equal-width bins, and split-conformal prediction sets at error rate ``conformal_alpha``
    (one threshold per class with ``conformal_class_conditional``)."""

    threshold: Literal["youden", "0.5"] = "youden"
    bootstrap: int = 1000
    calibration_bins: int = Field(10, ge=1)
    conformal_alpha: float = Field(0.1, gt=0, lt=1)
    conformal_class_conditional: bool = False


class PredictionConfig(_Section):
    """``gliotype predict``: how a new patient is read against the model's training cohort."""

    # not in the paper (docs/design.md point 43): the training band of the applicability checks. A
    # new patient whose measure lies outside these percentiles of the classifier-training patients'
    # is flagged (never refused); [0, 100]: only outside every training patient. Measured at export
    applicability_percentiles: tuple[float, float] = (1.0, 99.0)
    # not in the paper (design.md point 44): the exported model's calibrator, fitted at export on its
    # out-of-fit predictions of the classifier-training patients; predict reports the calibrated
    # P(mutant) beside the model's own (the decision stays the threshold on the model's own)
    calibration: Literal["none", "platt", "isotonic"] = "platt"

    @field_validator("applicability_percentiles")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError("applicability_percentiles must be [low, high] with 0 <= low < high <= 100")
        return value


class ExecutorConfig(_Section):
    """Where the per-patient stages run (docs/scale-out.md): ``local`` worker processes
    (``workers`` of them), or the workers of a Dask cluster (``dask``: the scheduler at
    ``scheduler``). Says where work runs, not what it computes: left out of every config hash
    (loader.LOCATION_OPTIONS), and a cluster gives the same files as the local processes."""

    engine: Literal["local", "dask"] = "local"
    scheduler: str | None = None  # engine dask: the scheduler's address, e.g. tcp://10.0.0.5:8786
    connect_timeout_s: float = Field(10.0, gt=0)  # an unreachable scheduler fails after this long

    @model_validator(mode="after")
    def _address(self) -> "ExecutorConfig":
        if self.engine == "dask" and not self.scheduler:
            raise ValueError("engine dask needs the scheduler's address (executor.scheduler, or --scheduler ADDRESS)")
        if self.engine == "local" and self.scheduler:
            raise ValueError("a scheduler address is set but engine is local: set executor.engine: dask")
        return self


class TrainConfig(_Section):
    """How the networks trained by ``fit`` (multi-modal, CNN baselines, self-supervised) run:
    processes, device, precision (docs/scale-out.md, "Training on several GPUs or nodes").

    ``processes`` x ``nodes`` processes each train on a slice of every batch (``batch_size``
    stays the global batch) and average their gradients: the loss curve of one process within
    float rounding. Only ``precision`` changes what is computed (docs/design.md point 45).
    """

    processes: int = Field(1, ge=1)  # per node; 1 = one process, as before
    nodes: int = Field(1, ge=1)  # > 1: the other nodes run `gliotype train join` (docs/scale-out.md)
    # host:port of the rendezvous (this node's address) with nodes > 1; None = a free local port
    endpoint: str | None = None
    backend: Literal["auto", "gloo", "nccl"] = "auto"  # auto: nccl on cuda, gloo on cpu
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto: cuda when available, else cpu
    # auto: bf16-mixed on a cuda device with bf16 (16-mixed without), 32 on the cpu
    precision: Literal["auto", "32", "bf16-mixed", "16-mixed"] = "auto"

    @field_validator("precision", mode="before")
    @classmethod
    def _precision(cls, value):
        return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class GliotypeConfig(_Section):
    """The resolved configuration of one run."""

    preset: str = "paper"
    seed: int = 0
    workers: int = 1
    # torch intra-op threads of each gliotype process (training and inference). 1: the same bytes
    # on every machine and for every ``workers`` (torch sums in another order on more threads), and
    # the cores go to processes instead: independent networks train side by side (``workers``)
    threads: int = Field(1, ge=1)
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig)
    input: InputConfig = Field(default_factory=InputConfig)
    preprocess: PreprocessConfig = Field(default_factory=PreprocessConfig)
    atlas: AtlasConfig = Field(default_factory=AtlasConfig)
    modalities: ModalitiesConfig = Field(default_factory=ModalitiesConfig)
    ssl: SelfSupervisedConfig = Field(default_factory=SelfSupervisedConfig)
    multimodal: MultiModalConfig = Field(default_factory=MultiModalConfig)
    population_graph: PopulationGraphConfig = Field(default_factory=PopulationGraphConfig)
    feature_classifiers: FeatureClassifiersConfig = Field(default_factory=FeatureClassifiersConfig)
    radiomics: RadiomicsConfig = Field(default_factory=RadiomicsConfig)
    baselines: BaselinesConfig = Field(default_factory=BaselinesConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    prediction: PredictionConfig = Field(default_factory=PredictionConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)

    @model_validator(mode="after")
    def _compartments_in_x_i(self) -> "GliotypeConfig":
        image = self.multimodal.image
        for option, value in (("compartment_weight", image.compartment_weight),
                              ("pretrain_epochs", image.pretrain_epochs)):
            if value > 0 and not self.modalities.image_label_channels:
                raise ValueError(f"multimodal.image.{option} reads the compartments from x_I: "
                                 "set modalities.image_label_channels: true as well")
        return self
