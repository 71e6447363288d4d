"""A real Hugging Face tokenizer for tests, built offline (no download) and saved like a checkpoint's."""

from __future__ import annotations

from pathlib import Path


def save_word_tokenizer(path: Path) -> Path:
    """A real (word-level) Hugging Face tokenizer built offline and saved like a checkpoint's."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    words = "Question Answer: So, the answer is apples has more How many ? . + - = " + " ".join(
        map(str, range(100))
    )
    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.train_from_iterator([words], trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]))
    PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", eos_token="</s>").save_pretrained(path)
    return path
