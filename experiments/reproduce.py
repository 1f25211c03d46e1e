"""The whole paper from one command (`pixelrnn_jax.paper.reproduce`): Table 1, Table S4 and
Fig. S1 on both tasks, Fig. 3 on both tasks and Table 3 on the simulated sensor, with
report.md beside them.

    python experiments/reproduce.py --workdir=runs/paper --scale=smoke
    python experiments/reproduce.py --workdir=runs/paper_small --scale=small
    python experiments/reproduce.py --workdir=runs/paper_cambridge --scale=small \\
        --gesture_dataset=cambridge_hand_gesture --gesture_data_dir=DIR \\
        --lips_dataset=tulips1 --lips_data_dir=DIR

The tasks default to the built-in ones that separate the models (synthetic_motion for the
hand gestures, synthetic_lips for lip reading). A rerun with the same --workdir resumes:
finished jobs are read back. Scales: test (seconds, for the test suite), smoke (every table
and figure on a few models and videos), small (every model, 3 seeds), full (the paper's 10
seeds, 4 learning rates and 300 epochs).
"""
from __future__ import annotations

import dataclasses

from absl import flags

from pixelrnn_jax import cli, data
from pixelrnn_jax.paper import reproduce

F = flags.FLAGS
flags.DEFINE_string("workdir", "runs/paper", "Where every run and report.md go.")
flags.DEFINE_enum("scale", "smoke", list(reproduce.SCALES), "How much to train.")
flags.DEFINE_list("sections", list(reproduce.SECTIONS), "The parts of the paper to run.")
flags.DEFINE_enum("decoder", reproduce.PAPER_PROTOCOL["decoder"], ["plain", "standardized"],
                  "The off-sensor decoder (plain: the paper's linear layer on the readout).")
flags.DEFINE_enum("eval_clip", reproduce.PAPER_PROTOCOL["eval_clip"], ["first", "end"],
                  "The clip scored (first: from the first frame, the paper's S2.1).")
flags.DEFINE_list("models", None, "Table S4 models to run, e.g. 1cnn_lstm@1bit,event_camera@1bit "
                  "(default: the scale's).")
flags.DEFINE_list("tasks", list(reproduce.TASKS), "The tasks Table S4 and Fig. 3 run on.")
for _task, _name in reproduce.TASKS.items():
    flags.DEFINE_enum(f"{_task}_dataset", _name, list(data.VIDEO_DATASETS),
                      f"The dataset in the role of the paper's {_task} task.")
    flags.DEFINE_string(f"{_task}_data_dir", None, f"Folder of the {_task} dataset "
                        f"(a built-in one: where it is generated).")


def main(argv):
    datasets = {t: (F[f"{t}_dataset"].value, F[f"{t}_data_dir"].value)
                for t in reproduce.TASKS}
    protocol = {"decoder": F.decoder, "eval_clip": F.eval_clip}
    scale = reproduce.SCALES[F.scale]
    if F.models:
        scale = dataclasses.replace(scale, models=tuple(F.models))
    path = reproduce.run(F.workdir, scale, datasets, F.sections, protocol, tuple(F.tasks))
    print(f"report: {path}")


if __name__ == "__main__":
    cli.run(main)
