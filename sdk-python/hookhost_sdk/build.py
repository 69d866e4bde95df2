"""Build a plugin component: ``python -m hookhost_sdk.build app.py -o plugin.wasm``.

Wraps componentize-py (``pip install componentize-py==0.25.1``) with hookhost's WIT
(``--wit``, default: the repository's ``wit/`` beside this SDK) and world ``plugin``; the
app's directory and this SDK are on the component's module path. The app module must define
``WitWorld = hookhost_sdk.export(handle)``.
"""

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

SDK_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WIT = SDK_ROOT.parent / "wit"


def componentize_py() -> str:
    """componentize-py beside this interpreter (a virtual environment), else on PATH."""
    beside = Path(sys.executable).parent / "componentize-py"
    if beside.exists():
        return str(beside)
    found = shutil.which("componentize-py")
    if not found:
        sys.exit("componentize-py is not installed: pip install componentize-py==0.25.1")
    return found


def build(app: Path, out: Path, wit: Path = DEFAULT_WIT) -> None:
    """Componentize ``app`` into ``out``; raises ``CalledProcessError`` with its output on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        componentize_py(),
        "-d", str(wit),
        "-w", "plugin",
        "componentize",
        "-p", str(app.resolve().parent),
        "-p", str(SDK_ROOT),
        app.stem,
        "-o", str(out),
    ]
    subprocess.run(command, check=True, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("app", type=Path, help="the app module, e.g. app.py")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the component to write")
    parser.add_argument("--wit", type=Path, default=DEFAULT_WIT, help="hookhost's WIT directory")
    args = parser.parse_args()
    build(args.app, args.output, args.wit)


if __name__ == "__main__":
    main()
