"""LightGBM's text model, checked before LightGBM parses it: whatever bytes `model.txt` holds, no process dies.

LightGBM's parser trusts its input. It parses the trees in parallel, where an error aborts the whole process
("terminate called", exit 134: one leaf value rewritten as "9.5" moves every later tree off the offsets that
`tree_sizes` gives); it scans for a `=` past the end of a line that has none; and a child index or feature index
out of range makes a prediction read outside the tree. None of that can be caught from Python. So the loader hands
LightGBM only text in exactly the form `Booster.save_model` writes for this project's model (LightGBM 4.7, pinned in
`pyproject.toml`): the fixed header, one block per tree at the offsets `tree_sizes` gives, each with every field
in LightGBM's order, every number finite, every index in range and the children forming one tree, and the fixed
tail. Anything else raises `ModelTextError`, naming the line and what is wrong.

What this does not check: whether the numbers are the ones training wrote (the manifest's sha256 and the
artifact's digest pin do that), and any model form this project does not train (categorical splits, linear
trees, other objectives): those are refused, not parsed.
"""

from __future__ import annotations

import re
from typing import NoReturn

import numpy as np

#: The most leaves LightGBM allows in one tree.
MAX_LEAVES = 131_072
#: The most splits from a tree's root to a leaf. LightGBM's TreeSHAP (the explanations) recurses once per level: a
#: chain of 50,000 splits aborts the process, 20,000 did not. Training here grows at most 15 leaves a tree (depth
#: <= 14), LightGBM's own trainings of 255 leaves at most 254: 1,000 leaves room and stays far from the crash.
MAX_TREE_DEPTH = 1_000
#: A leaf value no training writes (the real model's are below 5 in absolute value); any bound keeps the sum of
#: every tree's leaf finite, so a prediction can never be NaN.
MAX_ABS_LEAF_VALUE = 1e6

# As LightGBM writes numbers ("-0.39781748492884744", "1.0000000180025095e-35"); possessive, so no backtracking.
_INT = r"-?\d{1,9}+"
_NUMBER = r"-?\d++(?:\.\d++)?+(?:e[-+]?\d{1,3}+)?+"
_INTS = rf"(?:{_INT}(?: {_INT})*+)?+"
_NUMBERS = rf"(?:{_NUMBER}(?: {_NUMBER})*+)?+"
_NAME = re.compile(r"[A-Za-z0-9_]+")
_FEATURE_INFO = re.compile(rf"none|\[{_NUMBER}:{_NUMBER}\]")
_TAIL = re.compile(
    r"end of trees\n"
    r"\nfeature_importances:\n(?:[A-Za-z0-9_]+=\d{1,12}\n)*"
    r"\nparameters:\n(?:\[[a-z0-9_]+: [A-Za-z0-9_.,+\- ]*\]\n|\n)*end of parameters\n"
    r"\npandas_categorical:null\n"
)
#: Each field of one tree, in the order LightGBM writes them, with the form of its value (no categorical splits,
#: no linear leaves); the arrays hold one value per leaf (`leaf_*`) or per split (the others).
_TREE_FIELDS = {
    "num_leaves": r"\d{1,6}",
    "num_cat": "0",
    "split_feature": _INTS,
    "split_gain": _NUMBERS,
    "threshold": _NUMBERS,
    "decision_type": _INTS,
    "left_child": _INTS,
    "right_child": _INTS,
    "leaf_value": _NUMBERS,
    "leaf_weight": _NUMBERS,
    "leaf_count": _INTS,
    "internal_value": _NUMBERS,
    "internal_weight": _NUMBERS,
    "internal_count": _INTS,
    "is_linear": "0",
    "shrinkage": _NUMBER,
}
_ARRAYS = tuple(field for field, form in _TREE_FIELDS.items() if form in (_INTS, _NUMBERS))
_PER_LEAF = frozenset({"leaf_value", "leaf_weight", "leaf_count"})
_TREE = re.compile(
    r"Tree=(?P<index>\d{1,9})\n"
    + "".join(f"{field}=(?P<{field}>{form})\n" for field, form in _TREE_FIELDS.items())
    + r"\n\n"
)
#: What LightGBM reads when it predicts or explains, checked across all trees at once: the field, its type, and
#: the condition every value must meet.
_LIMITS = (
    ("split_feature", np.int64, "a split on a feature the model does not have"),
    ("decision_type", np.int64, "a categorical split, which this model never has"),
    ("threshold", np.float64, "a threshold too large to be finite"),
    ("leaf_value", np.float64, f"a leaf value beyond +-{MAX_ABS_LEAF_VALUE:g}, which no training writes"),
    ("leaf_count", np.int64, "a row count below 1 (TreeSHAP divides by it: the explanations would be NaN)"),
    ("internal_count", np.int64, "a row count below 1 (TreeSHAP divides by it: the explanations would be NaN)"),
)
#: decision_type bits: 1 categorical, 2 default left, 4 and 8 the missing-value type (0 to 2).
_DECISION_TYPES = (0, 2, 4, 6, 8, 10)


