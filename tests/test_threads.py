"""Thread safety (v0lite/_threads.py): concurrent writers lose no row, a reader racing a writer answers for
the state before or after it (never a mix, never a crash), and the auto head's thread cap is restored
whatever the interleaving. Each race is forced by events and barriers (bounded waits), not by timing."""

from __future__ import annotations

import copy
import threading

import numpy as np
import polars as pl
import pytest
from conftest import FakeEncoder, topic_log

from v0lite import V0Regressor
from v0lite.routing import Router

N_THREADS = 8
PRICES = {"a": 1.0, "b": 0.5, "c": 0.1}
WAIT = 10.0  # seconds: a bound on every wait, never reached when the code is right


def _meet(barrier) -> None:
    """The first ``N_THREADS`` callers wait for each other (at most 0.5 s): writers that are not serialised all
    read the state before any of them publishes; serialised ones break the barrier once and go on."""
    try:
        barrier.wait(timeout=0.5)
    except threading.BrokenBarrierError:
        pass


def _run_threads(target, n=N_THREADS):
    errors = []

    def run(t):
        try:
            target(t)
        except Exception as exc:  # noqa: BLE001 - reported below with the thread
            errors.append(f"thread {t}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=run, args=(t,)) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60)
    assert not any(th.is_alive() for th in threads) and not errors, errors
    return errors


def _rows(model) -> list[tuple]:
    """The history as a sorted list of (policy, prompt key, score): the rows, whatever their order."""
    idx = model.index_
    return sorted(zip([idx.policies[c] for c in idx.policy], [idx.keys[r] for r in idx.prompt_row], idx.score))


def _batch(t: int, j: int) -> pl.DataFrame:
    return pl.DataFrame(
        {"policy": [f"p{t}"] * 5, "prompt": [f"new prompt {t} {j} {i}" for i in range(5)], "score": [0.25] * 5}
    )


def test_concurrent_add_history_keeps_every_row(monkeypatch):
    from v0lite.index import HistoryIndex

    log = topic_log(n_prompts=20)
    model = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log)
    barrier, add = threading.Barrier(N_THREADS), HistoryIndex.add

    def meeting_add(index, *a, **k):  # each writer has read the index it grows: meet before publishing
        _meet(barrier)
        return add(index, *a, **k)

    monkeypatch.setattr(HistoryIndex, "add", meeting_add)
    _run_threads(lambda t: [model.add_history(_batch(t, j)) for j in range(3)])
    monkeypatch.undo()
    ref = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log)
    for t in reversed(range(N_THREADS)):  # any order: the rows, not their order, must match
        for j in range(3):
            ref.add_history(_batch(t, j))
    assert model.n_history_ == ref.n_history_ == log.height + N_THREADS * 3 * 5
    assert _rows(model) == _rows(ref)
    assert sorted(model.index_.policies) == sorted(ref.index_.policies)


class PairEncoder(FakeEncoder):
    """Once armed, each encode call waits (bounded) for a second one: two calls that run one after the other
    break the barrier, and the call that finds it broken records that it did not overlap."""

    def __init__(self):
        super().__init__()
        self.barrier, self.armed, self.alone = threading.Barrier(2), False, 0

    def encode(self, texts):
        if self.armed:
            try:
                self.barrier.wait(timeout=2.0)
            except threading.BrokenBarrierError:
                self.alone += 1
        return super().encode(texts)


def test_concurrent_add_history_embeds_outside_the_writer_lock():
    """Two writers with new prompts embed at the same time (the lock covers the merge only), and keep every row."""
    log = topic_log(n_prompts=20)
    enc = PairEncoder()
    model = V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(log)
    enc.armed = True
    _run_threads(lambda t: model.add_history(_batch(t, 0)), n=2)
    assert enc.alone == 0, "the two add_history calls embedded one after the other"
    ref = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log)
    for t in (1, 0):
        ref.add_history(_batch(t, 0))
    assert model.n_history_ == ref.n_history_ == log.height + 2 * 5
    assert _rows(model) == _rows(ref)
    by_key = {k: model.index_.emb[r] for k, r in model.index_.key_to_row.items()}
    assert all(np.array_equal(by_key[k], ref.index_.emb[r]) for k, r in ref.index_.key_to_row.items())


