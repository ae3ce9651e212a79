"""The logs of benchmarks/peers.py: routerdc-7model (official split), routerbench, the V0 sample.

``python benchmarks/_peers_data.py`` loads every log and embeds its prompts once (MiniLM, the
shared cache), so the benchmark itself reads cached vectors.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from v0lite.data import convert_routerbench, convert_routerdc, convert_v0  # noqa: E402

OOD_TASKS = ("MATH_prealgebra", "mbpp", "ceval", "javascript")


def data_root() -> Path:
    return Path(os.environ.get("V0LITE_DATA", HERE.parent.parent / "shared" / "data"))


def routerdc_official(root: Path | None = None) -> dict[str, pl.DataFrame]:
    """RouterDC's official split: train = ``*_train`` files, test_id = ``*_test``, test_ood = the 4 OOD tasks.

    Test questions whose text is also in train are dropped; a question repeated inside a test
    set keeps its first copy (one row per model and prompt).
    """
    root = root or data_root()
    df = convert_routerdc(root / "routerdc-7model")
    train = df.filter(pl.col("split") == "train").unique(["policy", "prompt"], keep="first", maintain_order=True)
    seen = set(train["prompt"].to_list())
    out = {"train": train}
    for name, sel in (("test_id", pl.col("split") == "test"), ("test_ood", pl.col("task").is_in(list(OOD_TASKS)))):
        t = df.filter(sel & ~pl.col("prompt").is_in(list(seen)))
        out[name] = t.unique(["policy", "prompt"], keep="first", maintain_order=True)
    return out


def routerbench_with_notes(root: Path | None = None) -> tuple[dict[str, pl.DataFrame], list[str]]:
    """RouterBench's train and test logs, and the converter's warnings as text.

    The converter warns about what it leaves out (blank outcome cells, skipped cell by cell);
    they are returned, not hidden, so that a benchmark can print them and put them in its notes.
    """
    import warnings

    root = root or data_root()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = convert_routerbench(root / "routerdc-routerbench")
    return out, [str(w.message) for w in caught]


def routerbench(root: Path | None = None) -> dict[str, pl.DataFrame]:
    """RouterBench's train and test logs; the converter's warnings are printed (see routerbench_with_notes)."""
    out, notes = routerbench_with_notes(root)
    for note in notes:
        print(f"routerbench: {note}", flush=True)
    return out


def v0_sample(root: Path | None = None) -> dict[str, pl.DataFrame]:
    root = root or data_root()
    return {
        "train": convert_v0(root / "v0-dapomath" / "context.jsonl"),
        "test": convert_v0(root / "v0-dapomath" / "train.jsonl"),
    }


def all_logs() -> dict[str, dict[str, pl.DataFrame]]:
    return {"routerdc": routerdc_official(), "routerbench": routerbench(), "v0": v0_sample()}


def embed_all(logs) -> int:
    """Embed every distinct prompt of every log into the shared cache; returns the count."""
    from v0lite.embed import Embedder, prompt_keys

    texts = sorted({t for parts in logs.values() for df in parts.values() for t in df["prompt"].unique().to_list()})
    Embedder(show_progress_bar=True).encode(texts, prompt_keys(texts))
    return len(texts)


if __name__ == "__main__":
    logs = all_logs()
    for name, parts in logs.items():
        print(name, {k: (v.height, v["prompt"].n_unique()) for k, v in parts.items()}, flush=True)
    print("embedded", embed_all(logs), flush=True)
