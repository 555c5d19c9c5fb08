"""The report of one prediction: its input-check rows, its applicability flags and ``report.html``.

:func:`input_checks` gives the rows of checks shown in ``prediction.json`` and the
report (roles and numbers, never file names); :func:`write_report` writes
``report.html``, self-contained (figures embedded as base64 PNG). It names the patient
by the ID only: no input path, file name or image header text.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

from gliotype.input.manifest import SEQUENCE_NAMES
from gliotype.utils.io import atomic_write

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1240px;margin:2em auto;color:#222;
padding:0 1em}
h1{font-size:1.5em;margin-bottom:.2em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.summary{display:flex;gap:2em;align-items:center;background:#f6f6f6;padding:1em 1.5em;border-radius:6px}
.prob{font-size:2.4em;font-weight:600} .decision{font-size:1.4em;font-weight:600}
.mutant{color:#8a2be2} .wildtype{color:#1f6fb2}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.3em .6em;text-align:left;
vertical-align:top}
th{background:#f0f0f0} .bad{color:#b00020;font-weight:600} .ok{color:#2e7d32}
img{max-width:100%;height:auto;border:1px solid #eee;display:block} .note{color:#555;font-size:.92em}
figure{margin:.6em 0} figcaption{color:#555;font-size:.92em;margin-top:.4em}
.applicability{border:2px solid #e65100;background:#fff3e0;border-radius:6px;padding:.6em 1.2em;margin:1em 0}
.applicability h3{margin:.2em 0 .4em;color:#b23c00;font-size:1.1em}
.calibration{border-left:4px solid #1565c0;background:#f3f8fd;padding:.3em 1em;margin:1em 0}
"""


def _e(value) -> str:
    return html.escape(str(value), quote=True)


def _img(folder: Path, name: str, alt: str, caption: str) -> str:
    """The figure ``name`` of ``folder`` embedded with its caption (``caption``: HTML), or a note that it is
    not there followed by the caption's text."""
    path = folder / name
    if not path.exists():
        return f"<p class='note'>{_e(alt)}: not available for this model.</p>\n<p class='note'>{caption}</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<figure><img alt='{_e(alt)}' src='data:image/png;base64,{data}'>\n"
            f"<figcaption>{caption}</figcaption></figure>")