class MeetingValueModel:
    """A value model whose add_history meets the other writers' (see :class:`MeetingEncoder`)."""

    def __init__(self):
        self.barrier = threading.Barrier(N_THREADS)
        self.rows = 0

    def predict(self, X):
        return np.full(X.height, 0.5)

    def add_history(self, X, y):
        _meet(self.barrier)
        self.rows += len(y)


@pytest.mark.filterwarnings("ignore:add_history ignored prices")  # the later writers' price: it is in the pool
def test_concurrent_router_add_history_joins_a_new_policy_once():
    r = Router(MeetingValueModel(), cost_model="fixed", prices={"a": 1.0, "b": 0.5}).fit()
    rows = pl.DataFrame({"policy": ["new"] * 2, "prompt": ["x", "y"], "score": [1.0, 0.0]})
    _run_threads(lambda t: r.add_history(rows, prices={"new": 0.2}))
    # the first writer in joins it; every later one finds it in the pool
    assert r.policies_.count("new") == 1 and r.n_policies_ == 3 == len(r.policies_)
    assert list(r.added_prices_) == ["new"] and r.value_model.rows == 2 * N_THREADS


class BlockingEncoder(FakeEncoder):
    """Blocks the reader's one encode call (a fresh prompt) until the test has published a write."""

    def __init__(self):
        super().__init__()
        self.armed = False
        self.reading = threading.Event()
        self.written = threading.Event()

    def encode(self, texts):
        if self.armed:
            self.armed = False
            self.reading.set()
            assert self.written.wait(WAIT)
        return super().encode(texts)


def _race(read, write, enc: BlockingEncoder):
    """Run ``read`` in a thread, publish ``write`` while it is blocked mid-call, return the read's answer."""
    out = {}

    def reader():
        try:
            out["value"] = read()
        except Exception as exc:  # noqa: BLE001 - the answer is checked below
            out["value"] = exc

    enc.armed = True
    th = threading.Thread(target=reader)
    th.start()
    assert enc.reading.wait(WAIT)
    try:
        write()
    finally:
        enc.written.set()
        th.join(WAIT)
    assert not th.is_alive()
    return out["value"]


def test_predict_racing_add_history_answers_before_or_after():
    log = topic_log(n_prompts=40)
    enc = BlockingEncoder()
    model = V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(log)
    # queries: known prompts and a fresh one (its encode call is where the reader waits); the write adds
    # outcomes of the fresh prompt too, which the query of its own (policy, prompt, step) must not see
    fresh = "prove the lemma case 999"
    Q = pl.DataFrame({"policy": ["a", "b", "c", "a"], "prompt": [*log["prompt"][:3], fresh]})
    add = pl.DataFrame({"policy": ["a"] * 21, "prompt": [*log["prompt"][:20], fresh], "score": [0.0] * 21})
    twin = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log)  # same vectors, same fit
    before = twin.predict(Q)
    twin.add_history(add)
    after = twin.predict(Q)
    assert not np.array_equal(before, after)  # the write changes the answer: the test can tell them apart
    got = _race(lambda: model.predict(Q), lambda: model.add_history(add), enc)
    assert isinstance(got, np.ndarray), got
    assert np.array_equal(got, before) or np.array_equal(got, after), (got, before, after)
    assert np.array_equal(model.predict(Q), after)


