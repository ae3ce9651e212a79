"""A clearly labelled SYNTHETIC outcome log for examples and smoke tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from .._io import atomic_write_bytes
from ..exceptions import DataError
from ..log import validate_log, write_log
from ._paths import _project_root

__all__ = ["demo_frames", "make_demo_log", "write_demo_data"]

# Each topic: templates (difficulty level 0 easy, 1 medium, 2 hard) and their slot fillers.
_STYLES = ("", "Question: ", "Please answer: ", "Quick one: ", "Exercise: ")
_ENDINGS = ("", " Show your reasoning.", " Answer concisely.", " Explain briefly.")


def _topic_templates() -> dict[str, list[tuple[int, Callable[[np.random.Generator], str]]]]:
    def pick(rng: np.random.Generator, items: tuple) -> Any:
        return items[int(rng.integers(len(items)))]

    def ri(rng: np.random.Generator, lo: int, hi: int) -> int:
        return int(rng.integers(lo, hi + 1))

    # the prompt templates, one per line as the demo's text reads (not as the formatter would wrap them)
    # fmt: off
    events = ("the Berlin Wall fall", "the French Revolution begin", "the Magna Carta get sealed",
              "the First World War end", "Columbus first reach the Americas", "the Roman Empire split in two",
              "the printing press reach England", "India gain independence", "the American Civil War start",
              "the Meiji Restoration begin", "the Ottoman Empire fall", "the Byzantine capital fall")
    eras = ("the collapse of the Western Roman Empire", "the First World War", "the Great Depression",
            "the Thirty Years' War", "the fall of the Qing dynasty", "the Industrial Revolution in Britain",
            "the decline of the Mughal Empire", "the Cold War", "the Reformation", "the Crusades")
    rulers = ("Augustus", "Charlemagne", "Elizabeth I", "Louis XIV", "Peter the Great", "Napoleon",
              "Queen Victoria", "Meiji", "Catherine the Great", "Akbar", "Kangxi", "Suleiman")
    regions = ("Western Europe", "East Asia", "the Mediterranean", "South Asia", "Central Europe", "the Atlantic world")
    elements = ("sodium", "potassium", "iron", "copper", "silver", "gold", "tin", "lead", "mercury", "tungsten",
                "chlorine", "magnesium", "calcium", "zinc", "nickel", "helium", "neon", "argon")
    fuels = ("methane", "ethane", "propane", "butane", "ethanol", "methanol", "octane", "glucose", "acetylene")
    compounds = ("sodium chloride", "water", "carbon dioxide", "calcium carbonate", "sulfuric acid",
                 "glucose", "ammonia", "potassium nitrate", "ethanol")
    acids = ("acetic acid", "formic acid", "hydrofluoric acid", "benzoic acid", "hypochlorous acid", "lactic acid")
    fns = ("sum", "maximum", "minimum", "average", "median", "number of even values")
    things = ("spaces", "punctuation", "letter case", "accents", "digits")
    kinds = ("integers", "strings", "dates", "floating-point numbers", "tuples")
    langs = ("Python", "Java", "Rust", "Go", "C++", "TypeScript")
    algos = ("Dijkstra's shortest-path algorithm", "a topological sort", "Kruskal's minimum spanning tree",
             "the Bellman-Ford algorithm", "an A* search", "Tarjan's strongly connected components")
    organelles = ("mitochondrion", "ribosome", "nucleus", "Golgi apparatus", "chloroplast", "lysosome",
                  "endoplasmic reticulum", "cell membrane", "vacuole")
    processes = ("photosynthesis", "cellular respiration", "osmosis", "mitosis", "meiosis", "protein synthesis",
                 "DNA replication", "the immune response")
    organisms = ("plants", "yeast", "bacteria", "humans", "insects", "fish", "fungi")
    genes = ("p53", "BRCA1", "CFTR", "the insulin receptor", "hemoglobin", "a sodium channel")
    mechanisms = ("enzymes lower activation energy", "neurons propagate action potentials",
                  "antibodies recognise antigens", "hormones regulate blood glucose", "muscles contract")
    countries = ("France", "Japan", "Kenya", "Brazil", "Canada", "Egypt", "Peru", "Norway", "Vietnam",
                 "Australia", "Chile", "Poland", "Morocco", "Thailand", "Mexico", "Ghana")
    cities = ("Paris", "Vienna", "Cairo", "Budapest", "London", "Baghdad", "Prague", "Bangkok", "Khartoum", "Cologne")
    factors = ("ocean currents", "altitude", "the monsoon", "continentality", "prevailing winds", "mountain rain shadows")
    climates = ("the Andes", "West Africa", "South Asia", "Scandinavia", "the Great Plains", "the Mediterranean basin")

    return {
        "arithmetic": [
            (0, lambda r: f"What is {ri(r, 2, 40)} + {ri(r, 2, 40)}?"),
            (0, lambda r: f"Subtract {ri(r, 1, 30)} from {ri(r, 31, 90)}. What do you get?"),
            (1, lambda r: f"Compute {ri(r, 12, 99)} times {ri(r, 12, 99)} without a calculator."),
            (1, lambda r: f"What is {pick(r, (5, 12, 15, 35, 45, 65))}% of {ri(r, 80, 960)}?"),
            (2, lambda r: f"Find the remainder when {ri(r, 3, 19)}^{ri(r, 20, 200)} is divided by {ri(r, 7, 97)}."),
            (2, lambda r: f"Compute the sum of all integers from {ri(r, 1, 50)} to {ri(r, 300, 999)} that are divisible by {ri(r, 3, 13)}."),
        ],
        "geometry": [
            (0, lambda r: f"A rectangle is {ri(r, 2, 30)} cm long and {ri(r, 2, 30)} cm wide. What is its area?"),
            (0, lambda r: f"What is the perimeter of a square whose side is {ri(r, 2, 50)} meters?"),
            (1, lambda r: f"A right triangle has legs of length {ri(r, 3, 40)} and {ri(r, 3, 40)}. How long is the hypotenuse?"),
            (1, lambda r: f"Find the area of a circle with radius {ri(r, 2, 25)} cm, to two decimal places."),
            (2, lambda r: f"A regular polygon has interior angles of {pick(r, (120, 135, 140, 144, 150, 156, 160, 165))} degrees and side length {ri(r, 2, 12)}. How many sides does it have, and what is its area?"),
            (2, lambda r: f"Find the volume of the solid obtained by rotating y = x^{ri(r, 2, 5)} for x between 0 and {ri(r, 2, 6)} about the x-axis."),
        ],
        "coding": [
            (0, lambda r: f"Write a Python function that returns the {pick(r, fns)} of a list of numbers."),
            (0, lambda r: f"Write a {pick(r, langs)} function that reverses a string."),
            (1, lambda r: f"Write a {pick(r, langs)} function that checks whether a string is a palindrome, ignoring {pick(r, things)}."),
            (1, lambda r: f"Implement binary search over a sorted list of {pick(r, kinds)} in {pick(r, langs)} and return the index of a target."),
            (2, lambda r: f"Implement {pick(r, algos)} in {pick(r, langs)} for a graph with {ri(r, 10, 10000)} nodes given as an adjacency list, and state its complexity."),
            (2, lambda r: f"Write a thread-safe LRU cache class in {pick(r, langs)} with capacity {ri(r, 8, 4096)} and O(1) get and put."),
        ],
        "history": [
            (0, lambda r: f"In which year did {pick(r, events)}?"),
            (0, lambda r: f"Who was {pick(r, rulers)}, in one sentence?"),
            (1, lambda r: f"Explain the main causes of {pick(r, eras)}."),
            (1, lambda r: f"What role did trade play in {pick(r, eras)}?"),
            (2, lambda r: f"Compare the policies of {pick(r, rulers)} and {pick(r, rulers)} and assess their long-term consequences for {pick(r, regions)}."),
            (2, lambda r: f"Evaluate competing historiographical interpretations of {pick(r, eras)} and their use of primary sources."),
        ],
        "chemistry": [
            (0, lambda r: f"What is the chemical symbol for {pick(r, elements)}?"),
            (0, lambda r: f"Is {pick(r, elements)} a metal, a non-metal or a noble gas?"),
            (1, lambda r: f"Balance the chemical equation for the complete combustion of {pick(r, fuels)}."),
            (1, lambda r: f"How many moles are in {ri(r, 5, 500)} grams of {pick(r, compounds)}?"),
            (2, lambda r: f"Calculate the pH of a {pick(r, (0.001, 0.01, 0.05, 0.1, 0.25, 0.5))} M solution of {pick(r, acids)} given its Ka, and justify any approximation."),
            (2, lambda r: f"Predict the products and mechanism when {pick(r, fuels)} reacts with {pick(r, ('chlorine', 'bromine', 'oxygen', 'ozone'))} under {pick(r, ('UV light', 'high pressure', 'a platinum catalyst'))}."),
        ],
        "biology": [
            (0, lambda r: f"What is the function of the {pick(r, organelles)} in a cell?"),
            (0, lambda r: f"Do {pick(r, organisms)} carry out {pick(r, processes)}?"),
            (1, lambda r: f"Describe how {pick(r, processes)} works in {pick(r, organisms)}."),
            (1, lambda r: f"Compare {pick(r, processes)} with {pick(r, processes)} in {pick(r, organisms)}."),
            (2, lambda r: f"Explain the molecular mechanism by which {pick(r, mechanisms)}, and predict the effect of a loss-of-function mutation in {pick(r, genes)}."),
            (2, lambda r: f"Design an experiment in {pick(r, organisms)} to test whether {pick(r, genes)} affects {pick(r, processes)}, including controls."),
        ],
        "geography": [
            (0, lambda r: f"What is the capital of {pick(r, countries)}?"),
            (0, lambda r: f"On which continent is {pick(r, countries)}?"),
            (1, lambda r: f"Which river flows through {pick(r, cities)}, and into which body of water does it drain?"),
            (1, lambda r: f"Name three countries that border {pick(r, countries)} or share a sea with it."),
            (2, lambda r: f"Explain how {pick(r, factors)} shapes the climate of {pick(r, climates)} across the seasons."),
            (2, lambda r: f"Analyse how {pick(r, factors)} and {pick(r, factors)} together affect agriculture in {pick(r, climates)}."),
        ],
        "physics": [
            (0, lambda r: f"A car travels {ri(r, 20, 300)} km in {ri(r, 1, 6)} hours. What is its average speed?"),
            (0, lambda r: f"What is the weight of a {ri(r, 1, 120)} kg mass on Earth?"),
            (1, lambda r: f"A ball is thrown upward at {ri(r, 5, 40)} m/s. How high does it rise, ignoring air resistance?"),
            (1, lambda r: f"Two resistors of {ri(r, 2, 200)} ohms and {ri(r, 2, 200)} ohms are in parallel. What is the total resistance?"),
            (2, lambda r: f"Derive the period of a physical pendulum made of a uniform rod of length {ri(r, 1, 5)} m pivoted {ri(r, 5, 45)} cm from one end."),
            (2, lambda r: f"A satellite orbits at {ri(r, 300, 36000)} km altitude. Compute its orbital period and the delta-v needed to circularise from a transfer ellipse."),
        ],
    }
    # fmt: on


_TOPIC_NAMES = ("arithmetic", "geometry", "coding", "history", "chemistry", "biology", "geography", "physics")
_POLICY_NAMES = (
    "synthetic-tiny",
    "synthetic-small",
    "synthetic-medium",
    "synthetic-large",
    "synthetic-xl",
    "synthetic-xxl",
)
_DEMO_N = 8  # rollouts behind each synthetic score


def _demo_prompts(rng: np.random.Generator, count: int, templates: list) -> list[tuple[str, int]]:
    seen: set[str] = set()
    out: list[tuple[str, int]] = []
    attempts = 0
    while len(out) < count:
        level, make = templates[int(rng.integers(len(templates)))]
        text = _STYLES[int(rng.integers(len(_STYLES)))] + make(rng) + _ENDINGS[int(rng.integers(len(_ENDINGS)))]
        attempts += 1
        if text in seen:
            if attempts < 200 * count:
                continue
            text = f"{text} (variant {attempts})"
        seen.add(text)
        out.append((text, level))
    return out


def _check_count(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or value < lo
        or (hi is not None and value > hi)
    ):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise DataError(f"{name}={value!r} must be an integer {rng}. Fix: pass an integer in that range.")
    return int(value)


def make_demo_log(
    n_policies: int = 4,
    n_topics: int = 6,
    n_prompts_per_topic: int = 40,
    n_steps: int = 3,
    random_state: int = 0,
) -> pl.DataFrame:
    """Generate a SYNTHETIC outcome log (for examples and tests; no real model was run).

    Prompts are templated English questions in several topics (arithmetic, geometry,
    coding, history, chemistry, biology, geography, physics) with varied wording, so a
    sentence encoder sees the topic structure. Each template has a difficulty level
    (easy / medium / hard); a prompt's latent difficulty is its level's offset plus
    noise. Policy ``i`` has a base skill rising with ``i``, a per-topic offset and a
    per-topic improvement per step. ``score = successes / 8`` with successes drawn from
    ``Binomial(8, sigmoid(skill + gain * step - difficulty))``. ``cost`` is a fixed
    per-policy price per call (USD, larger policies cost more).

    Parameters
    ----------
    n_policies : int, default 4
        Number of policies (``synthetic-tiny``, ``synthetic-small``, ...).
    n_topics : int, default 6
        Number of topics, at most 8.
    n_prompts_per_topic : int, default 40
        Distinct prompts per topic.
    n_steps : int, default 3
        Checkpoints 0 .. n_steps - 1; every policy answers every prompt at every step.
    random_state : int, default 0
        Seed; the same seed gives the same log.

    Returns
    -------
    polars.DataFrame
        Validated log with policy, prompt, score, step, n, cost, task; rows ordered by
        policy, step, topic, prompt.

    Examples
    --------
    >>> log = make_demo_log(n_policies=2, n_topics=2, n_prompts_per_topic=5, n_steps=2)
    >>> log.shape
    (40, 7)
    """
    n_policies = _check_count("n_policies", n_policies, 1)
    n_topics = _check_count("n_topics", n_topics, 1, len(_TOPIC_NAMES))
    n_prompts = _check_count("n_prompts_per_topic", n_prompts_per_topic, 1)
    n_steps = _check_count("n_steps", n_steps, 1)
    rng = np.random.default_rng(random_state)
    templates = _topic_templates()
    topics = list(_TOPIC_NAMES[:n_topics])
    level_offset = np.array([-1.6, 0.0, 1.6])
    prompts: list[tuple[str, str, float]] = []  # (topic, text, difficulty)
    for topic in topics:
        for text, level in _demo_prompts(rng, n_prompts, templates[topic]):
            prompts.append((topic, text, float(level_offset[level] + rng.normal(0.0, 0.6))))
    policies = [_POLICY_NAMES[i] if i < len(_POLICY_NAMES) else f"synthetic-{i}" for i in range(n_policies)]
    base = np.linspace(-0.6, 1.4, n_policies) if n_policies > 1 else np.array([0.4])
    topic_offset = rng.normal(0.0, 0.7, size=(n_policies, n_topics))
    gain = rng.uniform(0.1, 0.5, size=(n_policies, n_topics))
    price = 1e-4 * 3.0 ** np.arange(n_policies)
    t_index = {t: j for j, t in enumerate(topics)}
    p_topic = np.array([t_index[t] for t, _, _ in prompts])
    p_diff = np.array([d for _, _, d in prompts])
    cols: dict[str, list] = {k: [] for k in ("policy", "prompt", "score", "step", "n", "cost", "task")}
    texts = [t for _, t, _ in prompts]
    tasks = [t for t, _, _ in prompts]
    for i, pol in enumerate(policies):
        for s in range(n_steps):
            logit = base[i] + topic_offset[i, p_topic] + gain[i, p_topic] * s - p_diff
            prob = 1.0 / (1.0 + np.exp(-logit))
            succ = rng.binomial(_DEMO_N, prob)
            m = len(prompts)
            cols["policy"].extend([pol] * m)
            cols["prompt"].extend(texts)
            cols["score"].extend((succ / _DEMO_N).tolist())
            cols["step"].extend([s] * m)
            cols["n"].extend([_DEMO_N] * m)
            cols["cost"].extend([float(price[i])] * m)
            cols["task"].extend(tasks)
    return validate_log(pl.DataFrame(cols, strict=False))


_DEMO_README = """# data/ — SYNTHETIC demo outcome logs

