"""The whole paper from one command: Table 1, Table S4 / Fig. S1 on both tasks, Fig. 3 on
both tasks and Table 3 on the simulated sensor, at a stated scale, into one folder with a
`report.md` (`experiments/reproduce.py`).

The two tasks are the built-in ones that separate the models (`data.synthetic_tasks`): the
motion-only gestures in the role of the paper's Cambridge hand gestures and the
lip-reading-like words in the role of Tulips1 (`--data_dir` swaps in a real copy of either:
`--gesture_dataset=cambridge_hand_gesture --gesture_data_dir=DIR`). Every job writes into its
own run directory and is skipped when finished, so a rerun resumes; a progress line with an
ETA follows every job. Each number of the report names the folder it comes from.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

from pixelrnn_jax import plots
from pixelrnn_jax.paper import deviations, fig3, runs, table1, table1_models, table3, table_s4
from pixelrnn_jax.training import TrainConfig, train_and_evaluate
from pixelrnn_jax.training.rundir import format_seconds, write_json

__all__ = ["Scale", "SCALES", "TASKS", "RECIPES", "SECTIONS", "Job", "plan", "run", "claims",
           "eta_seconds", "report"]

log = logging.getLogger("pixelrnn_jax")

TASKS = {"gesture": "synthetic_motion", "lips": "synthetic_lips"}
# Table 3's models: the noise-free one and the authors' recipe (Gaussian noise of std 0.6
# before every binarization and 1.0 on o_t, the paper's Sec. 5.2)
RECIPES = ("noise-free", "authors-noise")


@dataclasses.dataclass(frozen=True)
class Scale:
    """How much of the paper a run trains.

    models: Table S4 row keys at each precision (None: all 29 of them); windows: Fig. 3's
    pooling windows; the training settings are those of every sweep and run.
    """

    name: str
    num_epochs: int
    seeds: tuple[int, ...]
    learning_rates: tuple[float, ...]
    batch_size: int
    max_videos: int
    frame_size: int
    models: tuple[str, ...] | None
    windows: tuple[int, ...]
    table1_epochs: int
    table1_max_train: int
    table1_encoders: tuple[str, ...]
    table1_dataset: str   # single frames of a video dataset whose frames show the class
    table3_epochs: int
    table3_models: tuple[str, ...]   # of RECIPES
    chip: bool   # Table 3 also on the chip program (64 x 64 frames only)


SCALES = {
    "test": Scale("test", 1, (0,), (1e-2,), 4, 24, 16,
                  ("1cnn_pixelrnn@1bit",), (16,), 1, 64, ("ours",),
                  "synthetic_lips", 1, ("noise-free",), False),
    "smoke": Scale("smoke", 2, (0,), (1e-2,), 16, 160, 64,
                   ("difference_camera@1bit", "event_camera@1bit", "1cnn_gru@1bit",
                    "1cnn_pixelrnn@1bit", "1cnn_pixelrnn@32bit"), (1, 8, 64), 1, 512,
                   ("bose", "ours"), "synthetic_gesture", 2, RECIPES, True),
    "small": Scale("small", 40, (0, 1, 2), (1e-2,), 32, 0, 64, None,
                   (1, 2, 4, 8, 16, 32, 64), 5, 4000, tuple(table1_models.ENCODERS),
                   "synthetic_gesture", 60, RECIPES, True),
    "full": Scale("full", 300, tuple(range(10)), (1e-1, 1e-2, 1e-3, 1e-4), 32, 0, 64, None,
                  fig3.WINDOWS, 30, 0, tuple(table1_models.ENCODERS), "synthetic_gesture", 300,
                  RECIPES, True),
}


@dataclasses.dataclass(frozen=True)
class Job:
    section: str
    name: str
    run_dir: Path
    fn: object   # () -> result dict, written to run_dir / "result.json"
    kind: str = "train"   # jobs of one kind take alike long (the ETA's unit)


def eta_seconds(left: list[Job], seconds: dict[str, list[float]]) -> float:
    """The time the `left` jobs will take: each at the mean duration of the finished jobs of
    its kind (`seconds`: kind -> durations), a kind with none at the mean of all."""
    every = [t for ts in seconds.values() for t in ts]
    if not every:
        return 0.0
    mean = lambda ts: sum(ts) / len(ts)  # noqa: E731
    return sum(mean(seconds.get(j.kind) or every) for j in left)


# the paper's protocol (S2.1): the plain linear decoder, clips scored from the first frame
PAPER_PROTOCOL = {"decoder": "plain", "eval_clip": "first"}


def _base(scale: Scale, dataset: str, data_dir, protocol: dict) -> TrainConfig:
    """The training settings of the CPU flagfiles (`experiments/gesture.flags`) at `scale`,
    scored as `protocol` says."""
    return TrainConfig(dataset=dataset, data_dir=data_dir, num_epochs=scale.num_epochs,
                       batch_size=scale.batch_size, max_videos=scale.max_videos,
                       learning_rate=scale.learning_rates[0], encoder_lr_scale=0.5,
                       shift_fraction=0.05, plateau_patience=8, export_weights=False,
                       eval_clip=protocol["eval_clip"])


def _paper(base: TrainConfig, model, protocol: dict) -> TrainConfig:
    return base.replace(model=model.replace(decoder=protocol["decoder"]))


def plan(scale: Scale, workdir, datasets: dict, protocol: dict = PAPER_PROTOCOL,
         tasks=tuple(TASKS)) -> list[Job]:
    """Every job of a reproduction, in order. datasets: {"gesture": (name, data_dir),
    "lips": (name, data_dir)}; protocol: {"decoder", "eval_clip"}; tasks: those Table S4
    and Fig. 3 run on (Table 1 and Table 3 use the gesture task's data)."""
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown:
        raise ValueError(f"unknown tasks {unknown}: choose from {list(TASKS)}")
    wd = Path(workdir)
    jobs = []
    table1_data = {}

    def table1_job():
        if "data" not in table1_data:
            table1_data["data"] = table1.load_image_data(
                scale.table1_dataset, datasets["gesture"][1], max_train=scale.table1_max_train,
                max_test=256)
        settings = table1.TrainSettings(epochs=scale.table1_epochs)
        rows = table1.run_comparison(table1_data["data"], scale.table1_encoders, settings)
        table1.write_results(wd / "table1", rows)
        return {"rows": rows}

    jobs.append(Job("table1", f"{scale.table1_dataset} frames", wd / "table1", table1_job))
    configs = {f"{k}@{p}": cfg for k, p, cfg in table_s4.select_jobs(m=0.5)}
    chosen = list(configs) if scale.models is None else list(scale.models)
    unknown = sorted(set(chosen) - set(configs))
    if unknown:
        raise ValueError(f"unknown Table S4 models {unknown}: choose from {sorted(configs)}")
    for task in tasks:
        name, data_dir = datasets[task]
        base = _base(scale, name, data_dir, protocol)
        for key in chosen:
            cfg = configs[key].replace(frame_size=scale.frame_size)
            if cfg.cell == "raw":
                cfg = cfg.replace(frame_size=4 * scale.frame_size)
            run_dir = wd / "table_s4" / task / key.replace("@", "_")
            jobs.append(Job("table_s4", f"{task} {key}", run_dir,
                            lambda c=_paper(base, cfg, protocol), d=run_dir: runs.run_sweep(
                                c, d, scale.seeds, scale.learning_rates)))
        for w in scale.windows:
            cfg = fig3.window_config(w, frame_size=scale.frame_size, m=0.5)
            run_dir = wd / "fig3" / task / f"window_{w}"
            jobs.append(Job("fig3", f"{task} window {w}", run_dir,
                            lambda c=_paper(base, cfg, protocol), d=run_dir: runs.run_sweep(
                                c, d, scale.seeds, scale.learning_rates)))
    name, data_dir = datasets["gesture"]
    base = _base(scale, name, data_dir, protocol).replace(num_epochs=scale.table3_epochs,
                                                export_weights=True)
    model = base.model.replace(m=0.5, frame_size=scale.frame_size)
    recipes = {"noise-free": model, "authors-noise": model.replace(
        noise_input=0.6, noise_cnn=0.6, noise_gate=0.6, noise_out=1.0)}
    recipes = {k: v for k, v in recipes.items() if k in scale.table3_models}
    for label, cfg in recipes.items():
        run_dir = wd / "table3" / label
        jobs.append(Job("table3", f"train {label}", run_dir,
                        lambda c=_paper(base, cfg, protocol), d=run_dir: train_and_evaluate(
                            c, d)))
    programs = ("ideal", "chip") if scale.chip and scale.frame_size == 64 else ("ideal",)
    for program in programs:
        for label in recipes:
            run_dir = wd / "table3" / f"{label}_on_{program}"
            jobs.append(Job("table3", f"{label} on the {program} program", run_dir,
                            lambda r=wd / "table3" / label, p=program: table3.evaluate_run(
                                r, 32, 1e-3, 0, p), kind=f"simulate {program}"))
    return jobs


SECTIONS = ("table1", "table_s4", "fig3", "table3")


def run(workdir, scale: Scale, datasets: dict | None = None, sections=SECTIONS,
        protocol: dict = PAPER_PROTOCOL, tasks=tuple(TASKS)) -> Path:
    """Runs every unfinished job of `plan` in `sections` and writes the report; returns its
    path."""
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise ValueError(f"unknown sections {unknown}: choose from {list(SECTIONS)}")
    wd = Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    datasets = datasets or {task: (name, None) for task, name in TASKS.items()}
    jobs = [j for j in plan(scale, wd, datasets, protocol, tasks) if j.section in sections]
    write_json(wd / "plan.json", {"scale": dataclasses.asdict(scale), "protocol": protocol,
                                  "datasets": datasets, "jobs": [
                                      {"section": j.section, "name": j.name,
                                       "run_dir": str(j.run_dir)} for j in jobs]})
    seconds: dict[str, list[float]] = {}
    for job in jobs:   # the durations of jobs finished before a resume count too
        marker = job.run_dir / "result.json"
        if marker.exists():
            seconds.setdefault(job.kind, []).append(json.loads(marker.read_text())["seconds"])
    for i, job in enumerate(jobs, 1):
        marker = job.run_dir / "result.json"
        if marker.exists():
            continue
        t0 = time.perf_counter()
        job.run_dir.mkdir(parents=True, exist_ok=True)
        result = job.fn()
        took = time.perf_counter() - t0
        write_json(marker, {"section": job.section, "name": job.name, "seconds": took,
                            "result": result})
        seconds.setdefault(job.kind, []).append(took)
        left = [j for j in jobs[i:] if not (j.run_dir / "result.json").exists()]
        log.info("reproduce [%d/%d] %s: %s done in %s; ETA %s", i, len(jobs), job.section,
                 job.name, format_seconds(took), format_seconds(eta_seconds(left, seconds)))
    return report(wd, jobs, scale, command_line(wd, scale, sections, tasks, protocol,
                                                datasets))


def _result(job: Job) -> dict:
    return json.loads((job.run_dir / "result.json").read_text())["result"]


def claims(s4: dict, f3: dict) -> list[tuple[str, bool, str]]:
    """The paper's claims, checked on the tasks: (claim, holds, the figures behind it)."""
    out = []
    for task, rows in s4.items():
        acc = {(r["model"], p): r[f"test_accuracy_mean_{p}"] for r in rows
               for p in ("1bit", "32bit") if r.get(f"test_accuracy_mean_{p}") is not None}
        mem = {(r["model"], p): r[f"feature_bytes_per_pixel_{p}"] for r in rows
               for p in ("1bit", "32bit")}
        for layers in (1, 2):
            px = acc.get((f"{layers}cnn_pixelrnn", "1bit"))
            rivals = {c: acc.get((f"{layers}cnn_{c}", "1bit")) for c in ("lstm", "gru")}
            if px is not None and all(v is not None for v in rivals.values()):
                out.append((f"{task}: binary {layers}-CNN PixelRNN at least as accurate as "
                            f"binary LSTM and GRU", px >= max(rivals.values()),
                            f"{px:.3f} vs LSTM {rivals['lstm']:.3f}, GRU {rivals['gru']:.3f}"))
            p32 = acc.get((f"{layers}cnn_pixelrnn", "32bit"))
            others = {m: a for (m, p), a in acc.items() if p == "32bit"
                      and m.startswith(f"{layers}cnn_") and m != f"{layers}cnn_pixelrnn"}
            if p32 is not None and others:
                best = max(others, key=others.get)
                less = mem[(f"{layers}cnn_pixelrnn", "32bit")] < mem[(best, "32bit")]
                out.append((f"{task}: 32-bit {layers}-CNN PixelRNN within 3 points of the best "
                            f"32-bit cell at less memory", p32 >= others[best] - 0.03 and less,
                            f"{p32:.3f} vs {best} {others[best]:.3f}"))
        px = acc.get(("1cnn_pixelrnn", "1bit"))
        cams = {m: a for (m, p), a in acc.items() if m.endswith("_camera") or m == "raw"}
        if px is not None and cams:
            out.append((f"{task}: binary 1-CNN PixelRNN above the cameras",
                        px > max(cams.values()),
                        ", ".join(f"{m} {a:.3f}" for m, a in cams.items()) + f"; PixelRNN "
                        f"{px:.3f}"))
    for task, recs in f3.items():
        by = {r["readout_values_per_16_frames"]: r["test_accuracy_best"] for r in recs}
        full = by.get(4096)
        near = [v for k, v in by.items() if 500 <= k <= 1100]
        if full is not None and near:
            out.append((f"{task}: accuracy holds down to about 1,000 readout values",
                        max(near) >= full - 0.05, f"{max(near):.3f} at ~1,000 values vs "
                        f"{full:.3f} at 4,096"))
    return out


def command_line(wd, scale: Scale, sections=SECTIONS, tasks=tuple(TASKS),
                 protocol: dict = PAPER_PROTOCOL, datasets: dict | None = None) -> str:
    """The `experiments/reproduce.py` command that plans these jobs (flags at their
    defaults left out)."""
    parts = ["python experiments/reproduce.py", f"--workdir={wd}", f"--scale={scale.name}"]
    if tuple(sections) != SECTIONS:
        parts.append("--sections=" + ",".join(sections))
    if scale.name in SCALES and scale.models != SCALES[scale.name].models:
        parts.append("--models=" + ",".join(scale.models))
    if tuple(tasks) != tuple(TASKS):
        parts.append("--tasks=" + ",".join(tasks))
    parts += [f"--{k}={v}" for k, v in protocol.items() if v != PAPER_PROTOCOL.get(k)]
    for task, (name, data_dir) in (datasets or {}).items():
        if name != TASKS[task]:
            parts.append(f"--{task}_dataset={name}")
        if data_dir is not None:
            parts.append(f"--{task}_data_dir={data_dir}")
    return " ".join(parts)


def report(wd: Path, jobs: list[Job], scale: Scale, command: str | None = None) -> Path:
    """report.md: every table and figure of the run, the claims and the deviations."""
    done = [j for j in jobs if (j.run_dir / "result.json").exists()]
    command = command or command_line(wd, scale)
    lines = [f"# The paper, reproduced at scale `{scale.name}`", "",
             f"Settings: {json.dumps(dataclasses.asdict(scale))}", "",
             f"Command: `{command}`; each figure below names its run directory.", ""]
    if (wd / "table1" / "table.md").exists():
        lines += ["## Table 1 (`table1/`)", "", (wd / "table1" / "table.md").read_text(), ""]
    s4, f3 = {}, {}
    for task in TASKS:
        rows = {}
        for j in done:
            if j.section == "table_s4" and j.name.startswith(task + " "):
                key, prec = j.name.split(" ", 1)[1].split("@")
                rows.setdefault(key, {})[prec] = _result(j)
        if rows:
            cfgs = {k: (label, cfg) for k, label, cfg in table_s4.table_rows()}
            recs = [table_s4.build_row(k, *cfgs[k], sw) for k, sw in rows.items()]
            out = wd / "table_s4" / task
            table_s4.write_results(out, recs, {"scale": scale.name}, title=task)
            s4[task] = recs
            lines += [f"## Table S4 and Fig. S1, {task} (`table_s4/{task}/`)", "",
                      table_s4.markdown(recs), f"![Fig. S1, {task}](table_s4/{task}/"
                      f"accuracy_vs_memory.png)", ""]
        recs = [fig3.build_record(int(j.name.rsplit(" ", 1)[1]), fig3.window_config(
            int(j.name.rsplit(" ", 1)[1]), frame_size=scale.frame_size), _result(j))
            for j in done if j.section == "fig3" and j.name.startswith(task + " ")]
        if recs:
            f3[task] = recs
            plots.accuracy_vs_bandwidth(recs, wd / "fig3" / f"{task}.png", title=task)
            lines += [f"## Fig. 3, {task} (`fig3/{task}/`; best and mean over seeds)", "",
                      fig3.markdown(recs), f"![Fig. 3, {task}](fig3/{task}.png)", ""]
    rows = [{"model": j.name, **_result(j)} for j in done
            if j.section == "table3" and " on the " in j.name]
    if rows:
        lines += ["## Table 3 on the simulated sensor (`table3/`)", "", table3.markdown(rows),
                  ""]
    found = claims(s4, f3)
    if found:
        lines += ["## The paper's claims on these tasks", "", "| claim | holds | figures |",
                  "|---|---|---|"]
        lines += [f"| {c} | {'yes' if ok else 'no'} | {why} |" for c, ok, why in found]
        lines.append("")
    lines += ["## Deviations from the paper", "", deviations.markdown()]
    seconds = sum(json.loads((j.run_dir / "result.json").read_text())["seconds"] for j in done)
    lines += ["", f"{len(done)} of {len(jobs)} jobs finished, {format_seconds(seconds)} of "
                  f"compute in all."]
    path = wd / "report.md"
    path.write_text("\n".join(lines) + "\n")
    write_json(wd / "claims.json", [{"claim": c, "holds": ok, "figures": why}
                                    for c, ok, why in found])
    return path