def test_route_racing_a_joining_policy_answers_for_the_old_or_new_pool():
    log = topic_log(n_prompts=40)
    enc = BlockingEncoder()
    prices = {"a": 1.0, "b": 0.5, "c": 0.1}
    r = Router(V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(log), cost_model="fixed", prices=prices).fit()
    twin_model = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log)  # same vectors, same fit
    twin = Router(twin_model, cost_model="fixed", prices=prices).fit()
    add = pl.DataFrame({"policy": ["d"] * 40, "prompt": list(log["prompt"][:40]), "score": [1.0] * 40})
    prompts = ["prove the lemma case 998", "sort the list case 999"]  # fresh: the reader waits in encode
    before = twin.route(prompts, lam=0.0).tolist()
    got = _race(lambda: r.route(prompts, lam=0.0), lambda: r.add_history(add, prices={"d": 0.01}), enc)
    assert isinstance(got, np.ndarray), got
    twin.add_history(add, prices={"d": 0.01})
    after = twin.route(prompts, lam=0.0).tolist()
    assert after == ["d", "d"] != before  # the joined, perfect policy wins at lam=0: the answers differ
    assert got.tolist() in (before, after)
    # predict_matrix, while 'e' joins: P and C of one pool (4 or 5 columns), never a reshape error
    prompts = ["translate the text case 997"]
    P4, C4 = twin.predict_matrix(prompts)
    enc.reading.clear(), enc.written.clear()
    join_e = add.with_columns(policy=pl.lit("e"))
    got = _race(lambda: r.predict_matrix(prompts), lambda: r.add_history(join_e, prices={"e": 0.02}), enc)
    assert isinstance(got, tuple), got
    twin.add_history(join_e, prices={"e": 0.02})
    P5, C5 = twin.predict_matrix(prompts)
    assert any(np.array_equal(got[0], P) and np.array_equal(got[1], C) for P, C in ((P4, C4), (P5, C5))), got


class HalfValue(V0Regressor):
    """A V0Regressor whose own predict the router must call (it halves every probability)."""

    def predict(self, X, **kw):
        return super().predict(X, **kw) / 2


def _value_matrix(model, policies, prompts) -> np.ndarray:
    """The value model's own probabilities of every prompt x policy pair, as the router lays them out."""
    X = pl.DataFrame({"policy": list(policies) * len(prompts), "prompt": [q for q in prompts for _ in policies]})
    return model.predict(X).reshape(len(prompts), len(policies))


def test_a_read_between_the_value_models_publication_and_the_pools_answers_for_the_state_before():
    """Router.add_history publishes the value model's new index, then the new pool; a read in between (run by a
    spy on the value model's add_history, in the writer's own thread: no timing) answers for the router before
    or after, never the old pool with the new index's probabilities (a joining policy's rows move every policy's
    prior). A failed add_history leaves no pin behind, nor does a copy taken amid one; an overridden predict is
    still the one called."""
    log = topic_log(n_prompts=40)
    model = V0Regressor(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log)
    r = Router(model, cost_model="fixed", prices=PRICES).fit()
    prompts = [*log["prompt"][:5], "prove the lemma case 998"]
    add = pl.DataFrame({"policy": ["d"] * 40, "prompt": list(log["prompt"][:40]), "score": [1.0] * 40})
    P0, C0 = r.predict_matrix(prompts)
    seen, orig = {}, model.add_history

    def spy(*a, **k):  # a reader right after the value model's publication, before the router's
        orig(*a, **k)
        seen["read"], seen["route"], seen["copy"] = r.predict_matrix(prompts), r.route(prompts), copy.deepcopy(r)

    model.add_history = spy
    r.add_history(add, prices={"d": 0.01})
    del model.add_history
    P1, C1 = r.predict_matrix(prompts)
    assert P1.shape == (6, 4) and np.abs(P1[:, :3] - P0).max() > 1e-3  # the old columns move: reads differ
    Pw, Cw = seen["read"]
    assert any(
        Pw.shape == P.shape and np.allclose(Pw, P, atol=1e-12, rtol=0) and np.array_equal(Cw, C)
        for P, C in ((P0, C0), (P1, C1))
    ), (Pw, P0, P1)
    assert seen["route"].tolist() in (
        [pool[j] for j in r.choose(P, C)] for P, C, pool in ((P0, C0, "abc"), (P1, C1, "abcd"))
    )
    cp = seen["copy"]  # copied amid the write: it reads its own value model, not a pin no writer would end
    np.testing.assert_allclose(cp.predict_matrix(prompts)[0], _value_matrix(cp.value_model, cp.policies_, prompts))
    more = add.with_columns(policy=pl.lit("a"), score=pl.lit(0.0))
    model.add_history = lambda *a, **k: (_ for _ in ()).throw(RuntimeError("disk full"))
    with pytest.raises(RuntimeError, match="disk full"):
        r.add_history(more)
    del model.add_history
    np.testing.assert_allclose(r.predict_matrix(prompts)[0], P1, atol=1e-12, rtol=0)
    model.add_history(more)  # directly: the router reads the value model's index again, no pin left behind
    P2 = r.predict_matrix(prompts)[0]
    assert np.abs(P2 - P1).max() > 1e-3
    np.testing.assert_allclose(P2, _value_matrix(model, r.policies_, prompts), atol=1e-12, rtol=0)
    half = Router(HalfValue(head="knn", encoder=FakeEncoder(), cache_dir=False).fit(log), cost_model="fixed")
    half.set_params(prices=PRICES).fit()
    np.testing.assert_allclose(half.predict_matrix(prompts)[0], P0 / 2, atol=1e-12, rtol=0)


