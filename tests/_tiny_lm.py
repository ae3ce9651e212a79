"""A tiny local language model for the trainer tests: no downloads.

A word-level tokenizer trained on the test's own texts, and a random-init 2-layer Llama built
from a config; the TRL run, verl's dataset and verl's ``main_ppo`` share them.
"""

from __future__ import annotations

#: a chat template that renders every message as "role content " (verl applies one to chat prompts)
CHAT_TEMPLATE = "{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"


def tiny_tokenizer(texts, *, eos: bool = True, chat: bool = True):
    """A ``PreTrainedTokenizerFast`` over the words of ``texts`` ([UNK], [PAD] and, with ``eos``, [EOS])."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["[UNK]", "[PAD]", "[EOS]"] if eos else ["[UNK]", "[PAD]"]
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator(list(texts), trainers.WordLevelTrainer(special_tokens=special))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", **({"eos_token": "[EOS]"} if eos else {})
    )
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast


def tiny_llama(tok, *, max_positions: int = 256):
    """A random-init 2-layer Llama (hidden 32) for ``tok``, seeded."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(cfg)