def _fmt(v, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def input_checks(checked: dict, qc: dict, modalities: dict, graph: dict, model) -> list[dict]:
    """The checks shown in the report and ``prediction.json`` (roles and numbers, never file names).

    ``checked``: :func:`~gliotype.prediction.inputs.check_inputs`; ``qc``: preprocessing's
    quality checks; ``modalities``: the modalities' information; ``graph``:
    :func:`~gliotype.prediction.insertion.graph_predict`; ``model``: the
    :class:`~gliotype.prediction.TrainedModel`.
    """
    info, cfg = checked["info"], model.config.preprocess
    missing = info.get("missing_sequences", [])
    given = [s for s in ("t1", "t1c", "t2", "flair") if s not in missing] + ["mask"]
    ref = info.get("reference_sequence", "t1c")
    rows = [
        {"check": "input files", "result": f"{', '.join(given[:-1])} and mask are readable 3D images with finite "
                                           "values", "ok": True},
        {"check": f"{ref} grid", "result": f"{' x '.join(map(str, info.get('shape', [])))} voxels of "
                                           f"{' x '.join(f'{s:g}' for s in info.get('spacing_mm', []))} mm", "ok": True},
        {"check": "mask labels", "result": ", ".join(map(str, info.get("labels", []))) +
         f" ({info.get('tumor_voxels', 0)} tumor voxels)", "ok": True},
    ]
    if missing:
        rows.append({"check": "missing sequences", "result": f"{', '.join(missing)}: predicted without "
                     f"{'it' if len(missing) == 1 else 'them'} (zero volume; imputed in the brain network)",
                     "ok": False})
    rows += [{"check": "grid", "result": w, "ok": True} for w in checked["warnings"]
             if not w.startswith("missing ")]
    ss = qc.get("skull_stripped", {})
    rows.append({"check": "skull stripping", "result": f"input skull-stripped: {'yes' if ss.get('detected') else 'no'}"
                 f"; brain mask {ss.get('brain_native_ml', 0):.0f} ml", "ok": True})
    rows.append({"check": "tumor inside the brain", "result": f"{100 * qc.get('tumor_inside_brain', 0):.0f}% "
                 f"(minimum {100 * cfg.min_tumor_in_brain:.0f}%)", "ok": True})
    rows.append({"check": "registration to the template", "result": str(qc.get("registration")), "ok": True})
    dice = qc.get("brain_dice")
    rows.append({"check": "brain mask Dice with the template", "result": f"{dice:.3f} (minimum {cfg.qc_min_dice})",
                 "ok": dice is not None and dice >= cfg.qc_min_dice})
    rows.append({"check": "tumor volume, native -> template",
                 "result": f"{qc.get('tumor_native_mm3', 0) / 1000:.1f} ml -> {qc.get('tumor_template_mm3', 0) / 1000:.1f}"
                           f" ml (linear scale {qc.get('linear_scale', 1):.2f})", "ok": True})
    trunc = float(modalities.get("truncated_fraction", 0.0))
    rows.append({"check": "tumor inside the crop x_I", "result": f"{100 * (1 - trunc):.1f}% of tumor voxels",
                 "ok": trunc <= 0.05})
    rows.append({"check": "tracts crossed by the tumor surface", "result": str(modalities.get("tracts_crossed")),
                 "ok": True})
    rows.append({"check": "population-graph neighbours (eq. 8, r >= theta)",
                 "result": f"{graph['neighbours']} of {model.graph.num_nodes} stored patients",
                 "ok": graph["neighbours"] > 0})
    return rows


def _segmentation(record: dict, figures: Path) -> str:
    """The section of an automatic mask (``record["segmentation"]["source"] == "auto"``), else nothing."""
    seg = record.get("segmentation") or {}
    if seg.get("source") != "auto":
        return ""
    v = seg.get("volumes_ml", {})
    warnings = "".join(f"<li class='bad'>{_e(w)}</li>" for w in seg.get("warnings", []))
    return (f"<h2>Automatic segmentation: check it</h2>\n"
            f"<p class='bad'>No tumour mask was given: the mask was made by the segmenter {_e(seg.get('segmenter'))} "
            f"({_e(seg.get('kind'))}) and the whole prediction rests on it. Check it before reading the result.</p>\n"
            + _img(figures, seg.get('figure', 'segmentation.png'), 'automatic segmentation: check it',
                   f"The automatic mask. Whole tumour {_fmt(v.get('whole_tumor'), 1)} ml: necrotic core "
                   f"{_fmt(v.get('necrotic_core'), 1)} ml (label 1), edema {_fmt(v.get('edema'), 1)} ml (label 2), "
                   f"enhancing {_fmt(v.get('enhancing'), 1)} ml (label 4, or 3). The mask: {_e(seg.get('file'))}.")
            + "\n"
            + (f"<ul>{warnings}</ul>\n" if warnings else ""))


def missing_text(record: dict) -> str:
    """The report's sentence on the missing sequences and on what the interval includes ('' when complete)."""
    missing = record.get("missing_sequences") or []
    if not missing:
        return ""
    names = [SEQUENCE_NAMES.get(s, s) for s in missing]
    named = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    spread = record["uncertainty"].get("missing_sequence_spread", {})
    if spread.get("included"):
        lo, hi = spread["interval_95_without"]
        sds = ", ".join(f"{SEQUENCE_NAMES.get(s, s)} {v:.2f}" for s, v in spread["sd_logit"].items())
        how = (f"The interval is widened by the spread of this model's prediction when the sequence is removed, "
               f"measured on its training patients (SD of the logit change: {sds}); without it the interval "
               f"would be {lo:.3f} &ndash; {hi:.3f}.")
    else:
        how = f"The interval does not include the missing-sequence spread: {_e(spread.get('reason', ''))}."
    return (f"<p class='bad'>Missing: {_e(named)}. The patient was predicted without "
            f"{'it' if len(missing) == 1 else 'them'} (an empty volume in the tumour image, imputed in the brain "
            f"network), so this prediction is less certain than one with all four sequences. {how}</p>")


def applicability_text(record: dict) -> str:
    """The report's applicability flags (``record["applicability"]``, next to the prediction): a box with
    one line per check outside the training range, else one short line."""
    from gliotype.prediction.applicability import ordinal

    app = record.get("applicability")
    if not app:
        return ""
    if app["in_domain"] is None:
        return f"<p class='note'>Applicability: {_e(app['summary'])}.</p>"
    n = app.get("training_patients")
    if app["in_domain"]:
        return (f"<p class='note ok'>Applicability: {_e(app['summary'])} (registration, tumour and features "
                f"against the model's {n} training patients).</p>")
    lo, hi = app["percentiles"]
    share = app.get("training_outside_share")
    reasons = "".join(f"<li>{_e(r)}</li>" for r in app["reasons"])
    return (f"<div class='applicability'><h3>This patient is unlike the training cohort: {_e(app['summary'])}</h3>"
            f"<ul>{reasons}</ul><p class='note'>The checks compare this patient with the model's {n} "
            f"classifier-training patients: registration to the template, tumour volume, the tumour's median on "
            f"each standardised sequence, and the distance to the nearest training patient in the model's feature "
            f"space. The training range runs from their {ordinal(lo)} to their {ordinal(hi)} percentile (from their "
            f"minimum to their maximum in a small cohort)"
            + (f"; {share * 100:.0f}% of the training patients are themselves outside it on at least one check"
               if share is not None else "") +
            ". The patient was predicted, not refused, but the model has seen no such case: the prediction of a "
            "patient outside the training range is less reliable than its interval says (docs/prediction.md).</p>"
            "</div>")


def calibration_text(record: dict) -> str:
    """The report's calibrated probability and conformal prediction set (``record["calibration"]``), with how
    to read them; one line saying why when the model has none."""
    cal = record.get("calibration")
    if not cal:
        return ""
    if not cal.get("available"):
        return f"<p class='note'>No calibrated probability or prediction set: {_e(cal.get('reason', ''))}.</p>"
    members = cal["prediction_set"]
    if len(members) == 2:
        verdict = "both IDH-mutant and IDH-wildtype: at this coverage the model cannot rule out either"
    elif members:
        verdict = f"{_e(members[0])} only"
    else:
        verdict = "empty: neither class is plausible enough (a rare, atypical output)"
    lo, hi = cal.get("calibrated_interval_95", [None, None])
    interval = f" (interval {lo:.3f} &ndash; {hi:.3f})" if lo is not None else ""
    return (f"<div class='calibration'><p><b>Calibrated P(IDH mutant): {cal['calibrated_probability']:.3f}</b>"
            f"{interval}; <b>{cal['coverage'] * 100:.0f}% prediction set: {verdict}</b>.</p>"
            + (f"<p class='bad'>Calibration: {_e(cal['note'])}.</p>" if cal.get("note") else "") +
            f"<p class='note'>Both were fitted at export on the {_e(cal['fitted_on'])}, patients the model did not "
            f"fit. The calibrated probability ({_e(cal['method'])}) is the fraction of such patients with this "
            f"score who were IDH-mutant; the model's own probability above ranks patients but need not mean that. "
            f"The prediction set holds the true class for {cal['coverage'] * 100:.0f}% of patients like the "
            f"training cohort"
            + (" in each class" if cal.get("class_conditional") else "") +
            "; a set of both classes says the model cannot decide at that coverage. Both assume the patient "
            "resembles the training cohort (see the applicability checks).</p></div>")


def write_report(path: str | Path, record: dict, figures: str | Path) -> Path:
    """Write the report of one prediction ``record`` (the content of ``prediction.json``)."""
    path, figures = Path(path), Path(figures)
    pid = record["patient_id"]
    p = record["idh_mutant_probability"]
    unc = record["uncertainty"]
    lo, hi = unc["interval_95"]
    model = record["model"]
    interp = record.get("interpretation") or {}
    cls = "mutant" if record["decision"] == "IDH-mutant" else "wildtype"
    checks = "".join(
        f"<tr><td>{_e(c['check'])}</td><td>{_e(c['result'])}</td>"
        f"<td class='{'ok' if c['ok'] else 'bad'}'>{'OK' if c['ok'] else 'CHECK'}</td></tr>"
        for c in record["input_checks"])
    n_lab = record.get("graph_neighbour_labels", {})
    neighbours = (f"{record['graph_neighbours']} of {record['graph_nodes']} stored patients "
                  f"({n_lab.get('IDH-mutant', 0)} IDH-mutant, {n_lab.get('IDH-wildtype', 0)} IDH-wildtype, "
                  f"{n_lab.get('unlabelled', 0)} unlabelled)")
    isolated = ("<p class='bad'>The patient has no neighbour in the population graph (no stored patient with "
                "r &ge; theta): the prediction rests on the patient's own features only.</p>"
                if record["graph_neighbours"] == 0 else "")
    rho = interp.get("gradcam_attention_spearman")
    fig7_caption = (f"A pre-contrast T1, B T2, C T2-FLAIR of the tumor crop x<sub>I</sub> (template space); "
                    f"D Grad-CAM of the image encoder (the score of the class its head gives the patient, "
                    f"{_e(interp.get('gradcam_class', 'IDH-mutant'))}; high: regions that raise it) over "
                    f"post-contrast T1; E the tumor surface "
                    f"points coloured by the projected Grad-CAM; F by the geometric encoder's attention. "
                    f"Rank agreement of E and F (Spearman rho): {_fmt(rho, 2)}.")
    if "important_edges" in interp:
        fig8_caption = (f"Edges (tracts) of the brain network with GNNExplainer probability &gt; "
                        f"{interp['edge_threshold']:g}: {interp['important_edges']} of {interp['edges']} "
                        f"(density {interp['edge_density']:.3f}); explainer {interp['explainer_epochs']} epochs, "
                        f"seed {interp['explainer_seed']}.")
    else:
        fig8_caption = "Edge importance was not computed."
    seconds = record.get("seconds", {})
    timing = ", ".join(f"{_e(k)} {v:.1f} s" for k, v in seconds.items() if isinstance(v, (int, float)))
    skipped = "".join(f"<li>{_e(s)}</li>" for s in interp.get("skipped", []))
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>gliotype prediction: {_e(pid)}</title>
<style>{_CSS}</style></head><body>
<h1>IDH prediction for patient {_e(pid)}</h1>
<p class="note">gliotype {_e(record['gliotype_version'])}: multi-modal learning for predicting the genotype of glioma
(Wei et al., IEEE TMI 2023). Research software: not a medical device, not for clinical decisions.</p>
<div class="summary">
 <div><div class="note">P(IDH mutant)</div><div class="prob">{p:.3f}</div></div>
 <div><div class="note">decision at the model's threshold {record['threshold']:.3f}</div>
  <div class="decision {cls}">{_e(record['decision'])}</div></div>
 <div><div class="note">95% subsampling interval</div><div class="decision">{lo:.3f} &ndash; {hi:.3f}</div>
  <div class="note">{unc['decision_agreement'] * 100:.0f}% of {unc['draws']} draws give the same decision</div></div>
</div>
{calibration_text(record)}
{applicability_text(record)}
{missing_text(record)}
<p>Population graph: the patient was inserted as a new node with eq. 8 edges to {neighbours}; no retraining.
The interval re-predicts the patient {unc['draws']} times in random subsets of {unc['nodes_per_draw']} stored
patients ({unc['node_fraction'] * 100:.0f}%): it shows how much the prediction depends on the reference cohort, not
a calibrated confidence interval (docs/prediction.md).</p>
{isolated}
{_segmentation(record, figures)}<h2>Image and geometric encoders (Fig. 7)</h2>
{_img(figures, 'figure7.png', 'Fig. 7', fig7_caption + ' Grad-CAM maps: gradcam.nii.gz (template grid) and '
      'gradcam_native.nii.gz (the patient' + chr(39) + 's T1c grid, through the stored inverse registration).')}
<h2>Brain network (Fig. 8)</h2>
{_img(figures, 'figure8.png', 'Fig. 8', fig8_caption + ' All edge probabilities: edges.csv.')}
{f'<ul class="note">{skipped}</ul>' if skipped else ''}
<h2>Input checks</h2>
<table><tr><th>check</th><th>result</th><th></th></tr>{checks}</table>
<h2>Model</h2>
<table>
<tr><td>model id (sha256 of manifest.json)</td><td>{_e(model['model_id'])}</td></tr>
<tr><td>trained with gliotype</td><td>{_e(model['gliotype_version'])}</td></tr>
<tr><td>config hash</td><td>{_e(model['config_hash'])} (preset {_e(model['preset'])})</td></tr>
<tr><td>population graph</td><td>{_e(model['population_graph'])}</td></tr>
<tr><td>multi-modal network's own BCE head</td><td>P(IDH mutant) {_fmt(record.get('multimodal_head_probability'))}
 (for reference; the prediction is the population graph's)</td></tr>
</table>
<p class="note">Run time: {timing}.</p>
<p class="note">The maps show what this trained model uses for its prediction; they are not evidence of biology
(docs/interpretation.md, Limitations). A model is only as good as the cohort it was trained on: see the run's
results/report.html for its test performance.</p>
</body></html>
"""
    atomic_write(path, text)
    return path


__all__ = ["applicability_text", "input_checks", "missing_text", "write_report"]
