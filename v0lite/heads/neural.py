"""The full neural V0 head (the GPU path): frozen encoder -> dynamic query adapter -> in-context head.

Following V0 (arXiv 2602.03584):

1. a frozen Hugging Face encoder (``AutoModel``) reads each prompt's tokens; its token states are
   computed once per unique prompt and cached (float16, flat with offsets, keyed by prompt key);
2. a **dynamic query adapter** pools the token states into ``n_queries x d_query`` features
   (168 x 6 in the paper) by cross-attention, the queries being learned static queries plus a
   per-prompt offset generated from the mean-pooled state (a residual, zero at initialisation);
3. an **in-context head** reads a support set of up to ``support_size`` (features, score) pairs of
   the same policy and predicts the query: a small transformer over support tokens
   ``[features + label embedding]`` and query tokens ``[features + mask embedding]`` in which
   queries attend to the support only (TabPFN-style). TabPFN's own weights are not shipped; with
   ``icl="tabpfn"`` and ``tabpfn`` importable, TabPFN reads the learned features at predict time.

Only the adapter and the in-context head are trained, on leakage-free episodes from the history:
a (policy, step) group gives the queries, each query's support is its most similar eligible rows
(step <= the query's step, never its own (prompt, step) row). The loss is
``0.25 * pairwise ranking (within episode) + 0.75 * soft BCE`` on the score.

After ``fit`` every history prompt's adapter features are fixed, so they are kept (float16, keyed by
prompt key) and saved with the head: predicting later needs text only for prompts never seen.

During ``fit``, ``head.step_hook`` (a callable ``(head, steps_done)``, not a parameter) runs after
every optimiser step; :meth:`NeuralHead.predict_live` predicts from inside it (learning curves).

Texts: a :class:`~v0lite.index.HistoryIndex` stores prompt keys, not text. This head declares
``needs_text = True`` and reads ``index.texts`` (aligned with ``index.keys``) in ``fit`` and
``queries.texts`` (aligned with the queries) in ``predict``; the estimator attaches them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from .._io import to_jsonable
from .._registry import unknown_name
from .._threads import WriterLockMixin, writer_lock
from ..exceptions import NotFittedError, V0liteError
from ._neural_nets import (
    _DEFAULT_ENCODER,
    _FORMAT,
    ICL_CHOICES,
    ICLHead,
    QueryAdapter,
    _dedup,
    _default_model_path,
    _predict_tabpfn,
    _recent_rows,
    _resolve_device,
    _TokenCache,
)
from ._neural_train import NeuralTraining
from .base import BaseHead

__all__ = ["NeuralHead", "QueryAdapter", "ICLHead", "ICL_CHOICES"]


class NeuralHead(WriterLockMixin, NeuralTraining, BaseHead):
    """Frozen encoder + dynamic query adapter + in-context transformer head (V0's architecture).

    Parameters
    ----------
    encoder_model : str, optional
        Hugging Face ``AutoModel`` name or local folder of the frozen encoder (e.g.
        ``"Qwen/Qwen3-Embedding-0.6B"``). Default: the offline all-MiniLM-L6-v2 folder.
    encoder_config : dict, optional
        A ``transformers`` config (``model_type`` + fields, default type "bert") for a randomly
        initialised encoder instead (tests); its weights are saved with the head.
    tokenizer : str, optional
        Tokenizer name/folder; default ``encoder_model`` (or the MiniLM folder with ``encoder_config``).
    max_length : int, default 256
        Tokens kept per prompt.
    n_queries, d_query : int, default 168, 6
        Adapter queries and the width of each (the paper's 168 x 6).
    adapter_heads, adapter_key_dim, offset_rank : int, default 8, 16, 64
        Adapter attention heads, key width per head, width of the offset generator.
    icl : {"transformer", "tabpfn"}, default "transformer"
        In-context reader. "tabpfn" (needs the ``tabpfn`` package and its weights) trains the adapter
        with the transformer head, then lets TabPFN read the learned features at predict time.
    icl_dim, icl_layers, icl_heads, icl_ff, dropout : default 128, 3, 4, 256, 0.1
        Size of the in-context transformer.
    support_size : int, optional
        Support rows per query; default 256 on a GPU, 64 on the CPU.
    support : {"similar", "recent"}, default "similar"
        The most similar eligible rows of the policy (``index.search_queries``), or the most recent.
    episode_queries, episodes_per_step : int, default 32, 8
        Queries per training episode (one (policy, step) group), episodes per optimiser step.
    n_epochs : float, default 20
        Passes over the history rows as queries; ``max_steps`` (if set) overrides.
    max_steps : int, optional
    max_time_s : float, optional
        Stop training after this many seconds (checked between steps); default none on a GPU,
        ``cpu_time_s`` on the CPU.
    cpu_time_s : float, default 240
        The CPU path's training budget when ``max_time_s`` is not set: the paper's head is meant
        for a GPU (``device="cuda"``), and on 2 CPU cores a full run takes far longer; with this
        budget, early stopping and the smaller CPU support set it fits the V0 sample in minutes.
    val_frac : float, default 0.1
        Share of the history's prompts held out (all their rows) for early stopping: every
        ``eval_every`` steps the loss on those prompts (read cold, from the other prompts' rows)
        is measured and the best weights are kept; training stops after ``patience`` checks
        without improvement. 0 disables it.
    eval_every, patience : int, optional, default None, 4
        Steps between validation checks (default: a twentieth of the planned steps, at least 5).
    compare_frac : float, default 0.5
        Share of training episodes that ask several policies about the same prompts (the
        routing objective: the pairwise term then ranks policies on one prompt, not only prompts
        for one policy); used when at least two policies answered common prompts.
    lr, weight_decay, warmup_frac, grad_clip : default 5e-4, 0.01, 0.05, 1.0
        AdamW with linear warm-up then cosine decay.
    rank_weight : float, default 0.25
        Loss = rank_weight * pairwise ranking + (1 - rank_weight) * soft BCE.
    train_exclude : {"mixed", "same_step", "any_step"}, default "mixed"
        Own-prompt exclusion in training episodes; "mixed" draws one per episode, so the head
        learns both warm prompts (seen at an earlier step) and cold ones.
    device : str, default "auto"
        "cuda" if available; bf16 autocast on CUDA. With "auto" and no CUDA device, ``fit`` refuses
        (a ParameterError naming the GPU path): on CPU the head is slow and, within the CPU budget,
        no better than chance on the V0 sample. Pass "cpu" to run it there anyway (tests, small logs).
    encode_batch_size, adapter_batch_size, predict_batch_size : int, default 64, 512, 128
    verbose : bool, default False
        Print training progress (also on with ``show_progress_bar``).

    Examples
    --------
    >>> from v0lite import V0Regressor
    >>> model = V0Regressor(head="neural", head_params={"max_steps": 200})  # doctest: +SKIP
    """

    name = "neural"
    needs_text = True

    def __init__(
        self,
        encoder_model=None,
        encoder_config=None,
        tokenizer=None,
        max_length=256,
        n_queries=168,
        d_query=6,
        adapter_heads=8,
        adapter_key_dim=16,
        offset_rank=64,
        icl="transformer",
        icl_dim=128,
        icl_layers=3,
        icl_heads=4,
        icl_ff=256,
        dropout=0.1,
        support_size=None,
        support="similar",
        episode_queries=32,
        episodes_per_step=8,
        n_epochs=20,
        max_steps=None,
        max_time_s=None,
        cpu_time_s=240.0,
        val_frac=0.1,
        eval_every=None,
        patience=4,
        compare_frac=0.5,
        lr=5e-4,
        weight_decay=0.01,
        warmup_frac=0.05,
        grad_clip=1.0,
        rank_weight=0.25,
        train_exclude="mixed",
        device="auto",
        encode_batch_size=64,
        adapter_batch_size=512,
        predict_batch_size=128,
        verbose=False,
    ):
        super().__init__(
            encoder_model=encoder_model,
            encoder_config=encoder_config,
            tokenizer=tokenizer,
            max_length=max_length,
            n_queries=n_queries,
            d_query=d_query,
            adapter_heads=adapter_heads,
            adapter_key_dim=adapter_key_dim,
            offset_rank=offset_rank,
            icl=icl,
            icl_dim=icl_dim,
            icl_layers=icl_layers,
            icl_heads=icl_heads,
            icl_ff=icl_ff,
            dropout=dropout,
            support_size=support_size,
            support=support,
            episode_queries=episode_queries,
            episodes_per_step=episodes_per_step,
            n_epochs=n_epochs,
            max_steps=max_steps,
            max_time_s=max_time_s,
            cpu_time_s=cpu_time_s,
            val_frac=val_frac,
            eval_every=eval_every,
            patience=patience,
            compare_frac=compare_frac,
            lr=lr,
            weight_decay=weight_decay,
            warmup_frac=warmup_frac,
            grad_clip=grad_clip,
            rank_weight=rank_weight,
            train_exclude=train_exclude,
            device=device,
            encode_batch_size=encode_batch_size,
            adapter_batch_size=adapter_batch_size,
            predict_batch_size=predict_batch_size,
            verbose=verbose,
        )
        if icl not in ICL_CHOICES:
            raise unknown_name("icl", icl, ICL_CHOICES)
        if support not in ("similar", "recent"):
            raise unknown_name("support", support, ["similar", "recent"])
        if train_exclude not in ("mixed", "same_step", "any_step"):
            raise unknown_name("train_exclude", train_exclude, ["mixed", "same_step", "any_step"])
        if encoder_model is not None and encoder_config is not None:
            raise V0liteError("pass encoder_model or encoder_config, not both.")
        self.encoder_ = None
        self.tokenizer_ = None
        self.adapter_ = None
        self.icl_ = None
        self._tokens = None
        self._feat_keys: dict[str, int] = {}
        self._feats = None  # (n, F) float16 on CPU
        self.step_hook = None  # optional callable(head, steps_done) run after each training step
        self._encoder_path = None
        self.hidden_size_ = None
        self.stats_: dict = {}

    # -- building -----------------------------------------------------------------------------
    @property
    def device_(self) -> torch.device:
        return _resolve_device(self.params["device"])

    def _log(self, msg: str) -> None:
        if self.params["verbose"] or getattr(self, "_progress", False):
            print(f"[neural] {msg}", flush=True)

    def _load_tokenizer(self):
        if self.tokenizer_ is None:
            from transformers import AutoTokenizer

            p = self.params
            name = p["tokenizer"] or (p["encoder_model"] if p["encoder_model"] and not p["encoder_config"] else None)
            name = name or _default_model_path()
            try:
                tok = AutoTokenizer.from_pretrained(name)
            except OSError as exc:
                raise V0liteError(
                    f"cannot load tokenizer {name!r} ({exc}). Fix: pass a local folder as tokenizer=."
                ) from exc
            if tok.pad_token is None:
                tok.pad_token = tok.eos_token or tok.unk_token
            if hasattr(tok, "deprecation_warnings"):  # we pad pre-tokenised ids on purpose
                tok.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True
            self.tokenizer_ = tok
        return self.tokenizer_

    def _load_encoder(self, seed: int = 0, state: dict | None = None):
        """The frozen encoder (built lazily: predicting known prompts never needs it)."""
        if self.encoder_ is not None:
            return self.encoder_
        from transformers import AutoConfig, AutoModel

        p, dev = self.params, self.device_
        tok = self._load_tokenizer()
        if p["encoder_config"] is not None:
            cfg = dict(p["encoder_config"])
            cfg.setdefault("vocab_size", len(tok))
            model_type = cfg.pop("model_type", "bert")
            config = AutoConfig.for_model(model_type, **cfg)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                enc = AutoModel.from_config(config)
            if state is None and getattr(self, "_encoder_path", None) is not None:
                from safetensors.torch import load_file

                state = load_file(str(self._encoder_path))
            if state is not None:
                enc.load_state_dict(state)
        else:
            name = p["encoder_model"] or _default_model_path()
            dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
            try:
                enc = AutoModel.from_pretrained(name, dtype=dtype)
            except OSError as exc:
                raise V0liteError(
                    f"cannot load encoder {name!r} ({exc}). Fix: pass a local Hugging Face folder as encoder_model=."
                ) from exc
        self.encoder_ = enc.to(dev).eval().requires_grad_(False)
        self.hidden_size_ = int(enc.config.hidden_size)
        return self.encoder_

    def _build_trainable(self, hidden: int) -> None:
        p = self.params
        self.adapter_ = QueryAdapter(
            hidden, p["n_queries"], p["d_query"], p["adapter_heads"], p["adapter_key_dim"], p["offset_rank"]
        ).to(self.device_)
        self.icl_ = ICLHead(
            self.adapter_.out_dim, p["icl_dim"], p["icl_layers"], p["icl_heads"], p["icl_ff"], p["dropout"]
        ).to(self.device_)

    def _autocast(self):
        if self.device_.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return torch.autocast("cpu", enabled=False)

    # -- encoding -------------------------------------------------------------------------------
    @torch.no_grad()
    def _encode_into_cache(self, keys, texts) -> None:
        """Encode prompts not yet in the token cache (batched by length, padding per batch)."""
        if self._tokens is None:
            self._tokens = _TokenCache(self.device_)
        todo = [(k, t) for k, t in zip(keys, texts) if k not in self._tokens.key_to_id]
        seen, uniq = set(), []
        for k, t in todo:
            if k not in seen:
                seen.add(k)
                uniq.append((k, t))
        if not uniq:
            return
        enc, tok, dev = self._load_encoder(), self._load_tokenizer(), self.device_
        t0 = time.perf_counter()
        ids = tok([t for _, t in uniq], truncation=True, max_length=self.params["max_length"])["input_ids"]
        order = np.argsort([len(x) for x in ids], kind="stable")
        bs = self.params["encode_batch_size"]
        out: list = [None] * len(uniq)
        for s in range(0, len(order), bs):
            idx = order[s : s + bs]
            batch = tok.pad({"input_ids": [ids[i] for i in idx]}, return_tensors="pt")
            am = batch["attention_mask"].to(dev)
            with self._autocast():
                h = enc(input_ids=batch["input_ids"].to(dev), attention_mask=am).last_hidden_state
            h = h.to(torch.float16)
            for j, i in enumerate(idx):
                out[i] = h[j][am[j].bool()]  # real tokens, whichever side the padding is on
        self._tokens.add([k for k, _ in uniq], out)
        dt = time.perf_counter() - t0
        self.stats_["encoded_prompts"] = self.stats_.get("encoded_prompts", 0) + len(uniq)
        self.stats_["encode_s"] = self.stats_.get("encode_s", 0.0) + dt
        self._log(f"encoded {len(uniq)} prompts in {dt:.1f}s")

    def _adapter_features(self, cache_ids: torch.Tensor, grad: bool) -> torch.Tensor:
        """Adapter features of token-cache ids, computed in chunks (float32 out)."""
        bs = self.params["adapter_batch_size"]
        outs = []
        with torch.set_grad_enabled(grad):
            for s in range(0, len(cache_ids), bs):
                ids = cache_ids[s : s + bs]
                x, m = self._tokens.gather(ids, torch.float32 if self.device_.type == "cpu" else torch.bfloat16)
                with self._autocast():
                    outs.append(self.adapter_(x, m).float())
        return torch.cat(outs, 0) if outs else torch.zeros(0, self.adapter_.out_dim, device=self.device_)

    # -- texts ----------------------------------------------------------------------------------
    @staticmethod
    def _index_texts(index, rows):
        texts = index.texts
        if texts is None or len(texts) != len(index.keys):
            raise V0liteError(
                "the 'neural' head reads prompt text, but the history index carries none "
                "(index.texts aligned with index.keys). Fix: use V0Regressor (it attaches texts for "
                "heads with needs_text=True), or set index.texts yourself."
            )
        return [texts[int(r)] for r in rows]

    # -- episodes -------------------------------------------------------------------------------
    @property
    def support_size_(self) -> int:
        k = self.params["support_size"]
        return int(k) if k is not None else (256 if self.device_.type == "cuda" else 64)

    def _time_budget(self):
        p = self.params
        if p["max_time_s"] is not None:
            return float(p["max_time_s"])
        return None if self.device_.type == "cuda" else float(p["cpu_time_s"])

    def _support_rows(self, index, code, emb, step, prow, exclude):
        k = self.support_size_
        if self.params["support"] == "similar":
            rows, _ = index.search(code, emb, step, prow, k, exclude)
            return rows
        return _recent_rows(index, code, step, prow, k, exclude)

    # -- features ---------------------------------------------------------------------------------
    @torch.no_grad()
    def _features_for(self, keys, texts) -> torch.Tensor:
        """Frozen (post-fit) features of prompts by key (float32, on the device); encodes new ones."""
        if any(k not in self._feat_keys for k in keys):
            # one appender at a time (two predicts of new prompts would both append at the same row and
            # lose one); inside, what is still missing is read again: another predict may have added it
            with writer_lock(self):
                self._freeze_features(keys, texts)
        # _freeze_features publishes the rows before the keys: every key read here has its row in _feats
        rows = torch.tensor([self._feat_keys[k] for k in keys], dtype=torch.long)
        return self._feats[rows].to(self.device_, torch.float32)

    def _freeze_features(self, keys, texts) -> None:
        """Encode the prompts of ``keys`` that have no frozen features yet and append theirs (writer lock held)."""
        missing = [i for i, k in enumerate(keys) if k not in self._feat_keys]
        if not missing:
            return
        mkeys, seen = [], set()
        mtexts = []
        for i in missing:
            if keys[i] in seen:
                continue
            seen.add(keys[i])
            mkeys.append(keys[i])
            if self._tokens is None or keys[i] not in self._tokens.key_to_id:
                if texts is None or texts[i] is None:
                    raise V0liteError(
                        "the 'neural' head needs the text of prompts it has not seen "
                        f"({len(missing)} prompts without text). Fix: set queries.texts / index.texts "
                        "(V0Regressor attaches them for heads with needs_text=True)."
                    )
            mtexts.append(None if texts is None else texts[i])
        need = [(k, t) for k, t in zip(mkeys, mtexts) if self._tokens is None or k not in self._tokens.key_to_id]
        if need:
            self._encode_into_cache([k for k, _ in need], [t for _, t in need])
        ids = torch.tensor([self._tokens.key_to_id[k] for k in mkeys], dtype=torch.long, device=self.device_)
        new = self._adapter_features(ids, grad=False).to("cpu", torch.float16)
        n0 = len(self._feat_keys)
        # published as new objects, rows first: a lock-free reader finds each key's row (see _features_for)
        self._feats = new if self._feats is None else torch.cat([self._feats, new], 0)
        self._feat_keys = {**self._feat_keys, **{k: n0 + j for j, k in enumerate(mkeys)}}

    # -- predict ------------------------------------------------------------------------------------
    def _check_fitted(self) -> None:
        if self.icl_ is None:
            raise NotFittedError("This NeuralHead is not fitted yet. Call 'fit' first.")

    def predict(self, index, queries, *, exclude: str = "same_step") -> np.ndarray:
        self._check_fitted()
        return self._predict(index, queries, exclude, self._features_for)

    @torch.no_grad()
    def predict_live(self, index, queries, *, exclude: str = "same_step") -> np.ndarray:
        """Predict during training (e.g. from ``step_hook``): features come straight from the
        token states, nothing is frozen into the feature cache; training mode is restored."""
        modes = (self.adapter_.training, self.icl_.training)
        self.adapter_.eval()
        self.icl_.eval()

        def live(keys, texts):
            if not keys:
                return torch.zeros(0, self.adapter_.out_dim, device=self.device_)
            if texts is not None:
                self._encode_into_cache(keys, texts)
            ids = torch.tensor([self._tokens.key_to_id[k] for k in keys], dtype=torch.long, device=self.device_)
            return self._adapter_features(ids, grad=False).to(torch.float16).float()

        try:
            return self._predict(index, queries, exclude, live)
        finally:
            self.adapter_.train(modes[0])
            self.icl_.train(modes[1])

    @torch.no_grad()
    def _predict(self, index, queries, exclude, features) -> np.ndarray:
        from ..embed import prompt_key
        from ..index import policy_prior

        p, dev = self.params, self.device_
        m = len(queries)
        out = np.full(m, np.nan)
        if m == 0:
            return out
        t0 = time.perf_counter()
        k = self.support_size_
        if p["support"] == "similar":
            rows, _ = index.search_queries(queries, k, exclude)
        else:
            rows = np.full((m, k), -1, np.int64)
            for code in np.unique(queries.policy):
                if code < 0:
                    continue
                qi = np.flatnonzero(queries.policy == code)
                rows[qi] = _recent_rows(index, int(code), queries.step[qi], queries.prompt_row[qi], k, exclude)
        valid = rows >= 0
        has = valid.any(1)
        # query prompt keys and texts
        qtexts = queries.texts
        qkeys = []
        for i in range(m):
            r = int(queries.prompt_row[i])
            if r >= 0:
                qkeys.append(index.keys[r])
            elif qtexts is not None:
                qkeys.append(prompt_key(qtexts[i]))
            else:
                raise V0liteError(
                    f"query {i} has a prompt outside the history and no text: the 'neural' head needs "
                    "queries.texts. Fix: use V0Regressor (it attaches texts), or set queries.texts."
                )
        q_text_list = list(qtexts) if qtexts is not None else [None] * m
        idx_texts = index.texts
        for i in range(m):  # a known prompt's text can also come from the index
            if q_text_list[i] is None and idx_texts is not None and queries.prompt_row[i] >= 0:
                q_text_list[i] = idx_texts[int(queries.prompt_row[i])]
        sup_prow = np.unique(index.prompt_row[rows[valid]])
        s_keys = [index.keys[int(r)] for r in sup_prow]
        s_texts = None
        if idx_texts is not None and len(idx_texts) == len(index.keys):
            s_texts = [idx_texts[int(r)] for r in sup_prow]
        qf_all = features(qkeys, q_text_list)
        sf_tab = features(s_keys, s_texts)
        pos = np.full(len(index.keys), -1, np.int64)
        pos[sup_prow] = np.arange(len(sup_prow))
        srow_pos = np.where(valid, pos[index.prompt_row[np.maximum(rows, 0)]], 0)
        sy_all = np.where(valid, index.score[np.maximum(rows, 0)], 0.0)
        if p["icl"] == "tabpfn":
            probs = _predict_tabpfn(qf_all, sf_tab, srow_pos, sy_all, valid, self.device_)
        else:
            probs = np.full(m, np.nan)
            bs = p["predict_batch_size"]
            with self._autocast():
                q_tok = self.icl_.embed(qf_all)
                s_tok = self.icl_.embed(sf_tab) if len(sf_tab) else q_tok.new_zeros(1, q_tok.shape[1])
            for s in range(0, m, bs):
                sl = slice(s, min(m, s + bs))
                sp = torch.from_numpy(srow_pos[sl]).to(dev)
                sy = torch.from_numpy(sy_all[sl]).float().to(dev)
                sv = torch.from_numpy(valid[sl]).to(dev)
                with self._autocast():
                    logit = self.icl_(s_tok[sp], sy, sv, q_tok[sl].unsqueeze(1)).float().squeeze(1)
                probs[sl] = torch.sigmoid(logit).cpu().numpy()
        out = np.where(has, probs, np.nan)
        if (~has).any():  # nothing to read: the policy prior (NaN where nothing is eligible)
            out[~has] = policy_prior(index, queries.subset(np.flatnonzero(~has)))
        self.stats_["predict_s"] = time.perf_counter() - t0
        self.stats_["predict_rows"] = m
        return np.clip(out, 0.0, 1.0)

    # -- persistence ----------------------------------------------------------------------------------
    def save(self, path: Path) -> dict:
        """Write ``neural.safetensors`` (adapter + head), the frozen history features and, for a
        config-built encoder, ``encoder.safetensors``; return JSON-able metadata."""
        self._check_fitted()
        from safetensors.torch import save_file

        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        state = {f"adapter.{k}": v.detach().to("cpu").contiguous() for k, v in self.adapter_.state_dict().items()}
        state.update({f"icl.{k}": v.detach().to("cpu").contiguous() for k, v in self.icl_.state_dict().items()})
        save_file(state, str(path / "neural.safetensors"))
        files = ["neural.safetensors", "features.safetensors", "feature_keys.json"]
        keys = sorted(self._feat_keys, key=self._feat_keys.get)
        feats = self._feats if self._feats is not None else torch.zeros(0, self.adapter_.out_dim, dtype=torch.float16)
        save_file({"features": feats.contiguous()}, str(path / "features.safetensors"))
        (path / "feature_keys.json").write_text(json.dumps(keys), "utf-8")
        if self.params["encoder_config"] is not None:
            enc = self.encoder_
            if enc is None:  # loaded head whose encoder was never needed: copy the weights file over
                from safetensors.torch import load_file

                enc_state = load_file(str(self._encoder_path))
            else:
                enc_state = {k: v.detach().to("cpu").contiguous() for k, v in enc.state_dict().items()}
            save_file(_dedup(enc_state), str(path / "encoder.safetensors"))
            files.append("encoder.safetensors")
        return {
            "format": _FORMAT,
            "params": to_jsonable(self.params, default=str),
            "hidden_size": self.hidden_size_,
            "feature_dim": int(self.adapter_.out_dim),
            "n_features": len(keys),
            "files": files,
            "encoder": self.params["encoder_model"] or (None if self.params["encoder_config"] else _DEFAULT_ENCODER),
        }

    @classmethod
    def load(cls, path: Path, meta: dict) -> "NeuralHead":
        from safetensors.torch import load_file

        if meta.get("format", 1) > _FORMAT:
            from ..exceptions import FormatVersionError

            raise FormatVersionError(
                f"{path}: neural head format {meta.get('format')} is newer than this v0lite reads ({_FORMAT})."
            )
        path = Path(path)
        head = cls(**meta["params"])
        head.hidden_size_ = int(meta["hidden_size"])
        head._build_trainable(head.hidden_size_)
        state = load_file(str(path / "neural.safetensors"), device=str(head.device_))
        head.adapter_.load_state_dict({k[8:]: v for k, v in state.items() if k.startswith("adapter.")})
        head.icl_.load_state_dict({k[4:]: v for k, v in state.items() if k.startswith("icl.")})
        head.adapter_.eval()
        head.icl_.eval()
        keys = json.loads((path / "feature_keys.json").read_text("utf-8"))
        head._feats = load_file(str(path / "features.safetensors"))["features"]
        head._feat_keys = {k: i for i, k in enumerate(keys)}
        # only a listed file (checksummed by the model folder): a stray encoder.safetensors is never read
        listed = "encoder.safetensors" in meta.get("files", ())
        head._encoder_path = path / "encoder.safetensors" if listed else None
        return head


# --------------------------------------------------------------------------- helpers