**These files are synthetic.** No language model was run to make them. They exist so
that examples, docs and smoke tests have a small, realistic-looking outcome log.

| file | rows | what |
|---|---|---|
| demo_log.jsonl | {n_log} | history: {n_pol} policies x {n_hist} prompts x {n_steps} steps |
| demo_queries.jsonl | {n_q} | held-out prompts (never in the history), every policy and step, with their true scores |

Columns: policy, prompt, score (= successes / 8), step, n (= 8), cost (USD per call,
a fixed per-policy price), task (the topic).

## How it was generated
`v0lite.data.make_demo_log(n_policies={n_pol}, n_topics={n_topics},
n_prompts_per_topic={n_ppt}, n_steps={n_steps}, random_state={seed})`, then
{n_qpt} prompts per topic were held out at random (same seed) as queries:

- prompts: templated English questions in the topics {topics}, with
  easy / medium / hard templates and varied wording;
- difficulty of a prompt = its template level's offset (-1.6 / 0 / +1.6) + N(0, 0.6);
- skill of policy i on topic t at step s = base_i (rising with i) + offset_(i,t) ~ N(0, 0.7)
  + gain_(i,t) * s, gain ~ U(0.1, 0.5);
- successes ~ Binomial(8, sigmoid(skill - difficulty)); score = successes / 8.

