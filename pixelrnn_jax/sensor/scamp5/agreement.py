"""Sim-to-real: how well a sensor model predicts what the real SCAMP-5 read out.

    results = evaluate("cam_noise_iw10.txt", "cambridge_test_frames.npz",
                       "cambridge_scamp5_outputs.npz", "runs/sim2real")

For the videos whose frames are given (matched by name with the recordings) the predictions
are scored against their real readouts: the "ideal" mode (`pixelrnn_jax.encode`, which the
ideal program equals), the noise-free chip program, and the chip program on the error model
(`calibration="default"`: the shipped calibration, or a calibration file; no refit on the
scored videos): the expected readout over `draws` noisy runs of the fast emulation.
`calibration="refit"` scores the per-fold refit of the readout response instead
(`calibrate.calibrate`: each video predicted by a response fitted on the other folds).
Scores:

  correlation        mean over videos of the Pearson correlation over crop pixels 1..62;
  sign_agreement     mean fraction of those pixels with the same sign (model units);
  transfer_accuracy  a linear decoder trained on the real readouts of the official-train
                     videos (settings by cross-validation on them), applied to the simulated
                     readouts, each domain standardised per pixel by its own statistics;
  sim_trained_real_accuracy   a decoder trained only on simulated single runs of the framed
                     videos (`augment` noisy runs each; settings by video-level
                     cross-validation), scored on the real readouts of every recording that
                     is not framed, each domain standardised by its own statistics;
  real_trained_real_accuracy  the same decoder trained on the framed videos' real readouts;
  run_to_run_correlation  the model's two single runs against each other: the hidden state's
                     chaos under noise; sqrt of it bounds the correlation an expected
                     readout can reach with one real run (`correlation_ceiling`);
  class_information  how much of the class the framed videos' readouts carry, scored alike
                     on the real readouts, the noise-free chip program and the model's single
                     runs (trained on one run, tested on another): a ridge classifier on
                     each video's standardised crop, stratified video-level
                     cross-validation (`class_information`). A model whose noise erases
                     what the real readouts carry scores below them here.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax import plots
from pixelrnn_jax.core import ModelConfig, encode
from pixelrnn_jax.sensor import authors_files as official
from pixelrnn_jax.sensor import authors_model, readout_decoder, recordings
from pixelrnn_jax.sensor.scamp5 import calibrate as cal
from pixelrnn_jax.sensor.scamp5 import chip_facts as chip
from pixelrnn_jax.sensor.scamp5 import chip_program
from pixelrnn_jax.sensor.scamp5.noise import NoiseModel
from pixelrnn_jax.sensor.units import UNITS_PER_PRODUCT

__all__ = ["load_frames", "match", "scores", "ideal_readouts", "evaluate",
           "decoder_accuracies", "class_information"]


def load_frames(path) -> dict:
    """A frames archive in the layout of `cambridge_test_frames.npz`: `frames` uint8
    (n t 64 64), `names` (n,), `labels` (n,), optionally `binarized` (n t 64 64) bool."""
    path = Path(path)
    out = recordings.read_npz(path, ("frames", "names", "labels"), "frames",
                              "frames (n, t, 64, 64) uint8, names (n,), labels (n,)")
    f = out["frames"]
    if f.dtype != np.uint8 or f.ndim != 4 or f.shape[-2:] != (chip.SIDE, chip.SIDE):
        raise ValueError(f"{path}: frames must be uint8 (n, t, 64, 64), got {f.dtype} {f.shape}")
    if out["names"].shape != (len(f),) or out["labels"].shape != (len(f),):
        raise ValueError(f"{path}: names and labels must be ({len(f)},) to match frames")
    if "binarized" in out and out["binarized"].shape != f.shape:
        raise ValueError(f"{path}: binarized {out['binarized'].shape} must match frames {f.shape}")
    out["names"] = out["names"].astype(str)
    return out


def match(frames: dict, rec: recordings.Recordings, limit: int | None = None) -> np.ndarray:
    """Index into the recordings of every framed video (by name); a clear error when any
    video has no readout."""
    where = {n: i for i, n in enumerate(rec.names)}
    missing = [n for n in frames["names"] if n not in where]
    if missing:
        raise ValueError(f"{len(missing)} video(s) of the frames archive have no readout in "
                         f"{rec.source}, e.g. {missing[0]!r}: the names must match")
    idx = np.asarray([where[n] for n in frames["names"]])
    return idx if limit is None else idx[:limit]


def scores(sim, real) -> dict:
    return {"correlation": float(cal.correlation(sim, real).mean()),
            "sign_agreement": float(cal.sign_agreement(sim, real).mean())}


def ideal_readouts(weights: official.OfficialWeights, frames: dict) -> np.ndarray:
    """The ideal mode (`encode`, the PyTorch semantics) on the archive's binarised frames
    (`binarized`, else the upload rule): last readout (n 64 64)."""
    bits = frames["binarized"] if "binarized" in frames else chip.binarize_frames(frames["frames"])
    cfg = ModelConfig(num_classes=9, K=chip.CYCLE)
    variables = authors_model.to_variables(weights, cfg)
    video = jnp.where(jnp.asarray(bits), 1.0, -1.0)
    out = [np.asarray(encode(variables, video[s:s + 16], cfg))[:, -1]
           for s in range(0, len(video), 16)]
    return np.concatenate(out)


def decoder_accuracies(rec: recordings.Recordings, framed: np.ndarray, sim: np.ndarray,
                       sim_runs: np.ndarray, config: readout_decoder.DecoderConfig) -> dict:
    """The three decoder scores of the module docstring. framed: indices of the framed
    videos in `rec`; sim: their expected readouts (n 64 64); sim_runs: single runs
    (augment n 64 64), model units."""
    ncls = rec.num_classes
    out = {}
    train = (rec.official_train.copy() if rec.official_train is not None
             else np.ones(len(rec), bool))
    train[framed] = False
    labels = rec.labels[framed]
    dec, best = readout_decoder.select_and_fit(rec.readouts[train], rec.labels[train], config,
                                               ncls)
    out["transfer_accuracy"] = readout_decoder.accuracy_own_statistics(dec, sim, labels)
    out["transfer_decoder"] = {"n_train": int(train.sum()), "margin": best["margin"],
                               "weight_decay": best["weight_decay"],
                               "real_accuracy_on_framed": readout_decoder.
                               accuracy_own_statistics(dec, rec.readouts[framed], labels)}
    rest = np.ones(len(rec), bool)
    rest[framed] = False
    a, n = sim_runs.shape[:2]
    x_sim = sim_runs.reshape(a * n, chip.SIDE, chip.SIDE)
    y_sim = np.tile(labels, a)
    groups = np.tile(np.arange(n), a)
    dec_s, best_s = readout_decoder.select_and_fit(x_sim, y_sim, config, ncls, groups)
    dec_r, best_r = readout_decoder.select_and_fit(rec.readouts[framed], labels, config, ncls)
    real_rest, y_rest = rec.readouts[rest], rec.labels[rest]
    out["sim_trained_real_accuracy"] = readout_decoder.accuracy_own_statistics(
        dec_s, real_rest, y_rest)
    out["real_trained_real_accuracy"] = readout_decoder.accuracy_own_statistics(
        dec_r, real_rest, y_rest)
    out["sim_trained_decoder"] = {"n_train": int(a * n), "videos": int(n), "augment": int(a),
                                  "margin": best_s["margin"],
                                  "weight_decay": best_s["weight_decay"],
                                  "n_test_real": int(rest.sum())}
    out["real_trained_decoder"] = {"n_train": int(n), "margin": best_r["margin"],
                                   "weight_decay": best_r["weight_decay"]}
    return out


def _standardised_crop(readouts) -> np.ndarray:
    x = np.asarray(readouts, np.float64)[(slice(None),) + cal.CROP].reshape(len(readouts), -1)
    x = x - x.mean(1, keepdims=True)
    return x / (x.std(1, keepdims=True) + 1e-9)


def class_information(train, test, labels, *, folds: int = 5, seeds: int = 5,
                      ridge: float = 10.0) -> float:
    """Mean held-out accuracy of a ridge classifier (one-hot targets, kernel form) fitted on
    `train` readouts (n 64 64) and scored on `test` readouts of the same videos (the same
    array, or another run of them), over `seeds` stratified `folds`-fold video splits."""
    a, b = _standardised_crop(train), _standardised_crop(test)
    labels = np.asarray(labels)
    ncls = int(labels.max()) + 1
    accs = []
    for seed in range(seeds):
        fold = recordings.stratified_folds(labels, folds, seed)
        for f in range(folds):
            tr, te = fold != f, fold == f
            y = np.eye(ncls)[labels[tr]] - 1.0 / ncls
            k = a[tr] @ a[tr].T
            coef = np.linalg.solve(k + ridge * np.eye(len(k)), y)
            pred = (b[te] @ a[tr].T @ coef).argmax(1)
            accs.append(float((pred == labels[te]).mean()))
    return float(np.mean(accs))


def evaluate(weights_path, frames_path, recordings_path, workdir, *, calibration="default",
             draws: int = 32, augment: int = 8, refit: cal.CalibrationConfig | None = None,
             decoder: readout_decoder.DecoderConfig = readout_decoder.DecoderConfig(),
             seed: int = 0, limit: int | None = None) -> dict:
    """Scores the sensor modes on the framed videos; writes results.json and sim2real.png
    into `workdir`. calibration: "default", a calibration file, or "refit" (the per-fold
    refit of the readout response on the default model). Returns the results."""
    t0 = time.time()
    weights = official.load_weights(weights_path)
    frames = load_frames(frames_path)
    rec = recordings.load_recordings(recordings_path)
    idx = match(frames, rec, limit)
    if limit is not None:
        frames = {k: v[:limit] for k, v in frames.items()}
    n = len(idx)
    real, labels = rec.readouts[idx], rec.labels[idx]
    if not np.array_equal(labels, frames["labels"]):
        raise ValueError(f"labels of {frames_path} and {recordings_path} disagree for the same "
                         f"video names")
    refitting = calibration == "refit"
    noise = NoiseModel.named("default" if refitting else calibration)
    w = chip.chip_weights(weights)
    video = frames["frames"]
    preds = {"ideal": ideal_readouts(weights, frames),
             "chip_noise_free": chip_program.run(w, video, noise=NoiseModel.ideal())[:, -1]}
    key = jax.random.key(seed)
    sums = chip_program.cnn_sums(w, video, noise)
    runs = chip_program.readout_draws(w, None, noise, key, draws=max(draws, augment, 2),
                                      sums=sums)["readout"][:, :, -1] / UNITS_PER_PRODUCT
    sim = runs[:draws].mean(0)
    run_to_run = float(cal.correlation(runs[0], runs[1]).mean())
    information = {"real": class_information(real, real, labels),
                   "chip_noise_free": class_information(preds["chip_noise_free"],
                                                        preds["chip_noise_free"], labels),
                   "chip_single_runs": class_information(runs[0], runs[1], labels)}
    extra = {}
    if refitting:
        refit = cal.CalibrationConfig(seed=seed) if refit is None else refit
        res = cal.calibrate(w, video, real, labels, noise, refit, key, sums=sums)
        sim = res["heldout"]
        extra = {"refit": {"scale": res["scale"], "fold_settings": res["fold_settings"],
                           "heldout_correlation": res["heldout_correlation"],
                           "in_sample_correlation": res["in_sample_correlation"]}}
    mode = "chip_refit_heldout" if refitting else "chip_calibrated"
    preds[mode] = sim
    modes = {k: scores(v, real) for k, v in preds.items()}
    acc = decoder_accuracies(rec, idx, sim, runs[:augment], decoder)
    modes[mode]["transfer_accuracy"] = acc["transfer_accuracy"]
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    plots.save(plots.readout_comparison(
        real, {"ideal": preds["ideal"], "chip": preds["chip_noise_free"],
               mode.replace("_", " "): sim}, frames["names"]), wd / "sim2real.png", dpi=90)
    results = {
        "n_videos": int(n), "mode": mode, "calibration": str(calibration),
        "noise_chip": noise.chip, **modes[mode],
        "sim_trained_real_accuracy": acc["sim_trained_real_accuracy"],
        "real_trained_real_accuracy": acc["real_trained_real_accuracy"],
        "sim_to_real_ratio": (acc["sim_trained_real_accuracy"]
                              / max(acc["real_trained_real_accuracy"], 1e-9)),
        "run_to_run_correlation": run_to_run,
        "correlation_ceiling": float(np.sqrt(max(run_to_run, 0.0))),
        "class_information": information,
        "modes": modes, "ideal": modes["ideal"],
        "decoders": {k: v for k, v in acc.items() if k.endswith("decoder")},
        "draws": int(draws), "augment": int(augment), "seed": int(seed), **extra,
        "names": [str(v) for v in frames["names"]], "weights": str(weights_path),
        "frames": str(frames_path), "recordings": str(recordings_path),
        "seconds": round(time.time() - t0, 1),
    }
    (wd / "results.json").write_text(json.dumps(results, indent=2))
    return results
