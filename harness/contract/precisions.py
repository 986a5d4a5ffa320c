"""The precision registry: every dtype bakeoff knows by name, and what it costs in bytes.

A precision is more than a tensor dtype. Weight-only formats (``int4``, llama.cpp's
``q4_0``) keep activations in float but stream far fewer bytes per weight, and decode is
bound by those bytes, so each precision declares its **bits per weight**, scales
included: the roofline and the weight bytes of a record use them, not a float width.

Nominal bits come from the format's own layout (cited per entry). A runtime may store
some tensors differently (llama.cpp keeps small or odd-shaped tensors at a wider type,
and its ``_K_M`` mixes are per-tensor choices), so a backend that can read what it
stored reports the real bytes (capability ``StoredWeights``), and the record says which
it used.

Backends say which precisions they run (capability ``DeclaresPrecisions``); one that
says nothing runs :data:`CLASSIC_PRECISIONS`, the four every built-in backend always
took. Anything else is recorded ``unsupported`` before a worker starts, naming the
runtimes that do run it.

No imports beyond the standard library: the registry is read while listing and planning.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.contract.errors import UserError


@dataclass(frozen=True)
class Precision:
    """One named precision.

    ``tensor_dtype`` is the torch dtype the workload's module and inputs are built in
    (weight-only formats quantize a float32 module); ``activation_bytes`` is that
    width; ``bits_per_weight`` is what one stored weight costs, scales included.
    The tolerance a backend's output is held to against the torch float32 reference is
    harness/engine/parity.py's ``TOLERANCES[name]`` (docs/measurement.md lists them).
    """

    name: str
    bits_per_weight: float
    tensor_dtype: str
    description: str
    layout: str
    #: "float" (the device computes at this width: float32 ... fp8), "weight-only" (stored weights
    #: quantized, unpacked by the runtime's kernels) or "dynamic" (int8 weights, activations
    #: quantized on the fly).
    kind: str
    #: Runtimes known to implement the format, named for the reason a refusal gives.
    runtimes: tuple[str, ...] = ()

    @property
    def weight_bytes_per_parameter(self) -> float:
        return self.bits_per_weight / 8

    @property
    def activation_bytes(self) -> int:
        return {"float32": 4, "float16": 2, "bfloat16": 2}[self.tensor_dtype]


PRECISIONS: dict[str, Precision] = {p.name: p for p in (
    Precision("float32", 32, "float32", "IEEE single", "one float32 per weight", "float"),
    Precision("float16", 16, "float16", "IEEE half", "one float16 per weight", "float"),
    Precision("bfloat16", 16, "bfloat16", "bfloat16 (8-bit exponent)", "one bfloat16 per weight", "float"),
    Precision("int8", 8, "float32", "int8 dynamic quantization of linear weights",
              "one int8 per weight, a float scale per output channel (counted as negligible)", "dynamic"),
    Precision("int4", 4.5, "float32", "int4 weight-only, group-wise (ONNX MatMulNBits, NNCF INT4)",
              "4-bit weights in groups of 32 with one scale per group: 4 + 16/32 = 4.5 bits with a 16-bit "
              "scale (5 with ORT's float32 scales), so the stored bytes are read from the model",
              "weight-only",
              ("onnxruntime-genai", "openvino-genai")),
    Precision("q8_0", 8.5, "float32", "llama.cpp GGUF Q8_0",
              "blocks of 32 int8 weights + one float16 scale: 34 bytes / 32 = 8.5 bits (ggml-common.h block_q8_0)",
              "weight-only", ("llama-cpp",)),
    Precision("q4_0", 4.5, "float32", "llama.cpp GGUF Q4_0",
              "blocks of 32 4-bit weights + one float16 scale: 18 bytes / 32 = 4.5 bits (block_q4_0)",
              "weight-only",
              ("llama-cpp",)),
    Precision("q4_k_m", 4.5, "float32", "llama.cpp GGUF Q4_K_M (mixed Q4_K/Q6_K)",
              "Q4_K super-blocks of 256: 144 bytes / 256 = 4.5 bits; the _M mix stores some tensors at Q6_K "
              "(6.5625 bits), so the stored bytes are read from the file",
              "weight-only",
              ("llama-cpp",)),
    Precision("fp8", 8, "bfloat16", "float8 e4m3 weights and activations, per-tensor scales (torch._scaled_mm)",
              "one float8_e4m3fn per weight and one float32 scale per tensor", "float",
              ("torch on CUDA compute capability >= 8.9",)),
)}

#: What a backend that declares no precisions runs: the four every built-in backend took
#: before the registry grew weight-only formats.
CLASSIC_PRECISIONS: tuple[str, ...] = ("float32", "float16", "bfloat16", "int8")


#: Short names runtimes use (llama.cpp's ``f16``, ``bf16``), taken on the command line and in
#: configs and recorded under the registry's name, so ``f16`` and ``float16`` are one benchmark.
ALIASES = {"f32": "float32", "fp32": "float32", "f16": "float16", "fp16": "float16", "bf16": "bfloat16",
           "fp8_e4m3": "fp8", "e4m3": "fp8"}


def canonical_dtype(name: str) -> str:
    """``name`` under the registry's spelling (``f16`` -> ``float16``); unknown names pass through
    for the validation that names the allowed ones."""
    return ALIASES.get(name, name)


def precision(name: str) -> Precision:
    """The registered precision ``name``; a :class:`UserError` naming the allowed ones otherwise."""
    try:
        return PRECISIONS[canonical_dtype(name)]
    except KeyError:
        raise UserError(f"unknown dtype {name!r} (allowed: {', '.join(PRECISIONS)})") from None


def weight_bytes(parameters: int, dtype: str) -> int:
    """Bytes of ``parameters`` weights stored at ``dtype``'s nominal bits per weight."""
    return round(parameters * precision(dtype).bits_per_weight / 8)


def refusal(backend: str, dtype: str, runs: tuple[str, ...]) -> str:
    """Why ``backend`` (which runs ``runs``) does not take ``dtype``: the reason an unsupported record carries."""
    known = precision(dtype)
    where = f"; it runs on {', '.join(known.runtimes)}" if known.runtimes else ""
    return f"{backend} does not run {dtype} ({known.description}){where}; {backend} runs {', '.join(runs)}"
