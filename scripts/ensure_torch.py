"""Make sure the running Python has a torch, without dragging in a CUDA build by accident.

If torch imports, it is left alone (a CUDA build stays a CUDA build). Otherwise this installs
``torch==2.13.0``: on the CPU-only machines this project is developed on, pip finds a local
CPU build of exactly that version in seconds, whereas a bare ``torch`` requirement would pull a
multi-GB CUDA build. Set ``DBENCH_TORCH_REQUIREMENT`` to install something else (e.g. a CUDA
build on a GPU machine: ``DBENCH_TORCH_REQUIREMENT='torch==2.14.1'``).

Usage: ``python scripts/ensure_torch.py`` (with the Python of the environment to set up).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

DEFAULT_REQUIREMENT = "torch==2.13.0"


def main() -> int:
    if importlib.util.find_spec("torch") is not None:
        import torch

        cuda = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU"
        print(f"ensure_torch: keeping the installed torch {torch.__version__} ({cuda} build)")
        return 0
    requirement = os.environ.get("DBENCH_TORCH_REQUIREMENT", DEFAULT_REQUIREMENT)
    print(f"ensure_torch: no torch importable; installing {requirement}")
    return subprocess.call([sys.executable, "-m", "pip", "install", "--quiet", requirement])


if __name__ == "__main__":
    sys.exit(main())
