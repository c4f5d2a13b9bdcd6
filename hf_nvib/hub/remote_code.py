"""Opt-in "push with code": self-contained modeling files + `auto_map` for `trust_remote_code`.

`register_for_auto_class` + `save_pretrained` copies only the defining file and its *relative*
imports, and drops absolute `hf_nvib.*` imports, so the published code would still need the
plugin. Here every module of the plugin that the config/model classes need is collected
(transitively, through absolute and relative imports), copied flat into the repo root, and its
imports rewritten to single-dot relative ones, which is what transformers' dynamic module loader
downloads and resolves.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

AUTO_CLASS_ROLES = ("AutoConfig", "AutoModel", "AutoModelForSeq2SeqLM")


def _module_file(name: str) -> Path:
    module = importlib.import_module(name)
    source = inspect.getsourcefile(module)
    if source is None:
        raise ValueError(f"module {name} has no Python source to publish")
    return Path(source)


def _is_package(name: str) -> bool:
    return hasattr(importlib.import_module(name), "__path__")


def _resolve(node: ast.ImportFrom, current: str, is_package: bool) -> str | None:
    """Absolute module name of an ImportFrom (None for imports outside the plugin)."""
    if node.level == 0:
        return node.module
    base = current.split(".") if is_package else current.split(".")[:-1]
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _plugin_imports(name: str, root: str) -> list[tuple[ast.ImportFrom, str]]:
    """(node, absolute module) for every import of a `root.*` module in module `name`."""
    source = _module_file(name).read_text(encoding="utf-8")
    tree = ast.parse(source)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == root or alias.name.startswith(root + "."):
                    raise ValueError(
                        f"{name}: `import {alias.name}` cannot be made relative; use "
                        "`from ... import ...` in modules published with remote code"
                    )
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node, name, _is_package(name))
            if target and (target == root or target.startswith(root + ".")):
                if target == root:
                    raise ValueError(
                        f"{name}: imports from the top-level package {root!r} (registration "
                        "code); import from the defining submodule instead"
                    )
                for alias in node.names:  # `from pkg import submodule` is not supported
                    if _is_package(target) and importlib.util.find_spec(f"{target}.{alias.name}"):
                        raise ValueError(
                            f"{name}: `from {target} import {alias.name}` imports a module; "
                            "import names from it instead"
                        )
                found.append((node, target))
    return found


def collect_modules(entry_modules: list[str], root: str) -> list[str]:
    """Every plugin module reachable from `entry_modules` through plugin imports."""
    seen: list[str] = []
    stack = list(entry_modules)
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.append(name)
        stack.extend(target for _, target in _plugin_imports(name, root))
    return seen


def flat_names(modules: list[str], root: str) -> dict[str, str]:
    """Module → flat file stem: the last component, or more of the path on a collision."""
    parts = {m: m[len(root) + 1 :].split(".") for m in modules}
    depth = dict.fromkeys(modules, 1)
    while True:
        names = {m: "_".join(parts[m][-depth[m] :]) for m in modules}
        clashes = {m for m in modules if list(names.values()).count(names[m]) > 1}
        growable = {m for m in clashes if depth[m] < len(parts[m])}
        if not growable:
            if clashes:
                raise ValueError(f"cannot give distinct flat names to {sorted(clashes)}")
            return names
        for m in growable:
            depth[m] += 1


def rewrite_imports(name: str, root: str, flat: Mapping[str, str]) -> str:
    """Source of module `name` with its plugin imports turned into `from .<flat> import ...`."""
    lines = _module_file(name).read_text(encoding="utf-8").splitlines(keepends=True)
    for node, target in _plugin_imports(name, root):
        index = node.lineno - 1
        new, count = re.subn(
            r"^(\s*from\s+)[.\w]+(\s+import\b)",
            rf"\g<1>.{flat[target]}\g<2>",
            lines[index],
            count=1,
        )
        if count != 1:
            raise ValueError(f"{name}:{node.lineno}: cannot rewrite import line {lines[index]!r}")
        lines[index] = new
    header = (
        f"# Generated by hf-nvib (source: {name}) for trust_remote_code loading; do not edit.\n"
    )
    return header + "".join(lines)


def build_remote_code(classes: Mapping[str, type]) -> tuple[dict[str, bytes], dict[str, str]]:
    """Flat modeling files for `classes` (auto-class role → class) and the matching `auto_map`."""
    entry = sorted({cls.__module__ for cls in classes.values()})
    roots = {m.split(".")[0] for m in entry}
    if len(roots) != 1:
        raise ValueError(f"classes come from several packages: {sorted(roots)}")
    root = roots.pop()
    modules = collect_modules(entry, root)
    flat = flat_names(modules, root)
    files = {f"{flat[m]}.py": rewrite_imports(m, root, flat).encode() for m in modules}
    auto_map = {role: f"{flat[cls.__module__]}.{cls.__name__}" for role, cls in classes.items()}
    return files, auto_map


def auto_classes_for(model_type: str) -> dict[str, type]:
    """The registered config/base/seq2seq classes of `model_type` (imports hf_nvib to register)."""
    from transformers import AutoConfig, AutoModel, AutoModelForSeq2SeqLM

    import hf_nvib  # noqa: F401  - registration side effect

    config_class = AutoConfig.for_model(model_type).__class__
    classes: dict[str, Any] = {"AutoConfig": config_class}
    for role, auto in (("AutoModel", AutoModel), ("AutoModelForSeq2SeqLM", AutoModelForSeq2SeqLM)):
        mapping = auto._model_mapping
        if config_class in mapping:
            classes[role] = mapping[config_class]
    if "AutoModelForSeq2SeqLM" not in classes:
        raise ValueError(f"no AutoModelForSeq2SeqLM class registered for {model_type!r}")
    return classes


def remote_code_files(config: Mapping[str, Any]) -> tuple[dict[str, bytes], dict[str, str]]:
    """Files and `auto_map` for a saved config dict (its `model_type` must be registered)."""
    model_type = config.get("model_type")
    if not model_type:
        raise ValueError("config.json has no model_type")
    classes = auto_classes_for(str(model_type))
    if config.get("architectures"):
        arch = config["architectures"][0]
        chosen = classes["AutoModelForSeq2SeqLM"]
        if chosen.__name__ != arch:
            module = sys.modules[chosen.__module__]
            if hasattr(module, arch):
                classes["AutoModelForSeq2SeqLM"] = getattr(module, arch)
    return build_remote_code(classes)
