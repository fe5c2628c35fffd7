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
    module_name = f"{name}_app"
    if module_name in sys.modules:
        return sys.modules[module_name]
    function_dir = FUNCTIONS_DIR / name
    if str(function_dir) not in sys.path:
        sys.path.insert(0, str(function_dir))
    spec = importlib.util.spec_from_file_location(module_name, function_dir / "app.py")
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