class ModelTextError(ValueError):
    """The model text is not in the form LightGBM writes for this model; the message names the line."""


def check_model_text(raw: bytes, n_features: int, n_classes: int) -> str:
    """The text of `raw`, once it is known to be safe to hand to LightGBM; else `ModelTextError`."""
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError as exc:
        raise ModelTextError(
            f"byte {exc.start} is not ASCII (0x{raw[exc.start]:02x}): not a LightGBM text model"
        ) from None
    if "\r" in text or "\0" in text:
        where = min(i for i in (text.find("\r"), text.find("\0")) if i >= 0)
        raise ModelTextError(f"line {_line(text, where)}: a carriage return or NUL byte, which LightGBM never writes")
    sizes, position = _check_header(text, n_features, n_classes)
    trees, lines = [], [_line(text, position)]
    for index, size in enumerate(sizes):
        trees.append(_check_tree(text[position : position + size], index, lines[-1]))
        position += size
        lines.append(lines[-1] + text.count("\n", position - size, position))
    if len(sizes) % n_classes:
        raise ModelTextError(f"{len(sizes)} trees is not a whole number of rounds of {n_classes} (one per class)")
    _check_values(trees, n_features, lines)
    if not _TAIL.fullmatch(text, position):
        raise ModelTextError(
            f"line {_line(text, position)}: after the last tree, expected 'end of trees', the feature importances, "
            "the parameters and 'pandas_categorical:null', each as LightGBM writes them"
        )
    return text


