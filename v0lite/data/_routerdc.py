"""Converter of RouterDC's 7-model JSON files."""

from __future__ import annotations

import os
import re
import warnings

import polars as pl

from ..exceptions import DataError, V0liteWarning
from ._common import _existing, _field, _log_of, _number, _read_json, _show, _text_value

__all__ = ["convert_routerdc", "ROUTERDC_SPLITS", "ROUTERDC_OOD"]

_MCQ_TASKS = ("mmlu", "cmmlu", "ceval")
_SPLIT_SUFFIX = re.compile(r"[-_](train|test)$")
# RouterDC's own protocol (Chen et al. 2024, split2_model7): the four files without a train part
# are out of distribution; the router never sees their task.
ROUTERDC_OOD = ("MATH_prealgebra", "mbpp", "ceval", "javascript")
ROUTERDC_SPLITS = ("official",)


def _routerdc_task(stem: str) -> tuple[str, str]:
    m = _SPLIT_SUFFIX.search(stem)
    if m is None:
        return stem, "all"
    return stem[: m.start()], m.group(1)


def _is_mcq(task: str) -> bool:
    t = task.lower()
    return t in _MCQ_TASKS or t.startswith("arc_")


def convert_routerdc(src_dir: str | os.PathLike, split: str | None = None) -> pl.DataFrame | dict[str, pl.DataFrame]:
    """Convert RouterDC's 7-model JSON files to one log, or to its official train/test split.

    Every ``*.json`` in ``src_dir`` (a list of ``{question, scores{model: float}}``)
    gives one row per (question, model). ``task`` is the file stem without a
    ``_train``/``_test``/``-train``/``-test`` suffix, and the extra column ``split`` says
    ``"train"``, ``"test"`` or ``"all"`` (no suffix). Multiple-choice tasks (mmlu, cmmlu,
    ceval, arc_*) store the gold option's likelihood when the model is right, so they
    become binary (``1.0`` if score > 0 else ``0.0``); the other tasks keep their graded
    rate. ``prompt_id = f"{file_stem}:{i}"`` (i = position in the file). A file with no items is
    refused; items that do not score every model of the folder keep the scores they have, and their
    count (with the models absent from whole files: a misspelt name) is reported in one
    :class:`~v0lite.exceptions.V0liteWarning`.

    Caveat: the shipped train/test files overlap on a few questions and a few questions
    repeat inside a file (in the RouterDC copy 35 extra copies in all: mmlu train/test
    16, mmlu_test 8 within, arc_easy 4 + 1 within train, arc_challenge 2, cmmlu 1,
    ceval 1, mbpp 1, and one question in both arc_challenge_train and arc_easy_train).
    With ``split=None`` all rows are kept; to
    evaluate without leakage ignore ``split`` and use :func:`split_by_prompt`, which
    puts every copy of a prompt on the same side.

    ``split="official"`` gives RouterDC's own protocol as three logs: ``train`` = every
    ``*_train.json`` / ``*-train.json``; ``test_id`` (in distribution) = every ``*_test.json`` /
    ``*-test.json``; ``test_ood`` (out of distribution) = the files named in
    :data:`ROUTERDC_OOD` (MATH_prealgebra, mbpp, ceval, javascript). Test questions (of either
    test log) whose prompt text also appears in train are dropped, and the number dropped per
    file is reported in one :class:`~v0lite.exceptions.V0liteWarning` (the CLI prints it). A
    file in none of the three groups is left out with a warning naming it.

    Parameters
    ----------
    src_dir : path
        Folder with the JSON files.
    split : {None, "official"}, default None
        None: one log of every file. ``"official"``: the three logs above.

    Returns
    -------
    polars.DataFrame or dict of str to polars.DataFrame
        Validated log(s): policy, prompt, score, prompt_id, task, split. With
        ``split="official"`` a dict ``{"train", "test_id", "test_ood"}`` whose ``split``
        column holds that name.

    Raises
    ------
    ValueError
        (:class:`~v0lite.exceptions.DataError`) for an unknown ``split`` (the message lists
        the valid names), or when the official split finds no train or no test file.

    Examples
    --------
    >>> import json, tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (d / "mmlu_test.json").write_text(json.dumps([{"question": "Q", "scores": {"a": 0.7, "b": 0}}]))
    >>> convert_routerdc(d).select("policy", "score", "task", "split").rows()
    [('a', 1.0, 'mmlu', 'test'), ('b', 0.0, 'mmlu', 'test')]
    """
    if split is not None and split not in ROUTERDC_SPLITS:
        raise DataError(f"unknown RouterDC split {split!r}. Fix: use one of {list(ROUTERDC_SPLITS)}, or no split.")
    src_dir = _existing(src_dir, "RouterDC", directory=True)
    files = sorted(src_dir.glob("*.json"))
    if not files:
        raise DataError(
            f"{src_dir}: no '*.json' file. Fix: pass the folder holding RouterDC's split2_model7 JSON files."
        )
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "prompt_id", "task", "split")}
    places: list[str] = []
    scored: list[tuple[str, frozenset]] = []  # (file, its models) per item: a model some items lack is named
    for path in files:
        items = _read_json(path)
        if not isinstance(items, list):
            raise DataError(
                f"{path}: expected a JSON list of {{question, scores}} objects. Fix: pass a RouterDC JSON file."
            )
        if not items:  # else the official split blames "dropping the questions also in train" for it
            raise DataError(
                f"{path}: no items (an empty list). Fix: pass the file with its items, or remove it from the folder."
            )
        task, part = _routerdc_task(path.stem)
        mcq = _is_mcq(task)
        for i, item in enumerate(items):
            where = f"item {i}"
            if not isinstance(item, dict):
                raise DataError(
                    f"{path}, {where}: expected an object, got {type(item).__name__}. Fix: repair that item."
                )
            question = _text_value(path, where, "question", _field(path, where, item, "question"))
            scores = _field(path, where, item, "scores")
            if not isinstance(scores, dict) or not scores:
                raise DataError(
                    f"{path}, {where}: field 'scores' = {_show(scores)} is not a non-empty object of model -> score. "
                    "Fix: repair that item."
                )
            scored.append((path.name, frozenset(scores)))
            for model, value in scores.items():
                v = _number(path, where, f"scores[{model!r}]", value)
                if not 0.0 <= v <= 1.0:
                    raise DataError(
                        f"{path}, {where}, model {model!r}: score {value!r} is outside [0, 1]. "
                        "Fix: pass RouterDC scores."
                    )
                if not model.strip():
                    raise DataError(
                        f"{path}, {where}: 'scores' has an empty model name {model!r}. Fix: name that model."
                    )
                cols["policy"].append(model)
                cols["prompt"].append(question)
                cols["score"].append((1.0 if v > 0 else 0.0) if mcq else v)
                cols["prompt_id"].append(f"{path.stem}:{i}")
                cols["task"].append(task)
                cols["split"].append(part)
                places.append(f"{path}, {where}")
    log = _log_of(cols, places, str(src_dir))
    _warn_missing_models(scored)
    if split is None:
        return log
    return _official(log, files)


