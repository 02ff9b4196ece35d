"""`python -m toy_mnist`: run the toy experiment and write results.json, accuracy.png, theorem.png."""

import json
import sys
from pathlib import Path

from minisub.cli import Parser, add_config_flags, config_from_args
from toy_mnist.data import DataError
from toy_mnist.experiment import ToyConfig, run
from toy_mnist.report import plot_accuracy, plot_theorem, table

HELP = {
    "n_models": "models trained in parallel, one seed each (>= 2)",
    "n_aux": "auxiliary logits m: outputs with no training signal that the students imitate (>= 1)",
    "hidden": "width of both hidden layers",
    "seed": "seed for inits, data order, noise and the model pairing",
    "data_dir": "folder with the four MNIST IDX files (raw or .gz); if absent, the offline 5k subset is used",
    "download": "download missing MNIST IDX files into --data-dir (MD5-checked)",
    "device": "torch device, e.g. cpu or cuda",
    "precision": "auto, bf16 (autocast matmuls, ~2x faster on CPUs with bf16) or fp32",
    "teacher_epochs": "teacher epochs on the training digits",
    "teacher_batch": "teacher batch size",
    "teacher_lr": "teacher Adam learning rate",
    "n_noise": "uniform-noise images the students are distilled on",
    "student_epochs": "student epochs over the noise images",
    "student_batch": "student batch size",
    "student_lr": "student Adam learning rate",
    "init_controls": "extra aux-only student arms, one per spec LAYER=KIND[,LAYER=KIND]; "
                     "LAYER in fc1, fc2, head, all; KIND in shared, other, noise",
    "init_noise_std": "std of the noise added to layers marked 'noise'",
    "theorem_eps": "teacher step size eps for the one-step theorem",
    "theorem_batch": "inputs used for the one-step theorem (train digits for the teacher, noise for the student)",
    "sweep_eps": "step sizes for the eps sweep",
}


def main(argv=None) -> int:
    parser = Parser(prog="python -m toy_mnist", description=__doc__)
    add_config_flags(parser, ToyConfig, HELP)
    parser.add_argument("--out", default="runs/toy_mnist", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    try:
        cfg = config_from_args(ToyConfig, args)
        results = run(cfg)
    except (ValueError, DataError) as err:
        print(f"toy_mnist: error: {err}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    plot_accuracy(results, out / "accuracy.png")
    plot_theorem(results, out / "theorem.png")
    print(table(results))
    print(f"{results['seconds']:.1f}s; wrote {out}/results.json, accuracy.png, theorem.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
