"""Load a function's handler module by file path, as Lambda does (tests and benchmarks)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

FUNCTIONS_DIR = Path(__file__).resolve().parents[1] / "functions"


def load_function(name: str) -> ModuleType:
    """``functions/<name>/app.py`` as module ``<name>_app``, with the function's directory on
    ``sys.path`` so its package imports (as on Lambda); loaded once per process, and afresh
    (its package too) after anyone else, e.g. the local runner, loaded that function."""
    function_dir = FUNCTIONS_DIR / name
    if str(function_dir) not in sys.path:
        sys.path.insert(0, str(function_dir))
    path = function_dir / "app.py"
    if not _loaded(f"{name}_app", path):
        forget_modules_under(function_dir)
    return load_module(f"{name}_app", path)


def forget_modules_under(directory: Path) -> None:
    """Take every module loaded from ``directory`` (a function's app.py under any name, its
    package) out of ``sys.modules``: the next import is a new container's cold start, with the
    environment of that moment (settings, logger service name, clients)."""
    prefix = str(directory) + os.sep
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(prefix):
            del sys.modules[name]


def _loaded(module_name: str, path: Path) -> bool:
    module = sys.modules.get(module_name)
    return module is not None and getattr(module, "__file__", None) == str(path)


def load_module(module_name: str, path: Path) -> ModuleType:
    """The module in file ``path`` under ``module_name``, imported once per process."""
    if _loaded(module_name, path):
        return sys.modules[module_name]
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
