"""A small tokenizer built from a caption vocabulary, for small text encoders trained or initialised here.

Wan's UMT5 tokenizer has 256k tokens; a small model trained on a closed caption vocabulary does better with a
word-level vocabulary of its own. The result is a ``transformers.PreTrainedTokenizerFast`` that saves and loads with
``AutoTokenizer`` like any other, pads with ``<pad>`` (id 0, as UMT5) and ends every caption with ``</s>``.
"""

from __future__ import annotations

from collections.abc import Iterable

PAD_TOKEN, EOS_TOKEN, UNK_TOKEN = "<pad>", "</s>", "<unk>"


def build_caption_tokenizer(captions: Iterable[str], max_vocab_size: int = 4096, model_max_length: int = 512):
    """A lower-cased word-level tokenizer over the words of ``captions`` (punctuation split off)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from tokenizers.trainers import WordLevelTrainer
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(WordLevel(unk_token=UNK_TOKEN))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace(), pre_tokenizers.Punctuation()])
    trainer = WordLevelTrainer(vocab_size=max_vocab_size, special_tokens=[PAD_TOKEN, EOS_TOKEN, UNK_TOKEN])
    tokenizer.train_from_iterator(list(captions), trainer=trainer)
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS_TOKEN}", pair=f"$A {EOS_TOKEN} $B {EOS_TOKEN}", special_tokens=[(EOS_TOKEN, eos_id)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token=PAD_TOKEN,
        eos_token=EOS_TOKEN,
        unk_token=UNK_TOKEN,
        model_max_length=model_max_length,
    )
