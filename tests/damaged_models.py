"""Damage a model artifact's `model.txt` the way an attacker with write access would: the manifest's sha256 of the
file is updated to match, so only the loader's own checks of the text stand between the bytes and LightGBM."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

from ml.inference.artifact import MANIFEST_FILE, MODEL_FILE


def reseal(files: dict[str, bytes], model: bytes) -> dict[str, bytes]:
    """The artifact's files with `model` as model.txt and the manifest's sha256 of it updated."""
    manifest = json.loads(files[MANIFEST_FILE])
    manifest["files"][MODEL_FILE] = hashlib.sha256(model).hexdigest()
    return {**files, MODEL_FILE: model, MANIFEST_FILE: json.dumps(manifest, indent=2).encode()}


def rewrite_model_text(model_dir: Path, edit: Callable[[str], str]) -> None:
    """Apply `edit` to the folder's model.txt and reseal it."""
    files = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}
    for name, content in reseal(files, edit(files[MODEL_FILE].decode()).encode()).items():
        (model_dir / name).write_bytes(content)


def first_leaf_value(text: str, value: str = "9.5") -> str:
    """Tree 0's first leaf value replaced by `value` (another length: every later tree moves off its tree_sizes)."""
    start = text.index("leaf_value=", text.index("Tree=0\n")) + len("leaf_value=")
    return text[:start] + value + text[text.index(" ", start) :]


def tree_field(text: str, tree: int, field: str, values: str) -> str:
    """One tree's field set to `values`, with tree_sizes recomputed: a careful attacker's edit."""
    return _with_tree(
        text, tree, lambda block: re.sub(rf"(?m)^{field}=.*$", lambda _: f"{field}={values}", block, count=1)
    )


def chain_tree(text: str, tree: int, leaves: int) -> str:
    """One tree replaced by a chain (each split a leaf on the left, the next split on the right), every field valid
    and tree_sizes recomputed: a tree as deep as it has splits."""
    splits = leaves - 1

    def numbers(values: list[object]) -> str:
        return " ".join(map(str, values))

    block = (
        f"Tree={tree}\nnum_leaves={leaves}\nnum_cat=0\nsplit_feature={numbers([0] * splits)}\n"
        f"split_gain={numbers([1] * splits)}\nthreshold={numbers(['-1e+300'] * splits)}\n"
        f"decision_type={numbers([2] * splits)}\nleft_child={numbers([-(i + 1) for i in range(splits)])}\n"
        f"right_child={numbers([*range(1, splits), -leaves])}\nleaf_value={numbers(['0.001'] * leaves)}\n"
        f"leaf_weight={numbers([1] * leaves)}\nleaf_count={numbers([1] * leaves)}\n"
        f"internal_value={numbers([0] * splits)}\ninternal_weight={numbers([1] * splits)}\n"
        f"internal_count={numbers([leaves - i for i in range(splits)])}\nis_linear=0\nshrinkage=1\n\n\n"
    )
    return _with_tree(text, tree, lambda _: block)


def _with_tree(text: str, tree: int, edit: Callable[[str], str]) -> str:
    blocks = re.split(r"(?m)^(?=Tree=\d+\n|end of trees\n)", text)
    head, trees, tail = blocks[0], blocks[1:-1], blocks[-1]
    trees[tree] = edit(trees[tree])
    sizes = " ".join(str(len(block)) for block in trees)
    head = re.sub(r"(?m)^tree_sizes=.*$", f"tree_sizes={sizes}", head, count=1)
    return head + "".join(trees) + tail
