"""Request mixes: the input and output lengths of the requests a serving benchmark sends.

Real traffic is not one prompt length. A mix is named by one string, the value of an
endpoint backend's ``request_mix`` option:

* ``fixed`` (the default): every request has the workload's ``prompt_tokens`` and
  ``new_tokens``;
* ``uniform:R``: each length uniform on ``[L (1 - R), L (1 + R)]``, ``0 <= R < 1``
  (``vllm bench serve --random-range-ratio``'s definition; InferenceX's fork of the older
  client draws ``[R L, L]`` instead, so its ``0.8`` is ``uniform:0.11`` here);
* ``normal:CV`` and ``lognormal:CV``: lengths with mean ``L`` and coefficient of
  variation ``CV`` (lognormal's long tail is the shape of chat traffic);
* ``trace:FILE``: the (input, output) pairs of a CSV file with ``input_tokens`` and
  ``output_tokens`` columns, or a JSONL file of objects with those keys, in order.

Synthetic lengths are rounded, at least 1, and adjusted so that the drawn pool's mean is
exactly ``L``: the workload's lengths name the mix's means in the record, so a trace's means
must match them within 1% (:func:`trace_mismatch` says which ``-p`` values to give). A run
uses a prefix of the pool, so the record's throughput counts the tokens the server says it
served (harness/results/derive.py), not requests x ``new_tokens``. Lengths are drawn before the
run, never inside a timed request. Pure functions and one file reader; nothing heavy.
"""

from __future__ import annotations

import csv
import json
import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

MIXES = ("fixed", "uniform", "normal", "lognormal", "trace")
#: The longest trace read (rows); beyond it a trace is a dataset, not a mix.
MAX_TRACE_ROWS = 1_000_000


@dataclass(frozen=True)
class RequestMix:
    """A parsed ``request_mix`` value."""

    kind: str = "fixed"
    spread: float = 0.0
    trace: tuple[tuple[int, int], ...] = ()
    source: str | None = None

    def describe(self) -> str:
        if self.kind == "fixed":
            return "fixed lengths"
        if self.kind == "uniform":
            return f"uniform lengths, range ratio {self.spread:g}"
        if self.kind in ("normal", "lognormal"):
            return f"{self.kind} lengths, coefficient of variation {self.spread:g}"
        return f"trace {self.source} ({len(self.trace)} requests)"

    def lengths(self, prompt_tokens: int, new_tokens: int, count: int,
                rng: random.Random) -> list[tuple[int, int]]:
        """``count`` (input, output) pairs: the trace's in order (cycled), else drawn."""
        if self.kind == "trace":
            return [self.trace[i % len(self.trace)] for i in range(count)]
        return list(zip(self._draw(prompt_tokens, count, rng), self._draw(new_tokens, count, rng)))

    def _draw(self, mean: int, count: int, rng: random.Random) -> list[int]:
        if mean < 1:
            raise ValueError(f"a request mix needs lengths of at least 1 token, not {mean}")
        if self.kind == "fixed" or self.spread == 0:
            return [mean] * count
        if self.kind == "uniform":
            low, high = mean * (1 - self.spread), mean * (1 + self.spread)
            values = [rng.uniform(low, high) for _ in range(count)]
        elif self.kind == "normal":
            values = [rng.gauss(mean, self.spread * mean) for _ in range(count)]
        else:
            sigma = math.sqrt(math.log(1 + self.spread ** 2))
            values = [rng.lognormvariate(math.log(mean) - sigma ** 2 / 2, sigma) for _ in range(count)]
        lengths = [max(1, round(v)) for v in values]
        return _with_mean(lengths, mean, rng)


def _with_mean(lengths: list[int], mean: int, rng: random.Random) -> list[int]:
    """``lengths`` nudged one token at a time (never below 1) until their mean is exactly ``mean``."""
    excess = sum(lengths) - mean * len(lengths)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    position = 0
    while excess != 0:
        index = order[position % len(order)]
        position += 1
        if excess > 0 and lengths[index] > 1:
            lengths[index] -= 1
            excess -= 1
        elif excess < 0:
            lengths[index] += 1
            excess += 1
    return lengths


