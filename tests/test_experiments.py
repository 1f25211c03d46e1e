"""The paper's grids: Table S4 / Fig. S1 (`paper.table_s4`, experiments/ablation.py) and
Fig. 3 (`paper.fig3`, experiments/fig3.py): the accounting-only table, the record
builders, the bandwidth windows, and the sweeps' vmapped step."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO

from pixelrnn_jax.paper import fig3, table_s4

# Table S4 as printed: key, params, bytes/px 1 bit, 32 bit (None: the table's '-'),
# readout per 16 frames. Memory is exact here; the table rounds half up (2.375 -> 2.38).
TABLE_S4 = [
    ("raw", 0, None, 1.5, 1_048_576),
    ("difference_camera", 0, 0.25, None, 65_536),
    ("event_camera", 0, 0.25, None, 65_536),
    ("1cnn_srnn", 451, 2.375, 76.0, 4_096),
    ("1cnn_lstm", 601, 3.375, 108.0, 4_096),
    ("1cnn_gru", 551, 2.875, 92.0, 4_096),
    ("1cnn_mgu", 501, 2.625, 84.0, 4_096),
    ("1cnn_genrnn01", 553, 3.0, 96.0, 4_096),
    ("1cnn_genrnn11", 553, 3.0, 96.0, 4_096),
    ("1cnn_pixelrnn", 501, 2.75, 88.0, 4_096),
    ("2cnn_srnn", 852, 4.375, 140.0, 4_096),
    ("2cnn_lstm", 1_002, 5.375, 172.0, 4_096),
    ("2cnn_gru", 952, 4.875, 156.0, 4_096),
    ("2cnn_mgu", 902, 4.625, 148.0, 4_096),
    ("2cnn_genrnn01", 954, 5.0, 160.0, 4_096),
    ("2cnn_genrnn11", 954, 5.0, 160.0, 4_096),
    ("2cnn_pixelrnn", 902, 4.75, 152.0, 4_096),
]
PRINTED = {"2cnn_lstm": "5.38", "1cnn_mgu": "2.63", "1cnn_srnn": "2.38", "raw": "1.50"}
ACCURACY = [f"test_accuracy_{s}_{p}" for p in ("1bit", "32bit") for s in ("mean", "best")]


@pytest.fixture(scope="module")
def accounting_only(tmp_path_factory):
    """The real command line: experiments/ablation.py --accounting_only."""
    wd = tmp_path_factory.mktemp("table_s4")
    subprocess.run([sys.executable, str(REPO / "experiments" / "ablation.py"),
                    "--accounting_only", f"--workdir={wd}"], check=True, capture_output=True)
    return wd


def test_accounting_only_reproduces_table_s4(accounting_only):
    rows = json.loads((accounting_only / "results.json").read_text())["rows"]
    got = [(r["model"], r["onsensor_params"], r["feature_bytes_per_pixel_1bit"],
            r["feature_bytes_per_pixel_32bit"], r["readout_values_per_16_frames"])
           for r in rows]
    assert got == TABLE_S4
    for r in rows:
        assert all(r[k] is None for k in ACCURACY)
    assert not (accounting_only / "accuracy_vs_memory.png").exists()


def test_accounting_only_markdown(accounting_only):
    md = (accounting_only / "results.md").read_text().splitlines()
    assert len(md) == 2 + 17
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in md[2:]}
    assert rows["2 CNN + LSTM"] == ["", "", "1,002", "5.38", "172.00", "4,096"]
    assert rows["1 CNN + MGU"][3] == PRINTED["1cnn_mgu"]
    assert rows["RAW"][3:] == ["-", "1.50", "1,048,576"]
    assert rows["Event Camera"][3:] == ["0.25", "-", "65,536"]


def _fake_sweep(accs):
    return {"members": [{"seed": i, "learning_rate": 1e-2, "test_accuracy": a}
                        for i, a in enumerate(accs)],
            "test_accuracy_mean": sum(accs) / len(accs), "test_accuracy_best": max(accs)}


def test_row_records_from_sweeps(tmp_path):
    rows = {k: (k, label, cfg) for k, label, cfg in table_s4.table_rows()}
    assert list(rows) == [r[0] for r in TABLE_S4]
    assert table_s4.row_precisions(rows["raw"][2]) == ("32bit",)
    assert table_s4.row_precisions(rows["event_camera"][2]) == ("1bit",)
    assert table_s4.row_precisions(rows["1cnn_gru"][2]) == ("1bit", "32bit")
    rec = table_s4.build_row(*rows["1cnn_pixelrnn"],
                             {"1bit": _fake_sweep([0.5, 0.7]), "32bit": _fake_sweep([0.9])})
    assert rec["test_accuracy_mean_1bit"] == pytest.approx(0.6)
    assert rec["test_accuracy_best_1bit"] == 0.7
    assert rec["test_accuracy_best_32bit"] == 0.9 and rec["members_1bit"] == 2
    raw = table_s4.build_row(*rows["raw"], {"32bit": _fake_sweep([0.4])})
    assert raw["test_accuracy_best_1bit"] is None and raw["test_accuracy_best_32bit"] == 0.4
    table_s4.write_results(tmp_path, [rec, raw], {"dataset": "fake"})
    assert (tmp_path / "accuracy_vs_memory.png").stat().st_size > 1000
    md = (tmp_path / "results.md").read_text()
    assert "| 1 CNN + PixelRNN | 60.0 +- 10.0 / 70.0 | 90.0 / 90.0 | 501 |" in md
    assert rec["test_accuracy_std_1bit"] == pytest.approx(0.1)
    assert rec["test_accuracy_std_32bit"] == 0.0


def test_bandwidth_windows_and_readout():
    assert fig3.WINDOWS == (1, 2, 3, 4, 5, 6, 7, 8, 16, 24, 32, 40, 48, 56, 64)
    records = [fig3.build_record(w, fig3.window_config(w)) for w in fig3.WINDOWS]
    assert [r["readout_values_per_16_frames"] for r in records] == [
        4096, 1024, 441, 256, 144, 100, 81, 64, 16, 4, 4, 1, 1, 1, 1]
    assert all(r["readout_values_per_16_frames"] == r["plane_size"] ** 2 for r in records)
    assert {r["cnn_layers"] for r in records} == {0}


def test_bandwidth_cnn_only_where_the_plane_allows():
    layers = {w: fig3.window_config(w, cnn_layers=1).cnn_layers for w in fig3.WINDOWS}
    assert [w for w, n in layers.items() if n] == [1, 2, 4, 5, 8, 16]  # sides 64 .. 4
    with pytest.raises(ValueError, match="window 65"):
        fig3.window_config(65)


def test_bandwidth_figure_and_table(tmp_path):
    records = [dict(fig3.build_record(w, fig3.window_config(w)),
                    test_accuracy_mean=0.5 - w / 200, test_accuracy_best=0.6 - w / 200)
               for w in (1, 8, 64)]
    from pixelrnn_jax import plots
    out = plots.accuracy_vs_bandwidth(records, tmp_path / "bw.png")
    assert out.stat().st_size > 1000
    md = fig3.markdown(records).splitlines()
    assert md[2] == "| 1x1 | 64 | 0 | 4,096 | 49.5 | 59.5 |"
    assert md[-1].startswith("| 64x64 | 1 | 0 | 1 |")


# ------------------------------------------------------------------------------ sweeps


def test_reduce_on_plateau_scalar_and_per_member():
    from pixelrnn_jax.training import TrainConfig, reduce_on_plateau
    config = TrainConfig(plateau_patience=1, plateau_factor=0.5, min_learning_rate=0.3)
    losses = [1.0, 0.9, 0.95, 0.95, 0.9, 0.9, 0.9, 0.9]
    lr, best, bad, seen = 1.0, float("inf"), 0, []
    for v in losses:
        lr, best, bad = reduce_on_plateau(lr, best, bad, v, config)
        seen.append(lr)
    # two epochs without improvement halve it; 0.9 is not below the best 0.9 - 1e-4; floor 0.3
    assert seen == [1.0, 1.0, 1.0, 0.5, 0.5, 0.3, 0.3, 0.3]
    # element by element: a member that keeps improving keeps its rate
    lrs, best, bad = np.array([1.0, 1.0]), np.full(2, np.inf), np.zeros(2, int)
    for i, v in enumerate(losses):
        lrs, best, bad = reduce_on_plateau(lrs, best, bad, np.array([v, 1.0 - 0.1 * i]), config)
    assert lrs.tolist() == [0.3, 1.0]


def test_sweep_step_is_each_member_trained_alone():
    import jax
    import jax.numpy as jnp

    from pixelrnn_jax import ModelConfig
    from pixelrnn_jax.training import Stepper, TrainConfig, init_members, sweep_stepper
    from pixelrnn_jax.training.steps import classification_loss
    cfg = ModelConfig(frame_size=16, K=4, cnn_layers=0, num_classes=3, noise_gate=0.5)
    config = TrainConfig(model=cfg, num_frames=4, batch_size=4)
    members, tx, params, opt_state = init_members(config, [0, 1], [1e-2, 3e-3])
    assert members == [(0, 1e-2), (0, 3e-3), (1, 1e-2), (1, 3e-3)]
    rng = np.random.default_rng(0)
    batch = {"video": rng.standard_normal((4, 4, 16, 16)).astype(np.float32),
             "label": np.asarray([0, 1, 2, 0], np.int32)}
    key = jax.random.key(3)
    keys = jax.random.split(key, 4)   # each member's key, as the sweep splits it
    start = jax.tree.map(np.asarray, (params, opt_state))
    new, _, _ = sweep_stepper(config, tx, 4).train(
        *jax.tree.map(jnp.asarray, start), batch, key)
    single = Stepper(classification_loss(cfg), None, tx)
    for i in (1, 2):   # a different learning rate, a different seed
        p_i, s_i = jax.tree.map(lambda a: jnp.asarray(a[i]), start)
        alone, _, _ = single.train(p_i, s_i, batch, keys[i])
        for a, b in zip(jax.tree.leaves(alone), jax.tree.leaves(new)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b[i]), rtol=1e-5, atol=1e-6)
    # the members moved apart: different learning rates give different steps
    k0, k1 = (np.asarray(new["decoder"]["dense"]["kernel"][i]) for i in (0, 1))
    assert not np.allclose(k0, k1)