Regenerate (byte-identical for the same seed):

    python -c "from v0lite.data import write_demo_data; write_demo_data()"
"""


def demo_frames(
    *,
    n_policies: int = 4,
    n_topics: int = 6,
    n_prompts_per_topic: int = 32,
    n_query_prompts_per_topic: int = 8,
    n_steps: int = 3,
    random_state: int = 0,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The SYNTHETIC demo's history and queries: what :func:`write_demo_data` writes, as frames.

    ``v0lite demo`` uses them where the repository's ``data/`` folder is absent (an installed
    package), so its figures are the same either way.

    Parameters
    ----------
    n_policies, n_topics, n_prompts_per_topic, n_query_prompts_per_topic, n_steps, random_state
        As :func:`write_demo_data`'s.

    Returns
    -------
    tuple of polars.DataFrame
        ``(history, queries)``: ``n_query_prompts_per_topic`` prompts of each topic (chosen with
        ``random_state``) held out, for every policy and step, in ``queries``; the others in
        ``history``. They share no prompt.

    Examples
    --------
    >>> history, queries = demo_frames(n_policies=2, n_topics=2, n_prompts_per_topic=4,
    ...                                n_query_prompts_per_topic=1, n_steps=1)
    >>> history.height, queries.height
    (12, 4)
    """
    n_q = _check_count("n_query_prompts_per_topic", n_query_prompts_per_topic, 1)
    if not isinstance(n_prompts_per_topic, int) or n_q >= n_prompts_per_topic:
        raise DataError(
            f"n_query_prompts_per_topic={n_q} must be smaller than n_prompts_per_topic={n_prompts_per_topic!r}. "
            "Fix: hold out fewer prompts or generate more."
        )
    log = make_demo_log(n_policies, n_topics, n_prompts_per_topic, n_steps, random_state)
    rng = np.random.default_rng([random_state, 1])
    held: list[str] = []
    for task in _TOPIC_NAMES[:n_topics]:
        texts = log.filter(pl.col("task") == task)["prompt"].unique(maintain_order=True).to_list()
        held.extend(texts[j] for j in sorted(rng.choice(len(texts), n_q, replace=False)))
    is_q = log["prompt"].is_in(held)
    return log.filter(~is_q), log.filter(is_q)