def test_route_racing_set_prices_answers_for_the_old_or_new_prices():
    """``set_prices`` lands between the pool's read and the costs' (the value model's encode): the costs
    are all old or all new, never new for the fitted models beside the old price of a joined one."""
    log = topic_log(n_prompts=40)
    enc = BlockingEncoder()
    r = Router(V0Regressor(head="knn", encoder=enc, cache_dir=False).fit(log), cost_model="fixed", prices=PRICES)
    r.fit().add_history(log.filter(pl.col("policy") == "a").with_columns(policy=pl.lit("d")), prices={"d": 0.01})
    prompts = ["prove the lemma case 998"]  # fresh: the reader waits in encode, after it read the pool
    old = [[1.0, 0.5, 0.1, 0.01]]
    new = {"a": 2.0, "b": 3.0, "c": 4.0, "d": 5.0}
    got = _race(lambda: r.predict_matrix(prompts), lambda: r.set_prices(new), enc)
    assert isinstance(got, tuple), got
    assert np.array_equal(got[1], old) or np.array_equal(got[1], [list(new.values())]), got[1]
    assert np.array_equal(r.predict_matrix(prompts)[1], [list(new.values())])  # and the new ones after
    plain = Router(
        V0Regressor(head="prior", encoder=FakeEncoder(), cache_dir=False).fit(log), cost_model="fixed", prices=PRICES
    )
    plain.fit().predict_matrix(prompts)
    twin = copy.deepcopy(plain)  # the publish lock exists now: the copy gets its own, not a copy error
    assert np.array_equal(twin.predict_matrix(prompts)[1], [[1.0, 0.5, 0.1]])


class MeetingKeys(dict):
    """The neural head's key -> row map; ``len`` (the row a writer appends at) meets the other predict: two
    appenders that are not serialised both read the size before either publishes."""

    barrier = threading.Barrier(2)

    def __len__(self):
        n = super().__len__()
        _meet(self.barrier)
        return n


