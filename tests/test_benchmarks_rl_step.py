"""benchmarks/rl_step.py: --quick never writes; the loop runs; its "IVF trained per add" row really trains per add."""

import numpy as np

import benchmarks.rl_step as rl


def test_quick_implies_no_write_and_small_defaults():
    args = rl.parse_args(["--quick"])
    assert args.no_write and args.sizes == "50000" and args.heads == "knn"
    assert not rl.parse_args([]).no_write


def test_the_per_add_baseline_trains_at_every_step_and_v0lite_does_not(monkeypatch):
    """Threshold lowered so a 2,000-row history is searched through its IVF: v0lite extends the index (one
    k-means, at fit's first search), the baseline trains one per step; adopt is restored afterwards."""
    import faiss

    from v0lite import index as index_mod

    monkeypatch.setattr(index_mod, "APPROX_THRESHOLD", 500)
    trains = []
    train = faiss.IndexIVFScalarQuantizer.train
    monkeypatch.setattr(faiss.IndexIVFScalarQuantizer, "train", lambda self, x: (trains.append(len(x)), train(self, x)))
    served = []
    t = rl.v0lite_steps("knn", 2100, 64, warm=1, steps=3, served=served)
    assert served == ["knn"] and len(t) == 3 and all(s > 0 for s in t) and len(trains) == 1, trains
    adopt = index_mod._Block.adopt
    with rl._ivf_per_add():
        rl.v0lite_steps("knn", 2100, 64, warm=1, steps=3)
    assert len(trains) == 1 + 4 and index_mod._Block.adopt is adopt, trains


def test_brute_force_and_the_table():
    t = rl.brute_steps(3000, 64, warm=1, steps=2)
    assert len(t) == 2 and all(s > 0 for s in t)
    rows = [{"size": 3000, "head": "knn", "v0lite": 0.01, "per_add": 0.04, "brute": 0.02}]
    assert rl.markdown(rows).splitlines()[2] == "| 3,000 | knn | 10.0 | 40.0 | 20.0 | 2.00x |"
    rows[0].update(head="auto", served="gbdt")
    assert rl.markdown(rows).splitlines()[2].startswith("| 3,000 | auto (gbdt) | 10.0 |")
    assert np.isfinite(rl.brute_steps(3000, 64, warm=0, steps=1)).all()