def write_demo_data(
    out_dir: str | os.PathLike | None = None,
    *,
    n_policies: int = 4,
    n_topics: int = 6,
    n_prompts_per_topic: int = 32,
    n_query_prompts_per_topic: int = 8,
    n_steps: int = 3,
    random_state: int = 0,
) -> dict[str, Path]:
    """Write the SYNTHETIC demo files: ``demo_log.jsonl``, ``demo_queries.jsonl``, ``README.md``.

    The log comes from :func:`make_demo_log`; ``n_query_prompts_per_topic`` prompts of
    each topic are held out (chosen with ``random_state``) and written, for every policy
    and step, to ``demo_queries.jsonl`` with their true scores. The history holds the
    other prompts only, so the two files share no prompt.

    Parameters
    ----------
    out_dir : path, optional
        Destination folder; default ``<project root>/data``.
    n_policies, n_topics, n_prompts_per_topic, n_steps, random_state
        Passed to :func:`make_demo_log` (``n_prompts_per_topic`` counts history and
        query prompts together).
    n_query_prompts_per_topic : int, default 8
        Held-out prompts per topic, fewer than ``n_prompts_per_topic``.

    Returns
    -------
    dict
        ``{"log": path, "queries": path, "readme": path}``.

    Examples
    --------
    >>> import tempfile
    >>> paths = write_demo_data(tempfile.mkdtemp(), n_policies=2, n_topics=2, n_prompts_per_topic=4,
    ...                         n_query_prompts_per_topic=1, n_steps=1)
    >>> sorted(paths)
    ['log', 'queries', 'readme']
    """
    history, queries = demo_frames(
        n_policies=n_policies,
        n_topics=n_topics,
        n_prompts_per_topic=n_prompts_per_topic,
        n_query_prompts_per_topic=n_query_prompts_per_topic,
        n_steps=n_steps,
        random_state=random_state,
    )
    n_q = n_query_prompts_per_topic
    out = Path(out_dir) if out_dir is not None else _project_root() / "data"
    paths = {
        "log": write_log(history, out / "demo_log.jsonl"),
        "queries": write_log(queries, out / "demo_queries.jsonl"),
    }
    readme = _DEMO_README.format(
        n_log=history.height,
        n_q=queries.height,
        n_pol=n_policies,
        n_topics=n_topics,
        n_hist=n_topics * (n_prompts_per_topic - n_q),
        n_steps=n_steps,
        n_ppt=n_prompts_per_topic,
        n_qpt=n_q,
        seed=random_state,
        topics=", ".join(_TOPIC_NAMES[:n_topics]),
    )
    atomic_write_bytes(out / "README.md", readme.encode("utf-8"))
    paths["readme"] = out / "README.md"
    return paths
