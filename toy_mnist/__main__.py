"""`python -m toy_mnist`: run the toy experiment and write results.json, accuracy.png, theorem.png."""

import sys

from minisub.cli import Parser, add_config_flags, add_quick_flag, config_from_args, run_main
from minisub.files import check_not_replacing, check_output_folder, write_json
from toy_mnist.data import idx_files_present
from toy_mnist.experiment import ToyConfig, run
from toy_mnist.render import console
from toy_mnist.report import plot_accuracy, plot_theorem


def main(argv=None) -> int:
    parser = Parser(prog="python -m toy_mnist", description=__doc__)
    add_config_flags(parser, ToyConfig)
    parser.add_argument("--out", default=None, help="output folder (default: runs/toy_mnist, or runs/toy_mnist-quick "
                                                    "with --quick)")
    parser.add_argument("--force", action="store_true", help="replace the results an --out folder already holds")
    quick = add_quick_flag(parser, argv, ToyConfig, what="tiny sizes that check every part connects (seconds)")
    args = parser.parse_args(argv)
    args.out = args.out or ("runs/toy_mnist-quick" if quick else "runs/toy_mnist")
    cfg = config_from_args(ToyConfig, args, parser)

    def body() -> None:
        out = check_output_folder(args.out)
        check_not_replacing(out, args.force, "a toy run")
        idx_files_present(cfg.data_dir, cfg.download)  # a bad --data-dir is refused before the precision timing
        results = run(cfg)
        write_json(out / "results.json", results)
        plot_accuracy(results, out / "accuracy.png")
        plot_theorem(results, out / "theorem.png")
        print(console(results))
        print(f"{results['seconds']:.1f}s; wrote {out}/results.json, accuracy.png, theorem.png")
    return run_main("toy_mnist", body)


if __name__ == "__main__":
    sys.exit(main())
