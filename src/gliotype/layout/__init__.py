"""The on-disk layout of a *work folder*, a *model folder* and a *run folder*: every path under
them is spelled here, and only here.

A work folder (``gliotype preprocess --out``, ``RUNDIR/work/``, the temporary folder of
``gliotype predict``) holds the per-patient intermediate files of every stage and the
models fitted on them. Stages never join path parts themselves: they ask a
:class:`WorkDir` (and the :class:`CaseDir`, :class:`AtlasDir`, :class:`SslDir` and
:class:`TransformsDir` it hands out) for the file they read or write. The names are those
of existing work folders, so a cached work folder keeps working::

    WORKDIR/
        .gliotype.lock                      held by the one command writing the folder
        preprocessing.csv                   status table of preprocessing
        modalities_status.csv               status table of the modalities
        brain_network_status.csv            status table of the brain networks
        atlas/                              AtlasDir: the fixed atlas positions
            atlas_sampling.npz  tract_matrix.npz  tract_grid.json
        ssl/                                SslDir: the self-supervised models
            node/  edge/                    checkpoints (gliotype.utils.training)
            node_autoencoder.safetensors  edge_model.safetensors  models.json  report.json  config.yaml
        image_pretraining/                  ImagePretrainingDir: f_I pretrained on the compartments
            checkpoints/  image_encoder.safetensors  image_encoder.json (its record, written last)
        patients/<id>/                      CaseDir: one patient
            done.json                       preprocessing's cache key, written last
            preprocessed/                   on the template grid
                t1.nii.gz  t1c.nii.gz  t2.nii.gz  flair.nii.gz  mask.nii.gz  brain_mask.nii.gz
                fa.nii.gz (FA cases)  qc.json  preprocess.log
                transforms/                 TransformsDir: ANTs files + transforms.json
            modalities/
                tumor_image.nii.gz  point_cloud.npz  crossing.npz  atlas_samples.npz  modalities.json
            brain_network.safetensors       x_B
            brain_network.json              its record: cache key, size, sha256
            radiomics/                      Table 3's radiomics rows (radiomics.enabled)
                features.json  radiomics.json (its record, written last)
            audit/descriptors.json          cached tumour descriptors
            inspect.png                     ``gliotype inspect``

The exported model folder (``RUNDIR/model/``, :class:`ModelDir`) holds ``atlas/`` and
``ssl/`` folders laid out as here, so :class:`AtlasDir` and :class:`SslDir` also read those.

A run folder (``gliotype run --out RUNDIR``, :class:`RunDir`) holds the work folder, the
split, the trained networks, the exported model and the results::

    RUNDIR/
        config.yaml  manifest.csv (when scanned from --data)  validation.csv
        dicom_nifti/<id>/<role>.nii.gz      --data of DICOM studies: the converted series (+ <role>.json)
        .gliotype.lock                      held by the one `gliotype run` writing the folder
        work/                               WorkDir (shared by the repeats)
        splits.csv                          patient_id, split, idh
        models/<row slug>/                  MultiModalDir: encoders trained on half A (Table 4 rows)
        models/<baseline>/                  Table 3's 3D CNNs (resnet34, densenet121)
        models-B/<row slug>/                the cross-fitting fold (encoders on half B)
        population_graphs[-B]/<node>-<edge>/ GraphRowDir: a trained Table 2 row (GNN, predictions)
        model/                              ModelDir: the exported model (split 0 only)
        results/                            ResultsDir
            table{2,3,4}.csv/.md  predictions.csv  roc.png  report.html  summary.json
            audit.csv  audit_homophily.csv  audit_descriptors.csv  audit.md  audit.json
            repeats_table{2,3,4}.csv/.md    (top folder, with --repeats > 1)
        repeats/split-seed-<S>/             a RunDir of its own for split seed S (splits.csv,
                                            models/, models-B/, results/); its work/,
                                            config.yaml, manifest.csv are the top folder's
        explain/                            ExplainDir (``gliotype explain``)
            <id>/ (explain.json and the files of ``explain_case``)
            edge_density.csv  edge_density_groups.csv  edge_density.png  summary.json

Every class is a frozen dataclass around ``root`` and is :class:`os.PathLike`, so
``Path(workdir)`` still works where a function is handed a :class:`WorkDir`.
"""

from gliotype.layout.model import ModelDir, MultiModalDir, PopulationGraphDir
from gliotype.layout.run import ExplainDir, GraphRowDir, ResultsDir, RunDir, row_slug
from gliotype.layout.work import AtlasDir, CaseDir, ImagePretrainingDir, SslDir, TransformsDir, WorkDir

#: The folder of DICOM conversions, beside the manifest (``gliotype cohort scan``; the run folder
#: with ``gliotype run --data``): ``dicom_nifti/<id>/<role>.nii.gz``.
DICOM_NIFTI = "dicom_nifti"

__all__ = ["AtlasDir", "CaseDir", "DICOM_NIFTI", "ExplainDir", "GraphRowDir", "ImagePretrainingDir", "ModelDir",
           "MultiModalDir", "PopulationGraphDir", "ResultsDir", "RunDir", "SslDir", "TransformsDir", "WorkDir",
           "row_slug"]
