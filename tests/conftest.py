"""Shared fixtures: a fast deterministic fake encoder, small logs, and the guarantee counters.

The fake encoder stands in for MiniLM in almost every test: hashed character 3-gram counts in
64 dimensions (similar texts get similar vectors), no model download, no torch.

Tests that prove a guarantee bump a counter (``guarantees.tick("bad-input cases tried")``); the
``pytest_terminal_summary`` hook below prints the totals at the end of the run, e.g.
``v0lite guarantees: 61 bad-input cases tried, 7 faults injected, ...``.
"""

from __future__ import annotations

import collections
import os
import sys
import zlib

import numpy as np
import polars as pl
import pytest

# tests/ is a package (verl ships a top-level "tests" too); keep "from conftest import" working
if os.path.dirname(os.path.abspath(__file__)) not in sys.path:
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# tests never reach the Hugging Face hub: a test that needs it unreachable or answering patches its client
os.environ.setdefault("HF_HUB_OFFLINE", "1")

FAKE_DIM = 64
FAKE_WINDOW = 512  # characters; like a real encoder's token window, longer text is truncated


class FakeEncoder:
    """``encode(list[str]) -> (n, 64) float32``: signed hashed character 3-grams, deterministic.

    ``fail_after``: raise ``RuntimeError`` on the call after that many successful calls (fault
    injection). ``calls``/``texts_seen`` count the work done.
    """

    model_id = "fake-ngram-64"

    def __init__(self, dim: int = FAKE_DIM, fail_after: int | None = None):
        self.dim = dim
        self.fail_after = fail_after
        self.calls = 0
        self.texts_seen = 0

    def encode(self, texts):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise RuntimeError(f"injected encoder fault after {self.calls} calls")
        self.calls += 1
        self.texts_seen += len(texts)
        out = np.zeros((len(texts), self.dim), np.float32)
        for i, t in enumerate(texts):
            s = f"  {t[:FAKE_WINDOW].lower()}  "
            for j in range(len(s) - 2):
                h = zlib.crc32(s[j : j + 3].encode("utf-8", "surrogatepass"))
                out[i, h % self.dim] += 1.0 if (h >> 20) & 1 else -1.0
            out[i, 0] += 0.5  # never the zero vector
        return out


class Guarantees:
    """Named counters of guarantee checks, printed at the end of the run."""

    ORDER = (
        "bad-input cases tried",
        "property examples run",
        "faults injected",
        "corruptions detected",
        "files checked byte-identical",
        "concurrent cache writers",
    )

    def __init__(self):
        self.counts = collections.Counter()

    def tick(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def summary(self) -> str:
        names = [n for n in self.ORDER if self.counts[n]] + sorted(set(self.counts) - set(self.ORDER))
        return "v0lite guarantees: " + ", ".join(f"{self.counts[n]} {n}" for n in names)


GUARANTEES = Guarantees()


@pytest.fixture(scope="session")
def guarantees() -> Guarantees:
    """The run's guarantee counters (session-wide, so hypothesis tests may use it)."""
    return GUARANTEES


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if GUARANTEES.counts:
        terminalreporter.write_sep("-", "v0lite guarantees")
        terminalreporter.write_line(GUARANTEES.summary())


@pytest.fixture(autouse=True)
def _private_cache(request, monkeypatch, tmp_path_factory):
    """Default tests never write to the user's embedding cache: a loaded model uses ``$V0LITE_CACHE``
    (model folders do not carry a cache_dir), so it points at a session folder. Slow and GPU tests keep
    the real cache (real encoders, real data: their vectors are worth keeping)."""
    if request.node.get_closest_marker("slow") or request.node.get_closest_marker("gpu"):
        return
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path_factory.getbasetemp() / "v0lite-cache"))


@pytest.fixture
def fake_encoder() -> FakeEncoder:
    """A fresh :class:`FakeEncoder` (fast, deterministic, 64-d)."""
    return FakeEncoder()


def make_log(n_policies: int = 3, n_prompts: int = 12, *, steps: bool = False, seed: int = 0) -> pl.DataFrame:
    """A small synthetic outcome log: every policy on every prompt, scores in {0, .25, .., 1}."""
    rng = np.random.default_rng(seed)
    topics = ["add the numbers", "prove the lemma", "sort the list", "translate the text"]
    prompts = [f"{topics[i % len(topics)]} case {i}" for i in range(n_prompts)]
    skill = np.linspace(0.2, 0.8, n_policies)
    hard = rng.uniform(-0.3, 0.3, n_prompts)
    rows = {"policy": [], "prompt": [], "score": []}
    if steps:
        rows["step"] = []
    for p in range(n_policies):
        for j, prompt in enumerate(prompts):
            rows["policy"].append(f"pol{p}")
            rows["prompt"].append(prompt)
            rows["score"].append(float(np.round(np.clip(skill[p] - hard[j] + rng.normal(0, 0.1), 0, 1) * 4) / 4))
            if steps:
                rows["step"].append(int(j % 3))
    return pl.DataFrame(rows)


TOPICS = ["add the numbers", "prove the lemma", "sort the list", "translate the text"]
SKILL = {"a": [0.9, 0.9, 0.1, 0.1], "b": [0.1, 0.1, 0.9, 0.9], "c": [0.5, 0.5, 0.5, 0.5], "d": [0.8, 0.2, 0.8, 0.2]}


