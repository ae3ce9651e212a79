"""benchmarks/gpu_check.py --write-results: the gpu section of RESULTS.md rendered from a gpu_check.json."""

import json

from benchmarks.gpu_check import GPU_MARKER, main


def _report(quick=False) -> dict:
    head = {"auc": 0.7, "within_policy_auc": 0.55, "gauc": 0.6, "brier": 0.08, "fit_s": 1.0, "predict_s": 0.1}
    return {
        "env": {
            "python": "3.12.0",
            "torch": "2.0",
            "device": "cuda",
            "gpu": "Fake GPU",
            "cpu_threads": 4,
            "modules": {"torch": "2.0", "faiss": None, "lightgbm": "4.0"},
            "missing": ["faiss"],
            "quick": quick,
        },
        "baseline_note": None,
        "curve": [{"step": 200, "auc": 0.61, "within_policy_auc": 0.52, "brier": 0.15}],
        "heads": {
            "prior": {"head": "prior", **head, "predict_rows_per_s": 1000.0},
            "knn": {"head": "knn", "error": "boom"},
            "baseline": {"head": "ensemble", **head, "predict_rows_per_s": 700.0},
            "neural": {
                "head": "neural",
                **head,
                "predict_rows_per_s": 1222.0,
                "stats": {"train_steps": 1200, "encoded_prompts": 10, "encode_s": 1.0, "final_loss": 0.24},
                "peak_gpu_mib": 512.0,
            },
        },
        "command": "python benchmarks/gpu_check.py --bundle .gpu_bundle",
        "data": {"history_rows": 3072, "history_prompts": 100, "policies": 2, "queries": 192},
        "total_s": 99.0,
    }


def test_write_results_renders_the_gpu_section(tmp_path):
    src, results = tmp_path / "gpu_check.json", tmp_path / "RESULTS.md"
    src.write_text(json.dumps(_report()))
    results.write_text("# r\n\n<!-- other:start -->\n## Other\n\nkept\n<!-- other:end -->\n")
    assert main(["--write-results", str(src), "--results", str(results)]) == 0
    text = results.read_text()
    assert "<!-- other:start -->\n## Other\n\nkept\n<!-- other:end -->" in text
    block = text.split(f"<!-- {GPU_MARKER}:start -->")[1].split(f"<!-- {GPU_MARKER}:end -->")[0]
    assert "Command: `python benchmarks/gpu_check.py --bundle .gpu_bundle`" in block
    assert "| ensemble (CPU baseline) | 0.700 | 0.550 | 0.600 | 0.0800 | 1.0 | 700 |" in block
    assert "| neural (cuda, 1200 steps) | 0.700 |" in block
    assert "| knn | error: boom |" in block
    assert "history 3,072 rows" in block and "step 200 0.610 / 0.520 / 0.150" in block
    assert "faiss absent" in block and "peak GPU memory 512 MiB" in block
    # rendering again replaces the section: one block, not two
    assert main(["--write-results", str(src), "--results", str(results)]) == 0
    assert results.read_text().count(f"<!-- {GPU_MARKER}:start -->") == 1


def test_quick_or_unreadable_json_is_refused_and_leaves_results_alone(tmp_path, capsys):
    results = tmp_path / "RESULTS.md"
    results.write_text("untouched\n")
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps(_report(quick=True)))
    assert main(["--write-results", str(quick), "--results", str(results)]) == 2
    assert "--quick run" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["--write-results", str(bad), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert "--write-results" in err and "Fix:" in err
    assert main(["--write-results", str(tmp_path / "missing.json"), "--results", str(results)]) == 2
    assert results.read_text() == "untouched\n"
