"""Greedy generation over a functional KV-cache model, shared by every backend.

A backend supplies ``call(input_ids, past_key, past_value) -> (next_token,
logits, present_key, present_value)`` in its own array type; this loop feeds
the greedy token and the cache back in. ``mark`` is the runner's: it
synchronizes the device and timestamps the token just produced, so TTFT and
inter-token latencies are measured by the runner's clock, not the backend's.
"""

from __future__ import annotations

from typing import Any, Callable

Call = Callable[[Any, Any, Any], tuple[Any, Any, Any, Any]]


def greedy_generate(call: Call, prompt: Any, past_key: Any, past_value: Any, new_tokens: int,
                    *, concat: Callable[[list[Any]], Any], mark: Callable[[], None] | None = None,
                    decode_call: Call | None = None,
                    on_token: Callable[[Any], None] | None = None) -> tuple[Any, Any]:
    """Prefill ``prompt`` (yielding token 1), then decode ``new_tokens - 1`` more.

    ``decode_call`` runs the decode steps when a runtime compiles prefill and
    decode as separate graphs. ``on_token`` receives each token as it is made
    (a server streams it). Returns the generated tokens ``[B, new_tokens]`` and
    the prefill's last-position logits.
    """
    token, first_logits, key, value = call(prompt, past_key, past_value)
    tokens = [token]
    step = decode_call or call
    while True:
        if mark is not None:
            mark()
        if on_token is not None:
            on_token(token)
        if len(tokens) == new_tokens:
            break
        token, _, key, value = step(token, key, value)
        tokens.append(token)
    return concat(tokens), first_logits


class GenerativePrepared:
    """Mixin body for a backend's prepared generative workload.

    A backend builds ``prefill_call``/``decode_call`` in its own array type
    and hands them here; the runner then calls :meth:`step_streaming` with its
    ``mark`` to timestamp every token. ``to_numpy`` converts the backend's
    arrays for the parity check.
    """

    def init_generation(self, prefill_call: Call, decode_call: Call, prompt: Any, past_key: Any,
                        past_value: Any, new_tokens: int, concat: Callable[[list[Any]], Any],
                        to_numpy: Callable[[Any], Any], from_numpy: Callable[[Any], Any] | None = None) -> None:
        self._from_numpy = from_numpy or (lambda array: array)
        self._prefill, self._decode = prefill_call, decode_call
        self._prompt, self._past_key, self._past_value = prompt, past_key, past_value
        self._new_tokens, self._concat, self._to_numpy = new_tokens, concat, to_numpy
        self._tokens = self._first_logits = None

    def step_streaming(self, mark: Callable[[], None]) -> None:
        self._tokens, self._first_logits = greedy_generate(
            self._prefill, self._prompt, self._past_key, self._past_value, self._new_tokens,
            concat=self._concat, mark=mark, decode_call=self._decode,
        )

    def step(self) -> None:
        self.step_streaming(lambda: None)

    def generate(self, prompt_ids: Any, max_tokens: int, on_token: Callable[[int], None]) -> None:
        """Greedy generation from any prompt (numpy int64 ``[1, T]``), for ``bakeoff serve``.

        ``on_token`` receives each token id as it is produced (reading it back to
        the host synchronizes the device), so a server can stream it at once.
        """
        greedy_generate(self._prefill, self._from_numpy(prompt_ids), self._past_key, self._past_value, max_tokens,
                        concat=self._concat, decode_call=self._decode,
                        on_token=lambda token: on_token(int(self._to_numpy(token).reshape(-1)[0])))

    def outputs(self):
        if self._tokens is None:
            return None
        return [self._to_numpy(self._tokens), self._to_numpy(self._first_logits).astype("float32")]