def test_neural_predicts_of_new_prompts_in_two_threads_keep_every_feature_row():
    from tests.test_neural import FAST

    log = topic_log(n_prompts=20)
    model = V0Regressor(head="neural", head_params={**FAST, "max_steps": 2}, encoder=FakeEncoder(), cache_dir=False)
    model.fit(log)
    twin = copy.deepcopy(model)  # the same head: predicts the new prompts one after the other
    Q = [pl.DataFrame({"policy": ["a", "b"], "prompt": [f"prove the lemma case {t}99", f"sort the list case {t}98"]})
         for t in range(2)]  # fmt: skip
    want = [twin.predict(q) for q in Q]
    head = model.head_
    n = len(head._feat_keys)
    head._feat_keys = MeetingKeys(head._feat_keys)
    got = {}
    _run_threads(lambda t: got.__setitem__(t, model.predict(Q[t])), n=2)
    assert sorted(head._feat_keys.values()) == list(range(n + 4)) == list(range(len(head._feats)))
    for t in range(2):  # each prompt read its own features, not the other thread's
        np.testing.assert_allclose(got[t], want[t], atol=1e-6)
        np.testing.assert_allclose(model.predict(Q[t]), want[t], atol=1e-6)
    np.testing.assert_allclose(copy.deepcopy(model).predict(Q[0]), want[0], atol=1e-6)  # its lock is not copied


class FakeThreadpoolctl:
    """``threadpoolctl`` as the auto head uses it, over a process-wide BLAS setting and a per-thread OpenMP one
    (as OpenBLAS and libgomp behave), so the interleaving, not the host's libraries, decides the outcome."""

    def __init__(self, blas: int):
        self.blas, self.omp = blas, threading.local()

    def threadpool_info(self):
        omp = getattr(self.omp, "n", 4)
        return [
            {"user_api": "blas", "prefix": "libopenblas", "num_threads": self.blas},
            {"user_api": "openmp", "prefix": "libgomp", "num_threads": omp},
        ]

    def threadpool_limits(self, limits):
        fake = self

        class Limiter:
            def __init__(self):
                self.before = {"libopenblas": fake.blas, "libgomp": getattr(fake.omp, "n", 4)}
                self._set(limits)

            def _set(self, values):
                if "libopenblas" in values:
                    fake.blas = values["libopenblas"]
                if "libgomp" in values:
                    fake.omp.n = values["libgomp"]

            def restore_original_limits(self):
                self._set({k: v for k, v in self.before.items() if k in limits})

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.restore_original_limits()

        return Limiter()


def test_auto_predicts_in_overlapping_threads_restore_the_callers_thread_cap(monkeypatch):
    import sys

    log = topic_log(n_prompts=40)
    model = V0Regressor(head="auto", head_params={"members": ["prior", "knn"]}, encoder=FakeEncoder(), cache_dir=False)
    model.fit(log)
    Q = pl.DataFrame({"policy": ["a", "b"], "prompt": list(log["prompt"][:2])})
    fake = FakeThreadpoolctl(blas=8)  # the caller's setting: above auto's cap of 2
    monkeypatch.setitem(sys.modules, "threadpoolctl", fake)
    head, orig = model.head_, model.head_.member_predictions
    early_in, late_in, early_done = threading.Event(), threading.Event(), threading.Event()
    inside, errors = {}, []

    def member_predictions(*a, **k):  # early enters first and leaves first, while late is still inside
        name = threading.current_thread().name
        inside[name] = (fake.blas, fake.omp.n)
        if name == "early":
            early_in.set()
            assert late_in.wait(WAIT)
        else:
            late_in.set()
            assert early_done.wait(WAIT)
        return orig(*a, **k)

    monkeypatch.setattr(head, "member_predictions", member_predictions)

    def run(done=None):
        try:
            fake.omp.n = 3  # each thread's own OpenMP setting, to be given back
            model.predict(Q)
            if fake.omp.n != 3:
                errors.append(f"{threading.current_thread().name}: OpenMP {fake.omp.n} after, 3 before")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))
        finally:
            if done is not None:
                done.set()

    early = threading.Thread(target=run, args=(early_done,), name="early")
    late = threading.Thread(target=run, name="late")
    early.start()
    assert early_in.wait(WAIT)
    late.start()
    early.join(WAIT), late.join(WAIT)
    assert not errors, errors
    assert inside == {"early": (2, 2), "late": (2, 2)}  # both ran capped
    assert fake.blas == 8  # the process-wide BLAS setting is the caller's again
