"""Supplement Table S4's parameter, memory and bandwidth columns, derived from the models."""
from __future__ import annotations

import pytest

import pixelrnn_jax as P
from pixelrnn_jax import accounting

# Table S4 as printed: (model, params, bytes/px at 1 bit, at 32 bit, readout per 16 frames);
# None is the table's '-', bytes are rounded to 2 decimals as in the table.
TABLE_S4 = [
    ("RAW", 0, None, "1.50", 1_048_576),
    ("Difference Camera", 0, "0.25", None, 65_536),
    ("Event Camera", 0, "0.25", None, 65_536),
    ("1 CNN + SRNN", 451, "2.38", "76.00", 4_096),
    ("1 CNN + LSTM", 601, "3.38", "108.00", 4_096),
    ("1 CNN + GRU", 551, "2.88", "92.00", 4_096),
    ("1 CNN + MGU", 501, "2.63", "84.00", 4_096),
    ("1 CNN + genRNN (0,1)", 553, "3.00", "96.00", 4_096),
    ("1 CNN + genRNN (-1,1)", 553, "3.00", "96.00", 4_096),
    ("1 CNN + PixelRNN", 501, "2.75", "88.00", 4_096),
    ("2 CNN + SRNN", 852, "4.38", "140.00", 4_096),
    ("2 CNN + LSTM", 1_002, "5.38", "172.00", 4_096),
    ("2 CNN + GRU", 952, "4.88", "156.00", 4_096),
    ("2 CNN + MGU", 902, "4.63", "148.00", 4_096),
    ("2 CNN + genRNN (0,1)", 954, "5.00", "160.00", 4_096),
    ("2 CNN + genRNN (-1,1)", 954, "5.00", "160.00", 4_096),
    ("2 CNN + PixelRNN", 902, "4.75", "152.00", 4_096),
]


@pytest.fixture(scope="module")
def table():
    return accounting.table_s4()


def _printed(v):
    return None if v is None else accounting.format_number(v)


def test_table_s4_all_rows(table):
    assert len(table) == len(TABLE_S4) == 17
    got = [(r["model"], r["onsensor_params"], _printed(r["feature_bytes_per_pixel_1bit"]),
            _printed(r["feature_bytes_per_pixel_32bit"]), r["readout_values_per_16_frames"])
           for r in table]
    assert got == TABLE_S4


def test_exact_memory_before_rounding(table):
    """The table rounds half up: 19 planes are 2.375 bytes, 21 planes 2.625 bytes."""
    rows = {r["model"]: r for r in table}
    assert rows["1 CNN + SRNN"]["feature_bytes_per_pixel_1bit"] == 2.375
    assert rows["1 CNN + MGU"]["feature_bytes_per_pixel_1bit"] == 2.625
    assert rows["2 CNN + LSTM"]["feature_bytes_per_pixel_1bit"] == 5.375
    for r in table:
        one, full = r["feature_bytes_per_pixel_1bit"], r["feature_bytes_per_pixel_32bit"]
        if one is not None and full is not None:
            assert full == 32 * one


@pytest.mark.parametrize("cell,planes", [
    ("srnn", 19), ("lstm", 27), ("gru", 23), ("mgu", 21), ("genrnn01", 24), ("genrnn11", 24),
    ("pixelrnn", 22)])
def test_feature_planes_one_cnn_layer(cell, planes):
    cfg = P.ModelConfig(cell=cell)
    assert accounting.feature_planes(cfg) == planes
    assert accounting.feature_planes(cfg.replace(cnn_layers=2)) == planes + 16


def test_camera_planes_and_columns():
    raw = P.ModelConfig(cnn_layers=0, cell="raw", precision="32bit", frame_size=256)
    assert accounting.feature_planes(raw) == 1            # the frame
    assert accounting.feature_bytes_per_pixel(raw) == 1.5  # at 12 bits
    assert accounting.feature_bytes_per_pixel(raw, 1) is None
    for cell in ("difference", "event"):
        cfg = P.ModelConfig(cnn_layers=0, cell=cell)
        assert accounting.feature_planes(cfg) == 2         # reference h and output o
        assert accounting.feature_bytes_per_pixel(cfg) == 0.25
        assert accounting.feature_bytes_per_pixel(cfg, 32) is None


def test_readout_follows_k_and_frame_size():
    """Per 16 frames: K=8 reads two windows; a 64x64 RAW reads 16 x 64 x 64 values."""
    assert accounting.readout_values_per_16_frames(P.ModelConfig(cell="gru", K=8)) == 8_192
    assert accounting.readout_values_per_16_frames(P.ModelConfig(cell="gru", K=32)) == 2_048
    raw64 = P.ModelConfig(cnn_layers=0, cell="raw", precision="32bit")
    assert accounting.readout_values_per_16_frames(raw64) == 65_536


def test_decoder_sizes_of_camera_baselines():
    """RAW and the event camera decode one frame at a time; the difference camera reads all
    16 frames into its fully connected layer (S1.1: N x M weights, N the readout size)."""
    raw = P.ModelConfig(cnn_layers=0, cell="raw", precision="32bit", frame_size=256)
    assert accounting.decoder_params(raw) == 256 * 256 * 9 + 9
    assert accounting.decoder_params(P.ModelConfig(cnn_layers=0, cell="event")) == 64 * 64 * 9 + 9
    assert (accounting.decoder_params(P.ModelConfig(cnn_layers=0, cell="difference"))
            == 16 * 64 * 64 * 9 + 9)


def test_summary_and_table_text():
    s = accounting.summary(P.ModelConfig(cnn_layers=0, cell="event"))
    assert s["feature_bytes_per_pixel_32bit"] is None
    assert s["readout_values_per_16_frames"] == 65_536
    text = accounting.format_table_s4()
    assert len(text.splitlines()) == 18
    assert "2.63" in text and "1,048,576" in text
    lines = accounting.format_summary(P.ModelConfig(cnn_layers=0, cell="event")).splitlines()
    assert any(ln.startswith("feature_bytes_per_pixel_32bit") and ln.endswith(" -")
               for ln in lines)


def test_table_s4_models_cover_both_columns():
    models = accounting.table_s4_models()
    assert len(models) == 14 * 2 + 3          # RNN rows at both precisions, cameras at one
    labels = [label for label, _ in models]
    assert "RAW, 32bit" in labels and "RAW, 1bit" not in labels
    assert "Event Camera, 1bit" in labels and "2 CNN + LSTM, 32bit" in labels
    assert all(cfg.precision in label for label, cfg in models)
