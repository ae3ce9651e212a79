"""``v0lite embed DATASET``: embed a training set ahead of an RL run (the cache the trainer then reads)."""

from __future__ import annotations

from ._common import (
    ENCODER_MOVED_HELP,
    add_progress_flags,
    check_input,
    check_model_dir,
    encoder_flag,
    progress,
    read_frame,
)

MESSAGES = ("all", "user", "last_user")  # v0lite.rl.integrations.prompt_text's choices


def _read_prompts(path: str, column: str, messages: str) -> list[str]:
    from ..exceptions import DataError
    from ..log import is_blank
    from ..rl.integrations._common import prompt_text

    # read as every command reads its input: empty and UTF-16 files, a bad JSON line, a bare NaN named
    df = read_frame(path, "DATASET", holds=f"a training set with a {column!r} column")
    if column not in df.columns:
        raise DataError(
            f"DATASET {path}: no column {column!r} (columns: {df.columns}). Fix: --prompt-key COLUMN "
            "(verl's data.prompt_key)."
        )
    texts = []
    for row, value in enumerate(df[column].to_list()):
        if value is None:  # the column is right, the row's value is missing
            raise DataError(
                f"DATASET {path}: column {column!r}, row {row}: has no prompt (null). Fix: give that row its "
                "prompt, or remove the row."
            )
        try:
            text = prompt_text(value, messages)
        except TypeError as exc:
            raise DataError(
                f"DATASET {path}: column {column!r}, row {row}: {str(value)[:60]!r} is neither text nor chat "
                "messages. Fix: --prompt-key COLUMN naming the prompt column."
            ) from exc
        if is_blank(text):  # fit refuses it too: an empty prompt says nothing to the value model
            raise DataError(
                f"DATASET {path}: column {column!r}, row {row}: value {str(value)[:60]!r} is empty or whitespace"
                f"{'' if isinstance(value, str) else f' (its --messages {messages} text)'} (invisible format "
                "characters such as U+200B zero-width space count as whitespace). Fix: give every row a non-empty "
                "prompt, or remove that row."
            )
        texts.append(text)
    if not texts:
        raise DataError(f"DATASET {path}: has no rows. Fix: pass the training set with its prompts.")
    return texts


def _embed(args) -> int:
    from ..embed import default_cache_dir
    from ..estimator import V0Regressor

    check_input(args.dataset, "DATASET")
    texts = _read_prompts(args.dataset, args.prompt_key, args.messages)  # the input's errors before the load
    if args.device and args.device != "cpu":  # checked even when every prompt is cached (the encoder never loads)
        _check_device(args.device)
    model = V0Regressor.load(check_model_dir(args.model_dir), encoder=args.encoder, device=args.device)
    model.set_params(show_progress_bar=progress(args))
    unique = list(dict.fromkeys(texts))
    # built now, so its disk cache is read below; its encoder checked first (a moved folder: its fix, not a bare path)
    model._check_encoder(model._get_embedder())
    ready = model._n_cached(unique, read_disk=True)
    model.warm(unique)
    where = "disabled" if model.cache_dir is False else (model.cache_dir or default_cache_dir())
    print(
        f"{len(unique):,} unique prompts of {len(texts):,} rows: {len(unique) - ready:,} embedded now, {ready:,} "
        f"already in the history or the cache; encoder {model.encoder_id_}; cache: {where}"
    )
    return 0


def _check_device(device: str) -> None:
    """``--device`` as torch reads it, present on this machine and able to compute (a tiny tensor made on it);
    torch's refusal is the encoder's own error, in flag terms."""
    import torch  # only here: `v0lite --help` and a run without --device never import it

    from ..embed import _device_error

    try:
        d = torch.device(device)
        if d.type == "meta":  # tensors without data: the encoder's first .item() fails
            raise RuntimeError("'meta' tensors hold no data, it is not a device to compute on")
        if d.type == "cuda" and (not torch.cuda.is_available() or (d.index or 0) >= torch.cuda.device_count()):
            raise RuntimeError(f"CUDA device {str(d)!r} is not available")
        if d.type == "mps" and not torch.backends.mps.is_available():
            raise RuntimeError("MPS (Apple-silicon GPU) is not available on this machine")
        float(torch.ones(1, device=d).sum().item())  # the device exists and computes
    except Exception as exc:  # RuntimeError, ValueError, AssertionError (a torch built without it), ...
        raise _device_error(device, exc) from None


def register(sub) -> None:
    p = sub.add_parser(
        "embed",
        help="embed a training set's prompts ahead of an RL run",
        description="Embed every prompt of DATASET with the encoder of the model in --model-dir, into the "
        "embedding cache, so the trainer's first plan reads vectors instead of running the encoder "
        "(RolloutPlanner.warm on the command line).",
    )
    p.add_argument("dataset", metavar="DATASET", help="training set: .parquet (verl's format), .jsonl or .csv")
    p.add_argument("--model-dir", required=True, metavar="DIR", help="folder of a model saved by `v0lite fit`")
    p.add_argument(
        "--prompt-key", default="prompt", metavar="COLUMN", help="the prompt column (default 'prompt', as in verl)"
    )
    p.add_argument(
        "--messages",
        choices=MESSAGES,
        default="all",
        help="chat prompts: which messages' contents the value model reads; use the adapter's setting "
        "(data.v0lite.messages / messages=) so the cached texts are the ones it predicts (default 'all')",
    )
    p.add_argument("--device", metavar="DEVICE", help="torch device of the encoder, e.g. cuda (default: automatic)")
    encoder_flag(p, ENCODER_MOVED_HELP.format(what=""))
    add_progress_flags(p)
    p.set_defaults(func=_embed, inputs=("model_dir", "dataset"))
