"""The warnings a valid outcome log may still deserve: columns, prompts, policy names or steps that are
probably not what their writer meant (each a ``V0liteWarning`` with an example and the fix; the log is
accepted, since each may be meant). Kept apart from :mod:`v0lite.log`, whose checks refuse."""

from __future__ import annotations

import shlex
import warnings

import polars as pl

from .exceptions import V0liteWarning

__all__ = [
    "near_names",
    "prompt_key",
    "unknown_policy_error",
    "warn_fallback_names",
    "warn_history",
    "warn_near_misses",
    "warn_new_names",
]


def warn_history(policies: pl.Series, prompts: pl.Series, steps: pl.Series | None) -> None:
    """A history's warnings: prompt twins, padded policy names and single-row steps."""
    _warn_prompt_twins(prompts)
    _warn_padded_policies(policies)
    if steps is not None:
        _warn_single_row_steps(policies, steps)


def warn_near_misses(columns: list[str], optional=(), required=()) -> None:
    """A column that differs from an optional column's name only by case or spaces (``Task``, `` cost``) is not
    read as it: say so, with the rename (a warning, not an error: a log may hold both on purpose)."""
    names = set(columns)
    for c in columns:
        name = str(c).strip().lower()
        if c in optional or c in required or name not in optional:
            continue
        both = f" (the log has {name!r} too; that one is read)" if name in names else ""
        flag = "--" + name.replace("_", "-")
        warnings.warn(
            f"column {c!r} differs from the optional column {name!r} only by case or spaces, so it is not read "
            f"as {name!r}{both}. Fix: rename {c!r} to {name!r} if it holds the {name} values "
            f"(`v0lite data map ... {flag} {shlex.quote(str(c))}` renames it).",
            V0liteWarning,
            stacklevel=3,
        )


def prompt_key(prompts: pl.Series) -> pl.Series:
    """Each prompt's near-duplicate key: NFKC-normalised, lower case, each run of spaces one space, stripped
    (two prompts with one key are twins: the twin warning below, and ``data split`` keeps them on one side)."""
    return prompts.str.normalize("NFKC").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars()


def _warn_prompt_twins(prompts: pl.Series) -> None:
    """Prompts that differ only by case, spaces or Unicode normalisation (``'x'``, ``'x '``, NFC vs NFD) are
    different prompts to v0lite (the exact text is the identity: the cache key, the CV folds, the hiding of a
    query's own prompt), while the uncased default encoder gives them one vector, so a CV fold can see the
    other twin's outcomes. Say so, with two examples and the fix (a warning: they may be different on purpose)."""
    u = prompts.unique()
    if len(u) < 2:
        return
    norm = prompt_key(u)
    twins = pl.DataFrame({"raw": u, "norm": norm}).filter(pl.col("norm").is_duplicated()).sort("norm", "raw")
    if twins.is_empty():
        return
    first = twins.filter(pl.col("norm") == twins["norm"][0])["raw"].to_list()[:2]
    groups = twins["norm"].n_unique()
    warnings.warn(
        f"{len(twins)} distinct prompts differ from another only by case, spaces or Unicode normalisation "
        f"({groups} group{'s' if groups != 1 else ''}; e.g. {first[0][:60]!r} and {first[1][:60]!r}): v0lite reads "
        "them as different prompts (CV folds, hiding a query's own prompt), though the encoder may give them one "
        "vector, so cross-validated scores can be optimistic. Fix: if they are the same question, write them "
        "the same way (e.g. strip spaces and NFC-normalise the prompts) before logging.",
        V0liteWarning,
        stacklevel=4,
    )


def _warn_padded_policies(policies: pl.Series) -> None:
    """Policy names with leading or trailing spaces are policies of their own (``'pol0 '`` is not ``'pol0'``):
    say so, with the count, an example and the fix (a warning: a name may be padded on purpose)."""
    u = policies.unique()
    padded = u.filter(u != u.str.strip_chars()).sort()
    if padded.is_empty():
        return
    ex = padded[0]
    twin = f", and {ex.strip()!r} is in the log too" if ex.strip() in set(u.to_list()) else ""
    warnings.warn(
        f"{len(padded)} policy names have leading or trailing spaces (e.g. {ex!r}{twin}): v0lite reads the exact "
        f"text, so {ex!r} is another policy than {ex.strip()!r}. Fix: strip the names before logging "
        "(pl.col('policy').str.strip_chars()), unless they are different policies on purpose.",
        V0liteWarning,
        stacklevel=4,
    )


