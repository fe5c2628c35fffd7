# Shared by the `sam build` Makefiles (BuildMethod: makefile) of the layer and every function:
# layers/shared/Makefile, functions/*/Makefile. Each sets SOURCE_DIR and REPO_ROOT from its own
# path (SAM runs make from a scratch copy, so the working directory is not the source tree) and
# includes this file.
#
# Why pyc: on Lambda the code directories (/opt for layers, /var/task) are read-only, so CPython
# cannot cache bytecode there and every cold start would compile every imported module from
# source. We ship __pycache__/*.cpython-311.pyc compiled by CPython 3.11 (bytecode does not
# depend on the architecture) in "unchecked-hash" mode: the interpreter uses them without
# looking at the source's mtime (which a zip round trip does not keep exactly).
# `make layer-size` (devtools/sam_build_report.py) fails when a .py has no such pyc of its exact
# source.

PYTHON ?= python3.11
# Removes the debug info (DWARF) of compiled extensions: SQLAlchemy's arm64 wheels ship 8 MB of
# it, never used at run time. Needs an ELF strip that knows arm64 (llvm-strip does).
LLVM_STRIP ?= llvm-strip

# Wheels for the Lambda runtime (CPython 3.11 on arm64), whatever this machine is; --no-compile:
# pip's own pycs are timestamp-based, ours come from lambda_compile.
LAMBDA_PIP := $(PYTHON) -m pip install --quiet --disable-pip-version-check --no-compile \
	--only-binary=:all: --platform manylinux2014_aarch64 --implementation cp \
	--python-version 3.11 --abi cp311

# $(call lambda_check_tools): fail early with a clear message instead of a half-built artifact.
define lambda_check_tools
	test -n "$(ARTIFACTS_DIR)" || { echo "ARTIFACTS_DIR is not set: run through sam build" >&2; exit 1; }
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
		|| { echo "$(PYTHON) is not CPython 3.11: the pycs must match the python3.11 runtime" >&2; exit 1; }
	command -v $(LLVM_STRIP) >/dev/null \
		|| { echo "$(LLVM_STRIP) not found: install llvm (apt-get install llvm) or set LLVM_STRIP" >&2; exit 1; }
endef

# $(call lambda_copy_code,SOURCE_DIR,DIR): a function's code as Lambda imports it from /var/task:
# app.py (the handler template.yaml names) and the function's package beside it (every directory
# holding an __init__.py: flex_search/, flex_ingest/, ...); lambda_finish drops stray caches.
define lambda_copy_code
	cp $(1)/*.py $(2)/
	for init in $(1)/*/__init__.py; do \
		test ! -f "$$init" || cp -R "$$(dirname "$$init")" $(2)/ || exit 1; \
	done
endef

# $(call lambda_finish,DIR,RUNTIME_DIR): strip extensions' debug info, drop pip's console
# scripts and stray caches, then compile every module under DIR. -s/-p record the path the
# code has on Lambda (RUNTIME_DIR) in the bytecode instead of this machine's build path, so the
# artifact is the same whoever builds it.
define lambda_finish
	rm -rf $(1)/bin
	find $(1) -name __pycache__ -type d -prune -exec rm -rf {} +
	find $(1) -name '*.so' -type f -exec $(LLVM_STRIP) --strip-debug {} +
	$(PYTHON) -m compileall -q -f -j 0 --invalidation-mode unchecked-hash -s $(1) -p $(2) $(1)
endef
