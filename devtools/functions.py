"""Load a function's handler module by file path, as Lambda does (tests and benchmarks)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` as module ``<name>_app``, with the function's directory on
    ``sys.path`` so its sibling modules import by bare name; loaded once per process."""
    function_dir = FUNCTIONS_DIR / name
    if str(function_dir) not in sys.path:
        sys.path.insert(0, str(function_dir))
    return load_module(f"{name}_app", function_dir / "app.py")


def load_module(module_name: str, path: Path) -> ModuleType:
    """The module in file ``path`` under ``module_name``, imported once per process."""
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__file__", None) == str(path):
        return module
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]  # a failed import must not leave a half-made module
        raise
    return module
