"""Tokenizers: the model's own, or a small byte-level BPE trained in seconds.

Why train one: models trained from scratch on the bundled corpus do not need (and should not
download) a 50k-entry vocabulary. The result is a plain ``PreTrainedTokenizerFast`` with BART's
special tokens at BART's ids (<s>=0, <pad>=1, </s>=2, <unk>=3, <mask>=4), so BART configs and
``AutoTokenizer.from_pretrained(saved_dir)`` work offline.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors
from tokenizers.trainers import BpeTrainer
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

BART_SPECIAL_TOKENS = ("<s>", "<pad>", "</s>", "<unk>", "<mask>")


def _special(token: str) -> AddedToken:
    # lstrip on <mask>: "word <mask>" puts the space inside the mask, as BART's tokenizer does.
    return AddedToken(token, lstrip=token == "<mask>", rstrip=False, normalized=False, special=True)


def _non_empty(texts: Iterable[str]) -> Iterator[str]:
    for text in texts:
        if text and text.strip():
            yield text


def train_bpe_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 4000,
    min_frequency: int = 2,
    *,
    model_max_length: int = 1024,
) -> PreTrainedTokenizerFast:
    """Train a RoBERTa/BART-style byte-level BPE on ``texts``.

    Byte-level means no <unk> at encode time and lossless decoding of any UTF-8 (accents).
    Sequences are wrapped as ``<s> … </s>`` like BART's tokenizer.
    """
    if vocab_size < len(BART_SPECIAL_TOKENS) + 256:
        raise ValueError(
            f"vocab_size={vocab_size} is too small: a byte-level BPE needs at least "
            f"{len(BART_SPECIAL_TOKENS) + 256} entries (256 bytes + 5 special tokens)."
        )
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=[_special(t) for t in BART_SPECIAL_TOKENS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    seen = 0

    def counted() -> Iterator[str]:
        nonlocal seen
        for text in _non_empty(texts):
            seen += 1
            yield text

    tok.train_from_iterator(counted(), trainer=trainer)
    if seen == 0:
        raise ValueError("train_bpe_tokenizer got no non-empty texts to learn from.")
    ids = {t: tok.token_to_id(t) for t in BART_SPECIAL_TOKENS}
    # Positional (sep, cls): keyword names are not accepted by every tokenizers release.
    tok.post_processor = processors.RobertaProcessing(
        ("</s>", ids["</s>"]), ("<s>", ids["<s>"]), trim_offsets=True, add_prefix_space=False
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<s>",
        eos_token="</s>",
        sep_token="</s>",
        cls_token="<s>",
        unk_token="<unk>",
        pad_token="<pad>",
        mask_token=_special("<mask>"),
        model_max_length=model_max_length,
        clean_up_tokenization_spaces=False,
    )


def resolve_tokenizer(
    model_name_or_path: str | None = None,
    *,
    texts: Iterable[str] | None = None,
    vocab_size: int = 4000,
    min_frequency: int = 2,
) -> PreTrainedTokenizerBase:
    """The pretrained model's own tokenizer when a name/path is given, else a fresh BPE."""
    if model_name_or_path is not None:
        return AutoTokenizer.from_pretrained(model_name_or_path)
    if texts is None:
        raise ValueError(
            "resolve_tokenizer needs either model_name_or_path (use the model's tokenizer) "
            "or texts (train a byte-level BPE from scratch)."
        )
    return train_bpe_tokenizer(texts, vocab_size=vocab_size, min_frequency=min_frequency)
