"""Sim-to-real: how well a sensor model predicts what the real SCAMP-5 read out.

    results = evaluate("cam_noise_iw10.txt", "cambridge_test_frames.npz",
                       "cambridge_scamp5_outputs.npz", "runs/sim2real")

For the videos whose frames are given (matched by name with the recordings) four predictions
are scored against the real readouts: the "ideal" mode (`pixelrnn_jax.encode`, which the
ideal program equals), the noise-free chip mode, and the calibrated chip mode (expected
readout over noise draws) held out (each video predicted by a calibration that never saw it,
`calibrate.calibrate`) and in sample. Scores per mode:

  correlation        mean over videos of the Pearson correlation over crop pixels 1..62;
  sign_agreement     mean fraction of those pixels with the same sign (model units);
  transfer_accuracy  a linear decoder (`readout_decoder.fit_decoder`) trained on the real readouts
                     of the official-train videos, applied to the simulated readouts, each
                     domain standardised per pixel by its own statistics (the simulated
                     videos' mean and std, no labels).
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from pixelrnn_jax import plots
from pixelrnn_jax.core import ModelConfig, encode
from pixelrnn_jax.sensor import authors_files as official
from pixelrnn_jax.sensor import authors_model, readout_decoder, recordings
from pixelrnn_jax.sensor.scamp5 import calibrate as cal
from pixelrnn_jax.sensor.scamp5 import chip_program as chip

__all__ = ["load_frames", "match", "transfer_decoder", "transfer_accuracy", "scores",
           "ideal_readouts", "evaluate"]


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


def transfer_decoder(rec: recordings.Recordings, exclude: np.ndarray, weight_decay: float,
                     seed: int = 0) -> tuple[readout_decoder.LinearDecoder | None, int]:
    """The decoder on the real readouts of the official-train videos (without an official
    split: all recorded videos except `exclude`) and their count; None when there are none."""
    train = (rec.official_train.copy() if rec.official_train is not None
             else np.ones(len(rec), bool))
    train[exclude] = False
    if train.sum() < 2 or len(np.unique(rec.labels[train])) < 2:
        return None, 0
    cfg = readout_decoder.DecoderConfig(seed=seed)
    return readout_decoder.fit_decoder(rec.readouts[train], rec.labels[train], 1, weight_decay, cfg,
                                  rec.num_classes), int(train.sum())


def transfer_accuracy(decoder, sim, labels) -> float | None:
    """Accuracy of `decoder` on readouts standardised by their own per-pixel statistics."""
    if decoder is None:
        return None
    x = np.asarray(sim, np.float32)[:, decoder.margin:chip.SIDE - decoder.margin,
                                    decoder.margin:chip.SIDE - decoder.margin]
    x = x.reshape(len(x), -1)
    std = x.std(0)
    z = (x - x.mean(0)) / np.where(std < 1e-6, 1.0, std)
    return float(((z @ decoder.kernel + decoder.bias).argmax(-1) == labels).mean())


def scores(sim, real, labels, decoder) -> dict:
    return {"correlation": float(cal.correlation(sim, real).mean()),
            "sign_agreement": float(cal.sign_agreement(sim, real).mean()),
            "transfer_accuracy": transfer_accuracy(decoder, sim, labels)}


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


def evaluate(weights_path, frames_path, recordings_path, workdir,
             config: cal.CalibrationConfig = cal.CalibrationConfig(), *,
             decoder_weight_decay: float = 1e-2, limit: int | None = None) -> dict:
    """Scores the sensor modes on the framed videos; writes results.json, sim2real.png and
    chip_calibration.json (+ .npy, the fixed pattern) into `workdir`. Returns the results."""
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
    decoder, n_train = transfer_decoder(rec, idx, decoder_weight_decay, config.seed)
    w = chip.chip_weights(weights)
    pooled = chip.pooled_counts(w, frames["frames"])
    preds = {"ideal": ideal_readouts(weights, frames),
             "chip_noise_free": chip.run(w, frames["frames"], noise=chip.ChipNoise())[:, -1]}
    calib = cal.calibrate(w, pooled, real, labels, config, jax.random.key(config.seed))
    preds["chip_calibrated_heldout"] = calib["heldout"]
    preds["chip_calibrated_in_sample"] = calib["in_sample"]
    modes = {k: scores(v, real, labels, decoder) for k, v in preds.items()}
    modes["real"] = {"transfer_accuracy": transfer_accuracy(decoder, real, labels)}
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    cal.save_calibration(calib["noise"], wd / "chip_calibration.json")
    plots.save(plots.readout_comparison(
        real, {"ideal": preds["ideal"], "chip": preds["chip_noise_free"],
               "chip calibrated (held out)": preds["chip_calibrated_heldout"]},
        frames["names"]), wd / "sim2real.png", dpi=90)
    heldout = modes["chip_calibrated_heldout"]
    results = {
        "n_videos": int(n), **heldout, "mode": "chip_calibrated_heldout", "modes": modes,
        "ideal": modes["ideal"],
        "calibration": {**{k: v for k, v in dataclasses.asdict(config).items()},
                        "chosen": dict(zip(("gain", "cnn_std", "gate_std"), calib["point"])),
                        "noise": calib["noise"].to_dict(),
                        "model_noise": calib["noise"].model_noise(),
                        "folds": int(calib["folds"].max()) + 1,
                        "fold_settings": calib["fold_settings"],
                        "heldout_correlation": calib["heldout_correlation"],
                        "in_sample_correlation": calib["in_sample_correlation"]},
        "decoder": {"weight_decay": decoder_weight_decay, "margin": 1, "n_train": n_train},
        "names": [str(v) for v in frames["names"]],
        "weights": str(weights_path), "frames": str(frames_path),
        "recordings": str(recordings_path),
    }
    (wd / "results.json").write_text(json.dumps(results, indent=2))
    return results
