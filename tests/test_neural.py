"""The neural (GPU-path) head on CPU, with a tiny randomly initialised encoder (no download)."""

import json

import numpy as np
import pytest
import torch  # [dev] installs them (trl, verl): a missing one fails, never skips
import transformers  # noqa: F401

from v0lite.embed import prompt_key
from v0lite.exceptions import NotFittedError, V0liteError
from v0lite.heads import get_head_class, make_head
from v0lite.heads._neural_nets import _recent_rows, _v0_loss
from v0lite.heads.neural import ICLHead, NeuralHead, QueryAdapter
from v0lite.index import HistoryIndex, Queries

TINY = dict(model_type="bert", hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
FAST = dict(
    encoder_config=TINY,
    max_length=24,
    n_queries=24,
    d_query=4,
    adapter_heads=4,
    offset_rank=16,
    icl_dim=32,
    icl_layers=1,
    icl_heads=2,
    icl_ff=64,
    support_size=24,
    episode_queries=8,
    episodes_per_step=3,
    max_steps=6,
    device="cpu",
)
TOPICS = ("add", "multiply", "integrate", "prove", "count")


def _world(seed=0, n_pol=3, n_prompt=40, n_new=8):
    """3 policies x 40 prompts x 2 steps of history (with texts) and queries on 8 new prompts."""
    rng = np.random.default_rng(seed)
    texts = [f"Please {TOPICS[i % 5]} the numbers {i} and {i * 7 % 13} carefully." for i in range(n_prompt + n_new)]
    diff = np.array([(i % 5) / 4 for i in range(len(texts))])
    emb = rng.normal(size=(len(texts), 16)).astype(np.float32)
    emb[:, 0] += 3 * diff
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    keys = [prompt_key(t) for t in texts]
    pol, prow, score, step = [], [], [], []
    for p in range(n_pol):
        for i in range(n_prompt):
            for st in (0, 1):
                pol.append(p)
                prow.append(i)
                step.append(st)
                score.append(float(np.clip(0.9 - diff[i] * (0.5 + 0.2 * p) + 0.1 * st + rng.normal(0, 0.05), 0, 1)))
    index = HistoryIndex(emb[:n_prompt], keys[:n_prompt], [f"p{i}" for i in range(n_pol)], pol, prow, score, step)
    index.texts = texts[:n_prompt]
    qq = np.concatenate([np.tile(np.arange(n_prompt, n_prompt + n_new), n_pol), [0, 1, 2]])  # new + 3 known
    qp = np.concatenate([np.repeat(np.arange(n_pol), n_new), [0, 1, 2]]).astype(np.int32)
    prow_q = np.where(qq < n_prompt, qq, -1).astype(np.int64)
    queries = Queries(qp, np.ones(len(qp), np.int64), emb[qq], prow_q)
    queries.texts = [texts[i] for i in qq]
    return index, queries


@pytest.fixture(scope="module")
def world():
    return _world()


@pytest.fixture(scope="module")
def fitted(world):
    index, queries = world
    head = make_head("neural", **FAST).fit(index, random_state=0)
    return head, head.predict(index, queries)


def test_registry_and_text_flag():
    assert get_head_class("neural") is NeuralHead
    assert NeuralHead.needs_text is True
    assert NeuralHead().params["n_queries"] == 168 and NeuralHead().params["d_query"] == 6


def test_fit_predict_shape_and_range(world, fitted):
    index, queries = world
    head, p = fitted
    assert p.shape == (len(queries),)
    assert np.isfinite(p).all() and (p >= 0).all() and (p <= 1).all()
    assert head.stats_["train_steps"] == FAST["max_steps"]
    # every history prompt was encoded once; predicting encoded only the new query prompts
    assert head.stats_["encoded_prompts"] == len(index.keys) + 8
    assert len(head._feat_keys) == len(index.keys) + 8
    assert head._tokens is not None and len(head._tokens) == 8  # token states of predict-time prompts only
    assert NeuralHead.predict(head, index, queries).tolist() == p.tolist()  # cached features: no re-encode
    assert head.stats_["encoded_prompts"] == len(index.keys) + 8


def test_same_seed_same_predictions(world, fitted):
    index, queries = world
    _, p = fitted
    p2 = make_head("neural", **FAST).fit(index, random_state=0).predict(index, queries)
    np.testing.assert_array_equal(p, p2)


def test_save_load_round_trip(world, fitted, tmp_path):
    index, queries = world
    head, p = fitted
    meta = head.save(tmp_path)
    meta = json.loads(json.dumps(meta))  # JSON-able
    assert (tmp_path / "neural.safetensors").exists() and (tmp_path / "encoder.safetensors").exists()
    loaded = NeuralHead.load(tmp_path, meta)
    assert loaded.encoder_ is None  # known prompts are served from saved features
    np.testing.assert_array_equal(loaded.predict(index, queries), p)
    # a prompt the head never saw: the saved random encoder is rebuilt and gives the same answer
    new_q = Queries(np.array([0], np.int32), np.array([1]), queries.emb[:1], np.array([-1]))
    new_q.texts = ["Please add the numbers 1000 and 7 carefully."]
    np.testing.assert_array_equal(loaded.predict(index, new_q), head.predict(index, new_q))
    # a file the meta does not list is never read (it is not checksummed): no encoder path from it
    unlisted = dict(meta, files=[f for f in meta["files"] if f != "encoder.safetensors"])
    assert NeuralHead.load(tmp_path, unlisted)._encoder_path is None
    assert NeuralHead.load(tmp_path, meta)._encoder_path == tmp_path / "encoder.safetensors"


def test_texts_are_required(world):
    index, queries = world
    bare = HistoryIndex(index.emb, index.keys, index.policies, index.policy, index.prompt_row, index.score, index.step)
    with pytest.raises(V0liteError, match="texts"):
        make_head("neural", **FAST).fit(bare)
    with pytest.raises(NotFittedError):
        make_head("neural", **FAST).predict(index, queries)


def test_query_without_text_is_an_error(world, fitted):
    index, queries = world
    head, _ = fitted
    q = queries.subset(np.arange(len(queries)))
    assert q.texts == queries.texts  # a declared field: subset keeps it
    q.texts = None  # a query batch without texts
    q.prompt_row = q.prompt_row.copy()
    q.prompt_row[:] = -1
    with pytest.raises(V0liteError, match="queries.texts"):
        head.predict(index, q)


def test_recent_support_respects_step_rule(world):
    index, _ = world
    rows = _recent_rows(index, 0, np.array([0, 1]), np.array([3, 3]), 10, "same_step")
    assert (index.step[rows[0][rows[0] >= 0]] == 0).all()  # step 0 query: only step-0 rows
    assert len(rows[0][rows[0] >= 0]) == 10
    r1 = rows[1][rows[1] >= 0]
    assert not ((index.prompt_row[r1] == 3) & (index.step[r1] == 1)).any()  # never its own row
    assert (index.policy[r1] == 0).all()
    none = _recent_rows(index, 0, np.array([-1]), np.array([3]), 10, "same_step")
    assert (none == -1).all()


def test_recent_support_head(world):
    index, queries = world
    p = make_head("neural", **{**FAST, "support": "recent", "max_steps": 2}).fit(index).predict(index, queries)
    assert np.isfinite(p).all() and p.shape == (len(queries),)


def test_unknown_policy_gives_nan(world, fitted):
    index, queries = world
    head, _ = fitted
    q = Queries(np.array([-1], np.int32), np.array([1]), queries.emb[:1], np.array([0]))
    assert np.isnan(head.predict(index, q)).all()


def test_adapter_starts_at_static_queries_and_loss():
    torch.manual_seed(0)
    ad = QueryAdapter(8, n_queries=6, d_query=2, n_heads=3, d_key=4, offset_rank=5)
    x = torch.randn(2, 7, 8)
    m = torch.ones(2, 7, dtype=torch.bool)
    m[1, 3:] = False
    out = ad(x, m)
    assert out.shape == (2, 12)
    # masked tokens do not matter
    x2 = x.clone()
    x2[1, 3:] = 100.0
    torch.testing.assert_close(ad(x2, m)[1], out[1])
    icl = ICLHead(12, d_model=8, n_layers=1, n_heads=2, d_ff=16, dropout=0.0).eval()
    e = icl.embed(out)
    logits = icl(
        e[None, :1].expand(3, 1, 8),
        torch.ones(3, 1),
        torch.tensor([[True], [True], [False]]),
        e[None, 1:].expand(3, 1, 8),
    )
    assert logits.shape == (3, 1) and torch.isfinite(logits).all()
    assert logits[0] == logits[1]
    # loss: a perfect ranking has a lower ranking term than the reverse
    y = torch.tensor([[1.0, 0.5, 0.0]])
    qm = torch.ones(1, 3, dtype=torch.bool)
    good = _v0_loss(torch.tensor([[3.0, 0.0, -3.0]]), y, qm, rank_weight=1.0)
    bad = _v0_loss(torch.tensor([[-3.0, 0.0, 3.0]]), y, qm, rank_weight=1.0)
    assert good < bad
    with pytest.raises(V0liteError):
        NeuralHead(icl="nope")


def test_step_hook_and_live_predictions_leave_the_frozen_cache_alone(world):
    index, queries = world
    seen = []

    def hook(head, step):
        p = head.predict_live(index, queries)
        assert head.adapter_.training and np.isfinite(p).all()
        seen.append(step)

    head = make_head("neural", **{**FAST, "max_steps": 2})
    head.step_hook = hook
    head.fit(index, random_state=1)
    assert seen == [1, 2]
    assert len(head._feat_keys) == len(index.keys)  # live predictions froze nothing
    assert np.isfinite(head.predict(index, queries)).all()


@pytest.mark.slow
def test_gpu_check_quick_runs_on_cpu(tmp_path):
    """benchmarks/gpu_check.py --quick end to end (needs .gpu_bundle from make_gpu_bundle.py)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    if not (root / ".gpu_bundle" / "data" / "context.jsonl").exists():
        pytest.skip("no .gpu_bundle (run benchmarks/make_gpu_bundle.py)")
    r = subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "gpu_check.py"),
            "--quick",
            "--device",
            "cpu",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    assert set(rep["heads"]) == {"prior", "knn", "baseline", "neural"}
    assert 0 <= rep["heads"]["neural"]["auc"] <= 1


def test_cpu_defaults_are_smaller_and_time_capped():
    cpu, gpu = NeuralHead(device="cpu"), NeuralHead(device="cuda")
    assert cpu.support_size_ == 64 and cpu._time_budget() == 240.0
    assert gpu.support_size_ == 256 and gpu._time_budget() is None
    assert NeuralHead(device="cpu", support_size=32, max_time_s=5).support_size_ == 32
    assert NeuralHead(device="cpu", max_time_s=5)._time_budget() == 5.0


def test_compare_episodes_ask_several_policies_about_one_prompt(world):
    from v0lite.heads._neural_train import _EpisodeSampler

    index, _ = world
    sampler = _EpisodeSampler(index, np.random.default_rng(0), 8, compare_frac=1.0)
    for _ in range(5):
        q = sampler.draw()
        assert len(q) <= 8
        prompts, counts = np.unique(index.prompt_row[q], return_counts=True)
        assert len(np.unique(index.policy[q])) >= 2 and counts.max() >= 2
    own = _EpisodeSampler(index, np.random.default_rng(0), 8, compare_frac=0.0).draw()
    assert len(np.unique(index.policy[own])) == 1 and len(np.unique(index.step[own])) == 1


def test_early_stopping_on_held_out_prompts_keeps_the_best_weights():
    index, queries = _world(n_prompt=120)
    params = {**FAST, "max_steps": 40, "val_frac": 0.2, "eval_every": 2, "patience": 2}
    head = make_head("neural", **params).fit(index, random_state=0)
    st = head.stats_
    assert st["val_prompts"] == 24
    assert st["val_curve"] and st["best_val_loss"] == pytest.approx(min(v for _, v in st["val_curve"]))
    assert st["stopped_by"] in ("early stopping", "planned steps")
    if st["stopped_by"] == "early stopping":
        assert st["train_steps"] < 40
    p = head.predict(index, queries)
    assert np.isfinite(p).all()


def test_auto_device_without_cuda_refuses_with_the_gpu_path(world):
    from v0lite.exceptions import ParameterError

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible: 'auto' picks it")
    index, _ = world
    with pytest.raises(ParameterError, match="GPU.*head_params=\\{'device': 'cpu'\\}"):
        make_head("neural", **{**FAST, "device": "auto"}).fit(index)
    # the CLI shows the fix in its own terms: the head as a flag, the Python-only override named as such
    from v0lite.commands._common import cli_text

    with pytest.raises(ParameterError) as err:
        make_head("neural", **{**FAST, "device": "auto"}).fit(index)
    text = cli_text(str(err.value))
    assert "--head auto" in text and "from Python" in text and "V0Regressor(--head" not in text