def _warn_missing_models(scored: list[tuple[str, frozenset]]) -> None:
    """Warn when not every item scores every model (a model renamed in one file, ``m_2`` for ``m2``, would
    otherwise be two half-filled policies): the models absent from some files, and the items lacking one."""
    models = frozenset().union(*(m for _, m in scored))
    lacking = sum(1 for _, m in scored if m != models)
    if not lacking:
        return
    per_file: dict[str, set] = {}
    for name, m in scored:
        per_file.setdefault(name, set()).update(m)
    absent = {m: sorted(f for f, got in per_file.items() if m not in got) for m in sorted(models)}
    absent = {m: f for m, f in absent.items() if f}
    where = f"; models absent from whole files: {absent}" if absent else ""
    warnings.warn(
        f"RouterDC: {lacking} of {len(scored)} items do not score all {len(models)} models{where}. Their other "
        "models' scores are kept. Fix: if a model name is misspelt in some files, rename it there.",
        V0liteWarning,
        stacklevel=3,
    )


def _official(log: pl.DataFrame, files) -> dict[str, pl.DataFrame]:
    """RouterDC's official split of the one-log conversion; overlap with train dropped and reported."""
    stem = pl.col("prompt_id").str.replace(r":\d+$", "")
    log = log.with_columns(stem.alias("_file"))
    ood = set(ROUTERDC_OOD)
    groups = {"train": [], "test_id": [], "test_ood": []}
    for path in files:
        _, part = _routerdc_task(path.stem)
        name = "train" if part == "train" else "test_id" if part == "test" else "test_ood" if path.stem in ood else None
        if name is None:
            warnings.warn(
                f"{path.name}: neither *_train, *_test nor one of RouterDC's out-of-distribution files "
                f"{list(ROUTERDC_OOD)}; left out of the official split.",
                V0liteWarning,
                stacklevel=3,
            )
        else:
            groups[name].append(path.stem)
    missing = sorted(ood - set(groups["test_ood"]))
    if missing:
        warnings.warn(
            f"official split: out-of-distribution files {[m + '.json' for m in missing]} are absent; "
            "test_ood holds the others.",
            V0liteWarning,
            stacklevel=3,
        )
    for name in ("train", "test_id", "test_ood"):
        if not groups[name]:
            raise DataError(
                f"official split: no {name} file (expected "
                + {
                    "train": "*_train.json",
                    "test_id": "*_test.json",
                    "test_ood": " or ".join(f"{m}.json" for m in ROUTERDC_OOD),
                }[name]
                + "). Fix: pass RouterDC's split2_model7 folder."
            )
    out = {name: log.filter(pl.col("_file").is_in(stems)) for name, stems in groups.items()}
    seen = set(out["train"]["prompt"].to_list())
    dropped = []
    for name in ("test_id", "test_ood"):
        frame = out[name]
        overlap = frame["prompt"].is_in(list(seen))
        # count questions, not rows (one row per model)
        hits = frame.filter(overlap).unique(["_file", "prompt_id"])["_file"].value_counts()
        n_of = dict(zip(hits["_file"].to_list(), hits["count"].to_list()))
        dropped += [(f, int(n_of.get(f, 0))) for f in sorted(groups[name])]
        out[name] = frame.filter(~overlap)
    if any(n for _, n in dropped):
        warnings.warn(
            "official split: dropped test questions whose prompt is also in train ("
            + ", ".join(f"{f}.json {n}" for f, n in dropped)
            + f"; {sum(n for _, n in dropped)} in all)",
            V0liteWarning,
            stacklevel=3,
        )
    result = {}
    for name, frame in out.items():
        if frame.height == 0:
            raise DataError(
                f"official split: {name} is empty after dropping the questions also in train. "
                "Fix: pass RouterDC's split2_model7 folder."
            )
        result[name] = frame.drop("_file").with_columns(pl.lit(name).alias("split"))
    return result
