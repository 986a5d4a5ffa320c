"""Synthetic prompts of an exact token count, for serving endpoints.

``prompt_tokens`` means tokens of the served model's tokenizer, counted as the
server counts them (its special tokens included). Words are a poor proxy: 128
words like ``w123456789`` were 533-561 tokens to a real Llama tokenizer. So the
prompt is built from words whose token counts were measured with one of, in
order:

1. the server's own ``/tokenize`` (vLLM and SGLang take ``{"model", "prompt"}``,
   llama.cpp ``{"content"}``; ``bakeoff serve`` answers both);
2. a local tokenizer file given by option (``tokenizer.json`` or a Hugging Face
   tokenizer folder, read with the ``tokenizers`` library);
3. the server's ``usage.prompt_tokens`` on one-token probe requests (slower:
   each count is a request, so a smaller word pool is used).

Whitespace-separated words tokenize independently in byte-level BPE and
SentencePiece tokenizers, so a prompt of words ``w1 ... wn`` has
``specials + c1 + ... + cn`` tokens. That is checked on whole prompts before it
is trusted; where it does not hold the prompts are labelled estimates, and the
run compares them with the server's count anyway (a note above 1% deviation).

Every request gets a fresh prompt (a new random word sequence), so no prefix
cache can turn prefill into a lookup, and nothing on the request path calls
the tokenizer: a word sequence is drawn in microseconds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

#: Common English words, single tokens for most vocabularies; the pool the prompts draw from.
WORDS = (
    "the of and to in is was for on that with as by at from his her an which are be this had not "
    "but have were they one all their there been has when who will more no if out so said what up "
    "its about into than them can only other new some could time these two may then do first any "
    "my now such like our over man me even most made after also did many before must through back "
    "years where much your way well down should because each just those people how too little state "
    "good very make world still own see men work long get here between both life being under never "
    "day same another know while last might us great old year off come since against go came right "
    "used take three small large place again home water room mother area money story fact month lot "
    "study book eye job word business issue side kind head house service friend father power hour "
    "game line end member law car city community name president team minute idea kid body information "
    "back parent face others level office door health person art war history party result change morning"
).split()

#: How many words to measure when each count is a request to the server (calibration).
CALIBRATION_WORDS = 24

Count = Callable[[str], int]


class PromptBuilder:
    """Draws prompts of ``target`` tokens from word counts measured with ``count``."""

    def __init__(self, count: Count, source: str, *, slow: bool = False) -> None:
        self.source = source
        pool = list(dict.fromkeys(WORDS))[: CALIBRATION_WORDS if slow else None]
        first, second = pool[0], pool[1]
        # One word alone has specials + c1 tokens; two have specials + c1 + c2.
        one, other, both = count(f" {first}"), count(f" {second}"), count(f" {first} {second}")
        self.specials = max(0, one + other - both)
        self.costs = {word: count(f" {word}") - self.specials for word in pool}
        self.costs = {word: cost for word, cost in self.costs.items() if cost > 0}
        self.singles = [word for word, cost in self.costs.items() if cost == 1]
        self.words = list(self.costs)
        self.exact = bool(self.singles)

    def build(self, target: int, rng: random.Random) -> str:
        """A prompt of ``target`` tokens (specials included) as this builder counts them."""
        remaining = target - self.specials
        words: list[str] = []
        while remaining > 0:
            word = rng.choice(self.words)
            cost = self.costs[word]
            if cost > remaining:
                if not self.singles:
                    break
                word, cost = rng.choice(self.singles), 1
            words.append(word)
            remaining -= cost
        return "".join(f" {word}" for word in words)

    def verify(self, count: Count, target: int, rng: random.Random, prompts: int = 3) -> list[int]:
        """Counts of a few whole prompts: equal to ``target`` when token counts add up as assumed."""
        return [count(self.build(target, rng)) for _ in range(prompts)]


def local_tokenizer(path: str) -> Count:
    """A counter from a ``tokenizer.json`` file or a folder holding one (the ``tokenizers`` library)."""
    try:
        from tokenizers import Tokenizer
    except ImportError as exc:  # pragma: no cover - tokenizers comes with bakeoff[serve]
        raise RuntimeError("the tokenizer option needs the tokenizers package: pip install 'bakeoff[serve]'") from exc
    file = Path(path)
    if file.is_dir():
        file = file / "tokenizer.json"
    if not file.is_file():
        raise ValueError(f"tokenizer {path!r}: no tokenizer.json there")
    tokenizer = Tokenizer.from_file(str(file))
    return lambda text: len(tokenizer.encode(text).ids)