def _line(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _check_header(text: str, n_features: int, n_classes: int) -> tuple[list[int], int]:
    """The header's fixed lines and its tree sizes; returns the sizes and where the first tree starts."""
    expected = (
        "tree",
        "version=v4",
        f"num_class={n_classes}",
        f"num_tree_per_iteration={n_classes}",
        "label_index=0",
        f"max_feature_idx={n_features - 1}",
        f"objective=multiclass num_class:{n_classes}",
    )
    lines = text.split("\n", len(expected) + 4)
    if len(lines) < len(expected) + 5:
        raise ModelTextError(f"the header ends after {len(lines) - 1} lines: not a LightGBM multiclass model")
    for number, (line, wanted) in enumerate(zip(lines, expected, strict=False), start=1):
        if line != wanted:
            raise ModelTextError(f"line {number}: expected {wanted!r}, found {line[:80]!r}")
    names, infos, sizes_line, blank = lines[len(expected) : len(expected) + 4]
    first = len(expected) + 1
    _check_listed(names, "feature_names", n_features, _NAME, first)
    _check_listed(infos, "feature_infos", n_features, _FEATURE_INFO, first + 1)
    if not sizes_line.startswith("tree_sizes=") or not re.fullmatch(r"\d{1,12}(?: \d{1,12})*", sizes_line[11:]):
        raise ModelTextError(f"line {first + 2}: expected tree_sizes=<one byte count per tree>")
    if blank != "":
        raise ModelTextError(f"line {first + 3}: expected an empty line before the first tree")
    start = sum(len(line) + 1 for line in lines[: len(expected) + 4])
    sizes = [int(size) for size in sizes_line[11:].split(" ")]
    if start + sum(sizes) > len(text):
        raise ModelTextError(
            f"line {first + 2}: tree_sizes adds up to {sum(sizes):,} bytes, but only {len(text) - start:,} follow "
            "the header (the file was cut short or edited)"
        )
    return sizes, start


def _check_listed(line: str, key: str, count: int, token: re.Pattern[str], number: int) -> None:
    values = line.removeprefix(f"{key}=").split(" ") if line.startswith(f"{key}=") else []
    if len(values) != count or not all(token.fullmatch(value) for value in values):
        raise ModelTextError(f"line {number}: expected {key}= with {count} entries, found {line[:80]!r}")


def _check_tree(block: str, index: int, line: int) -> dict[str, str]:
    """One tree's block, exactly as LightGBM's parallel parser will read it (from `tree_sizes`); `line` is its
    first. Returns the values of its fields, each of the right form and with one value per leaf or split."""
    match = _TREE.fullmatch(block)
    if match is None or match["index"] != str(index):
        _explain(block, index, line)
    fields = match.groupdict()
    where = f"tree {index} (line {line + 1})"
    leaves = int(fields["num_leaves"])
    if not 1 <= leaves <= MAX_LEAVES:
        raise ModelTextError(f"{where}: num_leaves is {leaves}, expected 1 to {MAX_LEAVES:,}")
    for field in _ARRAYS:
        values = fields[field]
        found = values.count(" ") + 1 if values else 0
        needed = leaves if field in _PER_LEAF else leaves - 1
        if found != needed and not (field == "leaf_weight" and leaves == 1 and found == 0):  # a lone leaf: none
            raise ModelTextError(f"{where}: {field} has {found} values, the tree's num_leaves needs {needed}")
    if not np.isfinite(float(fields["shrinkage"])):
        raise ModelTextError(f"{where}: shrinkage {fields['shrinkage'][:40]!r} is not a finite number")
    return fields


def _explain(block: str, index: int, line: int) -> NoReturn:
    """Why a tree's block is not in LightGBM's form, as precisely as can be said."""
    title = f"Tree={index}\n"
    if not block.startswith(title) or not block.endswith("\n\n\n"):
        raise ModelTextError(
            f"line {line}: tree_sizes puts tree {index} here ({len(block):,} bytes), but the text there is "
            f"{block[:24]!r}...{block[-24:]!r}, not one whole tree (a value changed length: the file was edited)"
        )
    where = f"tree {index} (line {line + 1})"
    fields = [text.partition("=") for text in block[len(title) : -3].split("\n")]
    found = [key for key, _, _ in fields]
    if found != list(_TREE_FIELDS) or not all(equals for _, equals, _ in fields):
        raise ModelTextError(f"{where}: the fields are {found[:20]}, expected {list(_TREE_FIELDS)}")
    for key, _, value in fields:
        if not re.fullmatch(_TREE_FIELDS[key], value):
            form = {_INTS: "a list of integers", _NUMBERS: "a list of numbers", _NUMBER: "a number"}
            expected = form.get(_TREE_FIELDS[key], repr(_TREE_FIELDS[key]))
            raise ModelTextError(f"{where}: {key} is {value[:40]!r}..., expected {expected} (single spaces)")
    raise ModelTextError(f"{where}: not in the form LightGBM writes")  # pragma: no cover - the checks above cover it


def _check_values(trees: list[dict[str, str]], n_features: int, lines: list[int]) -> None:
    """What LightGBM reads when it predicts, checked across every tree at once: the numbers, then the children.

    `lines`: where each tree starts, for the message."""
    leaves = np.array([int(tree["num_leaves"]) for tree in trees], dtype=np.int64)
    for field, dtype, problem in _LIMITS:
        values = _column(trees, field, dtype)
        if field == "split_feature":
            bad = (values < 0) | (values >= n_features)
        elif field == "decision_type":
            bad = ~np.isin(values, _DECISION_TYPES)
        elif field == "leaf_value":
            bad = ~(np.abs(values) <= MAX_ABS_LEAF_VALUE)
        elif dtype == np.float64:
            bad = ~np.isfinite(values)
        else:  # row counts
            bad = values < 1
        if bad.any():
            owner = np.repeat(np.arange(len(trees)), leaves if field in _PER_LEAF else leaves - 1)
            first = int(np.argmax(bad))
            tree = owner[first]
            raise ModelTextError(f"tree {tree} (line {lines[tree] + 1}): {field} {values[first]}: {problem}")
    children = (_column(trees, "left_child", np.int64), _column(trees, "right_child", np.int64))
    _check_children(*children, leaves, lines)


def _column(trees: list[dict[str, str]], field: str, dtype: type[np.generic]) -> np.ndarray:
    """One field's values of every tree, in tree order."""
    return np.array(" ".join(tree[field] for tree in trees if tree[field]).split(), dtype=dtype)


def _check_children(left: np.ndarray, right: np.ndarray, leaves: np.ndarray, lines: list[int]) -> None:
    """Each tree's splits and leaves, each reached exactly once from its root: every prediction ends in a leaf.

    `left` and `right` hold every tree's children in turn (leaves - 1 per tree). A child >= 0 is a split, which
    LightGBM numbers in the order it made them, so always above its parent (hence no cycle); a child < 0 is the
    leaf ~child. Each split but the root, and each leaf, must then be the child of exactly one split.
    """
    splits = leaves - 1
    split_start, leaf_start = np.cumsum(splits) - splits, np.cumsum(leaves) - leaves
    owner = np.repeat(np.arange(len(leaves)), splits)
    node = np.arange(len(owner)) - split_start[owner]
    for side, children in (("left", left), ("right", right)):
        wrong = np.where(children >= 0, (children <= node) | (children >= splits[owner]), ~children >= leaves[owner])
        if wrong.any():
            at = int(np.argmax(wrong))
            tree = int(owner[at])
            raise ModelTextError(
                f"tree {tree} (line {lines[tree] + 1}): split {node[at]} has the {side} child {children[at]}, "
                f"neither a later split (up to {splits[tree] - 1}) nor a leaf (-1 to -{leaves[tree]})"
            )
    children, owners = np.concatenate([left, right]), np.concatenate([owner, owner])
    is_split = children >= 0
    split_parents = np.bincount(split_start[owners[is_split]] + children[is_split], minlength=int(splits.sum()))
    leaf_parents = np.bincount(leaf_start[owners[~is_split]] + ~children[~is_split], minlength=int(leaves.sum()))
    split_parents[split_start[splits > 0]] += 1  # a root is nobody's child: count its place as taken
    leaf_parents[leaf_start[leaves == 1]] += 1  # so is a lone leaf
    for what, parents, start in (("split", split_parents, split_start), ("leaf", leaf_parents, leaf_start)):
        if (parents != 1).any():
            at = int(np.argmax(parents != 1))
            tree = int(np.searchsorted(start, at, side="right")) - 1
            raise ModelTextError(
                f"tree {tree} (line {lines[tree] + 1}): {what} {at - start[tree]} is the child of {parents[at]} "
                "splits, expected exactly one"
            )
    _check_depth(
        np.where(left >= 0, split_start[owner] + left, -1),
        np.where(right >= 0, split_start[owner] + right, -1),
        split_start[splits > 0],
        owner,
        lines,
    )


def _check_depth(left: np.ndarray, right: np.ndarray, roots: np.ndarray, owner: np.ndarray, lines: list[int]) -> None:
    """No tree deeper than `MAX_TREE_DEPTH`: walked level by level from every root at once (each split is the child of
    exactly one split, checked before, so the walk visits each once). `left`/`right`: each split's child split by its
    index across all trees, -1 for a leaf."""
    level = roots
    for _ in range(MAX_TREE_DEPTH):
        children = np.concatenate([left[level], right[level]])
        level = children[children >= 0]
        if not level.size:
            return
    tree = int(owner[level[0]])
    raise ModelTextError(
        f"tree {tree} (line {lines[tree] + 1}): deeper than {MAX_TREE_DEPTH:,} splits, which no training writes "
        "(explaining a prediction would recurse once per level and crash the process)"
    )
