"""The API process never imports torch (nor the worker package): it validates with aicd's light modules."""

from __future__ import annotations

import subprocess
import sys

from tests.backend.conftest import REPO


def test_backend_main_does_not_import_torch_or_worker() -> None:
    code = (
        "import sys, backend.main\n"
        "bad = [m for m in ('torch', 'transformers', 'worker') if m in sys.modules]\n"
        "print(bad)\n"
        "sys.exit(1 if bad else 0)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
