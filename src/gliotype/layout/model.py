"""The exported model folder (``ModelDir``): the multi-modal network (``MultiModalDir``, also
a run's ``models/<row>/``) and the stored population graph (``PopulationGraphDir``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gliotype.layout.folder import _Folder
from gliotype.layout.work import AtlasDir, SslDir


@dataclass(frozen=True)
class MultiModalDir(_Folder):
    """One trained multi-modal network (``RUNDIR/models/<row>/``, a model folder's ``multimodal/``)."""

    @property
    def weights(self) -> Path:
        return self.root / "model.safetensors"

    @property
    def meta(self) -> Path:
        """``model.json``: the cache key and encoders, written last."""
        return self.root / "model.json"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def diverged(self) -> Path:
        """``diverged.json``: the key of a training whose loss diverged and the reason (a training
        under that key is not tried again: it is deterministic)."""
        return self.root / "diverged.json"

    @property
    def features(self) -> Path:
        """``features.csv``: u_I, u_P, u_T, u_B of every featurised patient."""
        return self.root / "features.csv"

    @property
    def features_meta(self) -> Path:
        """``features.json``: the model key ``features.csv`` was made with."""
        return self.root / "features.json"

    @property
    def copied(self) -> tuple[Path, ...]:
        """What a model folder copies."""
        return self.weights, self.meta


@dataclass(frozen=True)
class PopulationGraphDir(_Folder):
    """A model folder's ``population_graph/``: the stored graph and its GNN."""

    @property
    def nodes(self) -> Path:
        """u_T, u_B, labels and transductive probabilities of the stored patients."""
        return self.root / "nodes.npz"

    @property
    def standardisation(self) -> Path:
        return self.root / "standardisation.npz"

    @property
    def gnn(self) -> Path:
        return self.root / "gnn.safetensors"

    @property
    def meta(self) -> Path:
        """``meta.json``: graph row, theta, threshold, GNN sizes."""
        return self.root / "meta.json"

    @property
    def neighbours(self) -> Path:
        """``neighbours.faiss``: the ann index of the stored patients' edge features (faiss's own format),
        written only with ``population_graph.neighbours: ann``."""
        return self.root / "neighbours.faiss"


@dataclass(frozen=True)
class ModelDir(_Folder):
    """A trained-model folder (``RUNDIR/model/``), what ``gliotype predict`` loads::

        MODEL/
            config.yaml  manifest.json (sha256 of every other file)
            manifest.sig       the Ed25519 signature of manifest.json (optional: gliotype model sign)
            ssl/               SslDir (the copied models)
            atlas/             AtlasDir (the copied positions + regions.npz)
            multimodal/        MultiModalDir (weights, model.json)
            population_graph/  PopulationGraphDir (neighbours.faiss only with neighbours: ann; listed
                               and hashed like the rest)
            sequence_spread.json  what losing each sequence does to the prediction (optional:
                               models exported before it have none; listed and hashed like the rest)
            calibration.json   the calibrator and conformal predictor of the exported GNN (optional,
                               like sequence_spread.json)
            applicability.json    the training ranges a new patient is checked against (optional,
                               like sequence_spread.json)
            MODEL_CARD.md      intended use, limits, training cohort, test metrics, versions
                               (optional, as sequence_spread.json: listed and hashed like the rest)
    """

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.json"

    @property
    def signature(self) -> Path:
        """``manifest.sig``: the Ed25519 signature of ``manifest.json`` (absent: an unsigned folder)."""
        return self.root / "manifest.sig"

    @property
    def ssl(self) -> SslDir:
        return SslDir(self.root / "ssl")

    @property
    def atlas(self) -> AtlasDir:
        return AtlasDir(self.root / "atlas")

    @property
    def multimodal(self) -> MultiModalDir:
        return MultiModalDir(self.root / "multimodal")

    @property
    def population_graph(self) -> PopulationGraphDir:
        return PopulationGraphDir(self.root / "population_graph")

    @property
    def sequence_spread(self) -> Path:
        """``sequence_spread.json``: per sequence, the SD of the change of the model's logit when the
        sequence is removed (measured at export on the classifier-training patients); it widens the
        interval of a prediction made without that sequence. Not in :meth:`required`: optional."""
        return self.root / "sequence_spread.json"

    @property
    def calibration(self) -> Path:
        """``calibration.json``: the exported GNN's calibrator and conformal predictor, fitted on its out-of-fit
        predictions of the classifier-training patients (:mod:`gliotype.prediction.calibrated`). Optional."""
        return self.root / "calibration.json"

    @property
    def applicability(self) -> Path:
        """``applicability.json``: the training ranges of the applicability checks (registration, tumour
        volume and intensities, distance in feature space; measured at export on the classifier-training
        patients, :mod:`gliotype.prediction.applicability`). Not in :meth:`required`: optional."""
        return self.root / "applicability.json"

    @property
    def card(self) -> Path:
        """``MODEL_CARD.md`` (:mod:`gliotype.experiment.model_card`): what the model is for and how it did,
        written at export before the manifest, so its sha256 is checked like the weights' (the numbers a
        model is shared with cannot be edited apart from it). Not in :meth:`required`: older exports lack it."""
        return self.root / "MODEL_CARD.md"

    def required(self) -> tuple[str, ...]:
        """The files a complete model folder holds (``manifest.json`` and ``manifest.sig`` aside), relative,
        ``/``-separated: every file :func:`gliotype.prediction.load_model` reads."""
        pg = self.population_graph
        paths = (self.config, *self.ssl.copied, *self.atlas.copied, *self.multimodal.copied, pg.nodes, pg.gnn,
                 pg.meta, pg.standardisation, self.atlas.regions)
        return tuple(p.relative_to(self.root).as_posix() for p in paths)

    def optional(self) -> tuple[str, ...]:
        """The files an export writes that a model folder may lack (an older export), relative: read
        when ``manifest.json`` lists them (and then checked like the required ones), refused when
        present but unlisted."""
        return tuple(p.relative_to(self.root).as_posix() for p in (self.sequence_spread, self.calibration,
                                                                   self.applicability,
                                                                   self.card, self.population_graph.neighbours))