def parse_mix(text: str) -> RequestMix:
    """``uniform:0.8`` as a :class:`RequestMix`; ``ValueError`` with what is allowed otherwise."""
    kind, _, argument = str(text).partition(":")
    if kind not in MIXES:
        raise ValueError(f"request_mix {text!r}: allowed fixed, uniform:R, normal:CV, lognormal:CV, trace:FILE")
    if kind == "fixed":
        if argument:
            raise ValueError(f"request_mix {text!r}: fixed takes no argument")
        return RequestMix()
    if kind == "trace":
        if not argument:
            raise ValueError("request_mix trace: needs a file, e.g. trace:requests.jsonl")
        return RequestMix("trace", trace=tuple(read_trace(argument)), source=argument)
    try:
        spread = float(argument)
    except ValueError:
        raise ValueError(f"request_mix {text!r}: {kind} needs a number, e.g. {kind}:0.5") from None
    if kind == "uniform" and not 0 <= spread < 1:
        raise ValueError(f"request_mix {text!r}: the range ratio must be >= 0 and < 1")
    # A normal spread past 1 is mostly clipped at one token; a lognormal past 4 is a spike and a tail.
    top = 1 if kind == "normal" else 4
    if kind != "uniform" and not 0 <= spread <= top:
        raise ValueError(f"request_mix {text!r}: the coefficient of variation must be between 0 and {top}")
    return RequestMix(kind, spread)


def _trace_rows(path: str, keys: Sequence[str]):
    """(line, row) of a CSV or JSONL trace whose rows have ``keys``; ``ValueError`` naming the
    file and what is missing."""
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"trace {path}: no such file")
    with file.open(encoding="utf-8", newline="") as handle:
        if file.suffix.lower() == ".csv":
            reader = csv.DictReader(handle)
            missing = set(keys) - set(reader.fieldnames or ())
            if missing:
                raise ValueError(f"{path}: the header lacks {', '.join(sorted(missing))} "
                                 f"(has: {', '.join(reader.fieldnames or ()) or 'nothing'})")
            rows = ((line, row) for line, row in enumerate(reader, start=2))
        else:
            rows = ((line, _json_row(path, line, text)) for line, text in enumerate(handle, start=1) if text.strip())
        count = 0
        for line, row in rows:
            count += 1
            if count > MAX_TRACE_ROWS:
                raise ValueError(f"{path}: more than {MAX_TRACE_ROWS:,} requests; sample it down")
            yield line, row
    if count == 0:
        raise ValueError(f"{path}: no requests in the trace")


def read_trace(path: str) -> list[tuple[int, int]]:
    """(input, output) token pairs of a CSV or JSONL trace; ``ValueError`` naming the file, line and key."""
    return [(_length(path, line, row, "input_tokens"), _length(path, line, row, "output_tokens"))
            for line, row in _trace_rows(path, ("input_tokens", "output_tokens"))]


def read_arrivals(path: str) -> list[float]:
    """The ``arrival_s`` of every request of a trace (seconds from its start, in order), for the
    server scenario's ``arrival = "trace"``; ``ValueError`` naming the file, line and value."""
    arrivals = []
    for line, row in _trace_rows(path, ("arrival_s",)):
        value = row.get("arrival_s")
        try:
            number = float(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            number = None
        if number is None or not math.isfinite(number) or number < 0:
            raise ValueError(f"{path}:{line}: arrival_s = {value!r}: must be seconds >= 0")
        if arrivals and number < arrivals[-1]:
            raise ValueError(f"{path}:{line}: arrival_s = {value!r} is before the line above it ({arrivals[-1]:g})")
        arrivals.append(number)
    return arrivals


def _json_row(path: str, line: int, text: str) -> dict:
    try:
        row = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{line}: not JSON ({exc.msg})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{path}:{line}: each line must be an object with input_tokens and output_tokens")
    return row


def _length(path: str, line: int, row: dict, key: str) -> int:
    value = row.get(key)
    try:
        number = int(value) if not isinstance(value, bool) and float(value) == int(float(value)) else None
    except (TypeError, ValueError, OverflowError):
        number = None
    if number is None or number < 1:
        raise ValueError(f"{path}:{line}: {key} = {value!r}: must be a whole number of tokens >= 1")
    return number


def trace_mismatch(trace: Sequence[tuple[int, int]], prompt_tokens: int, new_tokens: int) -> str | None:
    """Why a trace does not fit the workload's lengths (its means differ by more than 1%), else None."""
    inputs = sum(i for i, _ in trace) / len(trace)
    outputs = sum(o for _, o in trace) / len(trace)
    if abs(inputs - prompt_tokens) > 0.01 * prompt_tokens or abs(outputs - new_tokens) > 0.01 * new_tokens:
        return (f"the trace's mean lengths are {inputs:.1f} in, {outputs:.1f} out: run it with "
                f"-p prompt_tokens={round(inputs)} -p new_tokens={round(outputs)} (the workload's lengths name the "
                "mix's means in the record)")
    return None
