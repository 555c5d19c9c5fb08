"""The run folder (``RunDir``): its results (``ResultsDir``), explanations (``ExplainDir``),
trained Table 2 rows (``GraphRowDir``), repeats and the folder name of each Table 4 row
(``row_slug``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gliotype.layout.folder import _Folder
from gliotype.layout.model import ModelDir, MultiModalDir
from gliotype.layout.work import WorkDir


def row_slug(name: str) -> str:
    """The folder name of a Table 4 row: ``fI + fP + MLP + Lcontr`` -> ``fI_fP_MLP_Lcontr`` (a slug is its own slug)."""
    keep = "".join(c if c.isalnum() else "_" for c in name)
    return "_".join(p for p in keep.split("_") if p)


@dataclass(frozen=True)
class GraphRowDir(_Folder):
    """One trained Table 2 row (``RUNDIR/population_graphs[-B]/<node>-<edge>/``): its GNN and its
    predictions, stamped with the row's cache key (``row.json``, written last)."""

    @property
    def weights(self) -> Path:
        return self.root / "gnn.safetensors"

    @property
    def predictions(self) -> Path:
        """``predictions.npz``: P(mutant) of every node, the threshold predictions, the validation nodes."""
        return self.root / "predictions.npz"

    @property
    def meta(self) -> Path:
        """``row.json``: the key, the GNN's sizes and the training history."""
        return self.root / "row.json"


@dataclass(frozen=True)
class ResultsDir(_Folder):
    """``RUNDIR/results/``: the tables, predictions, figures, report and audit of one split
    (``gliotype audit --out`` writes its files into any folder laid out the same)."""

    #: the tables of a run, in report order
    TABLES = ("table2", "table3", "table4")

    def table(self, name: str | int, ext: str = "csv") -> Path:
        """``table{2,3,4}.csv`` (or ``.md``); ``name`` is ``"table3"`` or ``3``."""
        return self.root / f"{_table_name(name)}.{ext}"

    def repeats_table(self, name: str | int, ext: str = "csv") -> Path:
        """``repeats_table{2,3,4}.csv`` (or ``.md``): mean and SD over the repeated splits (top folder only)."""
        return self.root / f"repeats_{_table_name(name)}.{ext}"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions.csv"

    @property
    def roc(self) -> Path:
        """Fig. 6."""
        return self.root / "roc.png"

    @property
    def reliability(self) -> Path:
        """The reliability diagrams of the Table 3 models (issue 16)."""
        return self.root / "reliability.png"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    # the information audit (gliotype.audit)
    @property
    def audit(self) -> Path:
        """``audit.csv``: one row per feature group."""
        return self.root / "audit.csv"

    @property
    def audit_homophily(self) -> Path:
        return self.root / "audit_homophily.csv"

    @property
    def audit_descriptors(self) -> Path:
        return self.root / "audit_descriptors.csv"

    @property
    def audit_markdown(self) -> Path:
        return self.root / "audit.md"

    @property
    def audit_json(self) -> Path:
        return self.root / "audit.json"

    @property
    def audit_files(self) -> tuple[Path, ...]:
        """Every file the audit writes."""
        return self.audit, self.audit_homophily, self.audit_descriptors, self.audit_markdown, self.audit_json


def _table_name(name: str | int) -> str:
    return f"table{name}" if isinstance(name, int) else name


@dataclass(frozen=True)
class ExplainDir(_Folder):
    """``RUNDIR/explain/`` (``gliotype explain``): a folder per patient and the cohort summary."""

    def case(self, patient_id) -> Path:
        """The patient's folder (the files of :func:`gliotype.prediction.explain_case`)."""
        return self.root / str(patient_id)

    def case_json(self, patient_id) -> Path:
        return self.case(patient_id) / "explain.json"

    @property
    def edge_density(self) -> Path:
        return self.root / "edge_density.csv"

    @property
    def edge_density_groups(self) -> Path:
        return self.root / "edge_density_groups.csv"

    @property
    def edge_density_png(self) -> Path:
        return self.root / "edge_density.png"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"


_REPEATS = "repeats"
_REPEAT_PREFIX = "split-seed-"


@dataclass(frozen=True)
class RunDir(_Folder):
    """A run folder (``gliotype run --out``); see the module's docstring for the tree.

    A repeated split ``repeats/split-seed-<S>/`` is a :class:`RunDir` of its own; it holds only
    its ``splits.csv``, ``models*/`` and ``results/``, and hands out the top folder's work
    folder, ``config.yaml``, ``manifest.csv`` and ``validation.csv`` (written once per run).
    """

    @property
    def is_repeat(self) -> bool:
        """A folder ``repeats/split-seed-<S>`` of another run."""
        return self.root.parent.name == _REPEATS and self.root.name.startswith(_REPEAT_PREFIX)

    @property
    def top(self) -> RunDir:
        """The run this folder is a repeat of (itself when it is none)."""
        return RunDir(self.root.parent.parent) if self.is_repeat else self

    # of the run as a whole (a repeat's are the top folder's)
    @property
    def config(self) -> Path:
        return self.top.root / "config.yaml"

    @property
    def manifest(self) -> Path:
        """The manifest ``gliotype run --data`` scanned (``--manifest`` runs use theirs)."""
        return self.top.root / "manifest.csv"

    @property
    def validation(self) -> Path:
        """``validation.csv``: status and reason of every manifest row."""
        return self.top.root / "validation.csv"

    @property
    def work(self) -> WorkDir:
        return WorkDir(self.top.root / "work")

    # of one split
    @property
    def splits(self) -> Path:
        return self.root / "splits.csv"

    def models(self, fold: str = "A") -> Path:
        """The networks whose encoders trained on half ``fold``: ``models/`` (A), ``models-B/``."""
        return self.root / ("models" if fold == "A" else f"models-{fold}")

    def model_row(self, name: str, fold: str = "A") -> MultiModalDir:
        """The multi-modal network of a Table 4 row (its name or its slug)."""
        return MultiModalDir(self.models(fold) / row_slug(name))

    @property
    def lock(self) -> Path:
        """``.gliotype.lock``: held by the one ``gliotype run`` writing this folder (:mod:`gliotype.utils.lock`)."""
        return self.root / ".gliotype.lock"

    def graph_row(self, node: str, edge: str, fold: str = "A") -> GraphRowDir:
        """A Table 2 row fitted on the classifier half of fold ``fold`` (``population_graphs/`` for
        fold A, ``population_graphs-B/``)."""
        top = "population_graphs" if fold == "A" else f"population_graphs-{fold}"
        return GraphRowDir(self.root / top / f"{node}-{edge}")

    def baseline(self, name: str) -> Path:
        """A 3D CNN of Table 3 (``resnet34``, ``densenet121``), trained once on halves A and B."""
        return self.models("A") / name

    @property
    def model(self) -> ModelDir:
        """The exported model (the first split's)."""
        return ModelDir(self.root / "model")

    @property
    def results(self) -> ResultsDir:
        return ResultsDir(self.root / "results")

    @property
    def explain(self) -> ExplainDir:
        return ExplainDir(self.root / "explain")

    # repeated splits
    def repeat(self, split_seed: int) -> RunDir:
        """The folder of the split drawn with seed ``split_seed`` (the first split is the top folder)."""
        return RunDir(self.top.root / _REPEATS / f"{_REPEAT_PREFIX}{int(split_seed)}")

    def repeats(self) -> list[RunDir]:
        """The repeat folders present, sorted by path (empty when there is none)."""
        return [RunDir(p) for p in sorted((self.top.root / _REPEATS).glob(f"{_REPEAT_PREFIX}*"))]
