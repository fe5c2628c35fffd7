"""Size and content report of a ``sam build`` output (``make layer-size``).

Prints the unzipped size of the shared layer and of every function, and fails (exit 1) when the
layer reaches the budget, when a package that must not be deployed slipped in (the Lambda runtime
provides boto3; lxml/numpy are heavy extras), when a packaged distribution's version differs
from the one installed in the project's virtualenv, i.e. from what the tests ran with, or when a
module (.py) has no precompiled bytecode of its exact source: Lambda's code directories are
read-only, so without ``__pycache__/<name>.cpython-311.pyc`` (unchecked-hash, see
devtools/lambda_build.mk) every cold start compiles it again.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import re
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

LAYER_BUDGET_BYTES = 40 * 1000 * 1000  # "under 40 MB unzipped", decimal megabytes to be safe
FORBIDDEN_DISTRIBUTIONS = frozenset({"boto3", "botocore", "s3transfer", "lxml", "numpy"})
_DIST_INFO = re.compile(r"^(?P<name>.+?)-(?P<version>[^-]+)\.dist-info$")
# The python3.11 runtime's bytecode: its cache tag and magic number (the same for every 3.11.x).
PYC_TAG = "cpython-311"
PYC_MAGIC = (3495).to_bytes(2, "little") + b"\r\n"
# The pyc header's flags word: bit 0 = hash-based, bit 1 = check the source. Unchecked-hash
# pycs are used as they are; timestamp ones need the source's exact mtime, which zip loses.
_UNCHECKED_HASH_FLAGS = 0b01


@dataclass(frozen=True)
class Artifact:
    name: str
    size_bytes: int
    distributions: dict[str, str]  # normalised name -> version
    modules: int = 0  # .py files
    without_bytecode: tuple[str, ...] = ()  # relative paths of .py without a matching pyc


def normalise(name: str) -> str:
    """PEP 503 name normalisation (``Typing_Extensions`` -> ``typing-extensions``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def tree_size(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


def packaged_distributions(root: Path) -> dict[str, str]:
    found: dict[str, str] = {}
    for search_dir in (root, root / "python"):
        if not search_dir.is_dir():
            continue
        for entry in search_dir.iterdir():
            match = _DIST_INFO.match(entry.name)
            if entry.is_dir() and match:
                found[normalise(match["name"])] = match["version"]
    return found


def has_matching_bytecode(source: Path) -> bool:
    """Whether ``source`` has a python3.11 unchecked-hash pyc compiled from exactly its bytes
    (an unchecked pyc of an older source would run the old code)."""
    cached = source.parent / "__pycache__" / f"{source.stem}.{PYC_TAG}.pyc"
    try:
        with cached.open("rb") as pyc:
            header = pyc.read(16)
    except OSError:
        return False
    return (
        len(header) == 16
        and header[:4] == PYC_MAGIC
        and int.from_bytes(header[4:8], "little") == _UNCHECKED_HASH_FLAGS
        and header[8:16] == importlib.util.source_hash(source.read_bytes())
    )


def modules_without_bytecode(root: Path) -> tuple[int, tuple[str, ...]]:
    """How many .py files ``root`` holds, and those without matching bytecode."""
    sources = sorted(root.rglob("*.py"))
    missing = tuple(
        str(source.relative_to(root)) for source in sources if not has_matching_bytecode(source)
    )
    return len(sources), missing


def scan(build_dir: Path) -> list[Artifact]:
    """Every artifact directory of a SAM build (layers and functions), sorted by name."""
    artifacts = []
    for path in sorted(build_dir.iterdir()):
        if path.is_dir():
            modules, missing = modules_without_bytecode(path)
            artifact = Artifact(
                path.name, tree_size(path), packaged_distributions(path), modules, missing
            )
            artifacts.append(artifact)
    return artifacts


def installed_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def problems(
    artifacts: Iterable[Artifact],
    layer_name: str,
    budget_bytes: int = LAYER_BUDGET_BYTES,
    tested_version: Callable[[str], str | None] = installed_version,
) -> list[str]:
    found: list[str] = []
    seen_layer = False
    for artifact in artifacts:
        if artifact.name == layer_name:
            seen_layer = True
            if artifact.size_bytes >= budget_bytes:
                found.append(
                    f"{layer_name} is {artifact.size_bytes / 1e6:.1f} MB unzipped,"
                    f" over the {budget_bytes / 1e6:.0f} MB budget"
                )
        if artifact.without_bytecode:
            examples = ", ".join(artifact.without_bytecode[:3])
            found.append(
                f"{artifact.name}: {len(artifact.without_bytecode)} of {artifact.modules} modules"
                f" without an unchecked-hash {PYC_TAG}.pyc of their source (e.g. {examples}):"
                " build with BuildMethod: makefile and devtools/lambda_build.mk"
            )
        for name, version in sorted(artifact.distributions.items()):
            if name in FORBIDDEN_DISTRIBUTIONS:
                found.append(f"{artifact.name} packages {name} {version}: must not be deployed")
                continue
            tested = tested_version(name)
            if tested != version:
                found.append(
                    f"{artifact.name} packages {name} {version} but the tests ran with"
                    f" {tested or 'nothing'}: pin it in the requirements file"
                )
    if not seen_layer:
        found.append(f"no {layer_name} in the build: run sam build first")
    return found


def render(artifacts: Iterable[Artifact]) -> str:
    lines = [f"{'artifact':<28} {'unzipped':>12} {'MB':>8} {'.py':>6} {'no pyc':>7}"]
    for artifact in artifacts:
        lines.append(
            f"{artifact.name:<28} {artifact.size_bytes:>12,} {artifact.size_bytes / 1e6:>8.2f}"
            f" {artifact.modules:>6} {len(artifact.without_bytecode):>7}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", nargs="?", default=".aws-sam/build", type=Path)
    parser.add_argument("--layer", default="SharedLayer")
    args = parser.parse_args(argv)
    if not args.build_dir.is_dir():
        print(f"{args.build_dir} does not exist: run `make sam-build` first", file=sys.stderr)
        return 1
    artifacts = scan(args.build_dir)
    print(render(artifacts))
    found = problems(artifacts, args.layer)
    for problem in found:
        print(f"FAIL: {problem}", file=sys.stderr)
    if not found:
        print(
            f"OK: {args.layer} under {LAYER_BUDGET_BYTES / 1e6:.0f} MB; versions match .venv;"
            f" every module has its unchecked-hash {PYC_TAG}.pyc"
        )
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