def topic_log(n_prompts=120, policies=("a", "b", "c"), seed=0) -> pl.DataFrame:
    """A routing-style log (every policy on every prompt) where each policy is strong on some topics
    and weak on others: an effect no model shared by all policies can capture."""
    rng = np.random.default_rng(seed)
    rows = {"policy": [], "prompt": [], "score": []}
    for pol in policies:
        for i in range(n_prompts):
            rows["policy"].append(pol)
            rows["prompt"].append(f"{TOPICS[i % 4]} case {i}")
            rows["score"].append(rng.binomial(10, SKILL[pol][i % 4]) / 10)
    return pl.DataFrame(rows)


EASE = [1.5, -1.5, 0.5, -0.5]  # per topic, shared by every policy of difficulty_log


def difficulty_log(n_prompts=200, policies=("a", "b", "c", "d"), seed=0) -> pl.DataFrame:
    """A routing-style log where prompts are hard or easy for every policy (IRT-like: ability + topic
    ease + a small specialist effect), the opposite of :func:`topic_log`'s zero-sum specialists."""
    rng = np.random.default_rng(seed)
    rows = {"policy": [], "prompt": [], "score": []}
    for k, pol in enumerate(policies):
        ability = -0.6 + 1.2 * k / max(len(policies) - 1, 1)
        special = rng.normal(0, 0.3, 4)
        for i in range(n_prompts):
            t = i % 4
            p = 1 / (1 + np.exp(-(ability + EASE[t] + special[t])))
            rows["policy"].append(pol)
            rows["prompt"].append(f"{TOPICS[t]} case {i}")
            rows["score"].append(rng.binomial(10, p) / 10)
    return pl.DataFrame(rows)


def split(log: pl.DataFrame, every: int = 4):
    """(history, queries): every ``every``-th prompt (sorted) is held out."""
    prompts = sorted(log["prompt"].unique().to_list())
    test = set(prompts[::every])
    return log.filter(~pl.col("prompt").is_in(test)), log.filter(pl.col("prompt").is_in(test))


def brier(model, df: pl.DataFrame) -> float:
    return float(np.mean((model.predict(df) - df["score"].to_numpy()) ** 2))


@pytest.fixture
def small_log() -> pl.DataFrame:
    """3 policies x 12 prompts, no step column."""
    return make_log()


@pytest.fixture
def files(tmp_path):
    """``(tmp_path, hist, queries)``: :func:`make_log` with steps split into a history log (prompts "case 0"
    to "case 8", JSONL) and a query log (the rest, CSV), for the CLI tests (tests/test_cli*.py)."""
    from v0lite.log import write_log

    log = make_log(steps=True)
    hist = write_log(log.filter(pl.col("prompt").str.contains("case [0-8]$")), tmp_path / "hist.jsonl")
    queries = write_log(log.filter(~pl.col("prompt").str.contains("case [0-8]$")), tmp_path / "queries.csv")
    return tmp_path, hist, queries


@pytest.fixture
def make_model(fake_encoder):
    """Factory of ``V0Regressor`` with the fake encoder and no disk cache (override any param)."""
    from v0lite.estimator import V0Regressor

    def _make(**kw):
        kw.setdefault("encoder", fake_encoder)
        kw.setdefault("cache_dir", False)
        kw.setdefault("head", "knn")
        return V0Regressor(**kw)

    return _make


@pytest.fixture
def fake_minilm(monkeypatch, tmp_path):
    """Make the default encoder (what the CLI loads) the fake one, with the cache under tmp_path.

    The cache is redirected so fake vectors never land in the user's real MiniLM cache.
    """
    import v0lite.embed as embed

    enc = FakeEncoder()
    monkeypatch.setenv("V0LITE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(embed, "_load_sentence_transformer", lambda path, device, **progress: enc)
    return enc


def thin_delta_log(v, steps=False):
    """Three policies on 30 prompts plus a policy 'delta' with three rows, the first (prompt 0) scored ``v``;
    returns the log and its prompts in order (the step-rule tests of the heads that solve a thin policy)."""
    log = make_log(n_policies=3, n_prompts=30, steps=steps)
    p = log["prompt"].unique(maintain_order=True).to_list()
    extra = {"policy": ["delta"] * 3, "prompt": p[:3], "score": [v, 1.0, 0.0]}
    if steps:
        extra["step"] = [1, 1, 2]
    return pl.concat([log, pl.DataFrame(extra)], how="diagonal_relaxed"), p


@pytest.fixture
def stand_in_sentence_transformer(monkeypatch):
    """A ``sentence_transformers.SentenceTransformer`` stand-in (the attributes v0lite reads: its first
    module's ``auto_model.config._name_or_path``, ``truncate_dim``, the default prompt), installed in
    ``sys.modules``; returns the class. It encodes with :class:`FakeEncoder`."""
    import sys
    import types

    class SentenceTransformer:
        def __init__(self, name, truncate_dim=None, prompt=None):
            module = types.SimpleNamespace(auto_model=types.SimpleNamespace(config=types.SimpleNamespace()))
            module.auto_model.config._name_or_path = name
            self.modules, self.truncate_dim = [module], truncate_dim
            self.prompts, self.default_prompt_name = {"q": prompt or ""}, "q" if prompt else None

        def __len__(self):
            return 1

        def __getitem__(self, i):
            return self.modules[i]

        def encode(self, texts, **_):
            return FakeEncoder().encode(texts)

    monkeypatch.setitem(
        sys.modules, "sentence_transformers", types.SimpleNamespace(SentenceTransformer=SentenceTransformer)
    )
    return SentenceTransformer