def _warn_single_row_steps(policies: pl.Series, steps: pl.Series, min_rows: int = 20) -> None:
    """Most (policy, step) groups holding one row: ``step`` is then likely a timestamp or a row counter.
    kNN and the learned features read each outcome against its own step's mean (the checkpoint's level),
    which for a single row is the outcome itself, so such rows say nothing about their prompts. Say so
    (a warning: a batch of one prompt per step may be meant)."""
    if len(steps) < min_rows:
        return
    sizes = pl.DataFrame({"policy": policies, "step": steps}).group_by("policy", "step").len()
    single = sizes.filter(pl.col("len") == 1)
    if single.height * 2 < sizes.height:
        return
    ex = single.sort("policy", "step").row(0)
    warnings.warn(
        f"{single.height} of {sizes.height} (policy, step) groups hold a single row (e.g. policy {ex[0]!r} at "
        f"step {ex[1]}): v0lite reads each outcome against its step's mean (the checkpoint's level), which for "
        "one row is the outcome itself, so those rows say nothing about their prompts. 'step' is the training "
        "checkpoint or visit index, shared by the many prompts it saw, not a timestamp or a row counter. Fix: "
        "put the checkpoint in 'step', or drop the column if the policy did not change.",
        V0liteWarning,
        stacklevel=4,
    )


def near_names(unknown, known) -> dict:
    """Unknown policy names equal to a known one after NFKC, case folding and stripping: ``{name: known}``."""
    import unicodedata

    def norm(x):
        return unicodedata.normalize("NFKC", str(x)).casefold().strip()

    table = {norm(k): k for k in known}
    return {u: table[norm(u)] for u in unknown if norm(u) in table and table[norm(u)] != u}


def meant_name(name: str, known) -> str | None:
    """The known name ``name`` was probably meant to be: the same but for case, spaces or width
    (:func:`near_names`), else one spelled alike (a letter swapped or dropped); None when none is. Names that
    differ only in digits are other versions (``gpt-4-0613``, ``gpt-4-1106``), not a typo."""
    import difflib
    import re

    near = near_names([name], known).get(name)
    if near:
        return near
    close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
    if not close or re.sub(r"\d+", "#", close[0]) == re.sub(r"\d+", "#", name):
        return None
    return close[0]


def unknown_policy_error(policies: pl.Series, unknown_mask, known, fix: str, *, where: str = ""):
    """The error for query policies with no history (``fallback="error"``): the first such row of the caller's
    frame, how many names are unknown (five shown), the known name meant when one differs only by case,
    spaces or Unicode width, then ``fix``.

    Parameters
    ----------
    policies : polars.Series
        The query rows' policy names, in the caller's row order.
    unknown_mask : array-like of bool
        Which rows name a policy with no history (at least one).
    known : iterable of str
        The policies with history.
    fix : str
        What to do, in the caller's terms (after ``"Fix: "``).
    where : str, optional
        Where the history is, e.g. ``" in the model at DIR"`` (after ``"has no history"``).

    Returns
    -------
    UnknownPolicyError
        For the caller to raise.
    """
    import numpy as np

    from .exceptions import UnknownPolicyError

    mask = pl.Series(np.asarray(unknown_mask, dtype=bool))
    r = int(np.flatnonzero(mask.to_numpy())[0])
    names = sorted(set(policies.filter(mask).to_list()))
    near = near_names(names, known)
    mean = f" Did you mean {near[policies[r]]!r}?" if policies[r] in near else ""
    return UnknownPolicyError(
        f"column 'policy', row {r}: policy {policies[r]!r} has no history{where} ({len(names)} unknown "
        f"{'policy' if len(names) == 1 else 'policies'}: {names[:5]}).{mean} Fix: {fix}"
    )


def warn_fallback_names(near: dict) -> None:
    """Query policies that get the fallback (no history) though each is a known name written another way."""
    a, b = sorted(near.items())[0]
    warnings.warn(
        f"{len(near)} query policies have no history but differ from a known one only by case, spaces or Unicode "
        f"width (e.g. {a!r} and {b!r}); they get the fallback. Fix: write the name as the history does.",
        V0liteWarning,
        stacklevel=3,
    )


def warn_new_names(names, known, stacklevel: int = 3) -> None:
    """Policies of ``names`` that are not in ``known`` but equal a known one written another way (case, spaces,
    Unicode width): they are read as new policies (``suggest_prompts`` estimates the average policy, ``add_history``
    starts a new one, a router pool gains a column), so say so, with the name meant (a warning: it may be meant)."""
    near = near_names([u for u in dict.fromkeys(names) if u not in known], known)
    if not near:
        return
    (a, b), rest = sorted(near.items())[0], sorted(near)[1:]
    more = f" ({len(rest)} more names like it: {rest[:5]})" if rest else ""
    warnings.warn(
        f"{a!r} differs from the known {b!r} only by case, spaces or Unicode width: it is read as a new policy"
        f"{more}. Fix: write the name as the history does.",
        V0liteWarning,
        stacklevel=stacklevel,
    )
