"""Bring your own model: a buyer's ONNX file or torch module factory as a workload.

* ``onnx-model`` (``bakeoff run --model model.onnx --input ids:1x128:int64``)
  runs the file on the ONNX-capable backends; torch reports it unsupported.
  The parity reference is ONNX Runtime's CPU provider in float32 (there is no
  torch module to run).
* ``torch-model`` (``bakeoff run --model-factory pkg.module:function --input
  x:8x512:float32``) calls ``function()`` for an ``nn.Module`` and runs it on
  every backend, like a built-in workload.

Inputs are seeded random tensors of the given shapes: integers in ``[0, 100)``
(token ids, indices), floats standard normal. A file that is missing,
unreadable or not ONNX, and a malformed ``--input``, are user errors that name
the file or the value. Files are parsed as ONNX protobuf only: never unpickled.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.contract.errors import UserError
from harness.contract.interface import Param, Workload

INPUT_DTYPES = ("float32", "float16", "int64", "int32", "bool")
_ITEMSIZE = {"float32": 4, "float16": 2, "int64": 8, "int32": 4, "bool": 1}


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str


def parse_inputs(text: str, *, where: str = "--input") -> list[InputSpec]:
    """``"ids:1x128:int64;mask:1x128:int64"`` to input specs; :class:`UserError` when malformed."""
    specs = []
    for item in filter(None, (part.strip() for part in text.split(";"))):
        match = re.fullmatch(r"([^:]+):(\d+(?:x\d+)*):(\w+)", item)
        if not match:
            raise UserError(f"{where} {item!r}: expected NAME:SHAPE:DTYPE, e.g. input_ids:1x128:int64")
        name, shape, dtype = match.groups()
        if dtype not in INPUT_DTYPES:
            raise UserError(f"{where} {item!r}: dtype {dtype!r} is not one of {', '.join(INPUT_DTYPES)}")
        dims = tuple(int(d) for d in shape.split("x"))
        if 0 in dims:
            raise UserError(f"{where} {item!r}: every dimension must be >= 1")
        specs.append(InputSpec(name, dims, dtype))
    if not specs:
        raise UserError(f"{where}: give at least one NAME:SHAPE:DTYPE")
    return specs


def _tensor(spec: InputSpec, seed: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    if spec.dtype in ("int64", "int32"):
        return torch.randint(0, 100, spec.shape, generator=generator, dtype=getattr(torch, spec.dtype))
    if spec.dtype == "bool":
        return torch.ones(spec.shape, dtype=torch.bool)
    return torch.randn(spec.shape, generator=generator).to(getattr(torch, spec.dtype))


class _CustomInputs(Workload):
    """Shared: inputs from ``--input`` specs; batch size is the first dimension given."""

    unit = "inference"
    default_sweep = False

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        self.input_specs = parse_inputs(self.values["inputs"])
        self.input_names = tuple(spec.name for spec in self.input_specs)

    def example_inputs(self, batch_size: int, dtype: str):
        """The inputs as given; ``batch_size`` replaces the first dimension of each."""
        scaled = [InputSpec(s.name, (batch_size, *s.shape[1:]), s.dtype) for s in self.input_specs]
        tensors = [_tensor(spec, self.seed + index) for index, spec in enumerate(scaled)]
        if dtype in ("float16", "bfloat16"):
            from harness.contract.interface import torch_dtype

            tensors = [t.to(torch_dtype(dtype)) if t.is_floating_point() else t for t in tensors]
        return tuple(tensors)

    def work_per_step(self, batch_size: int) -> float:
        return float(batch_size)

    def materialised_bytes(self, batch_size: int, dtype: str) -> int:
        """The inputs at ``batch_size`` (the weights are unknown until the model is loaded)."""
        total = 0
        for spec in self.input_specs:
            count = batch_size
            for dim in spec.shape[1:]:
                count *= dim
            total += count * _ITEMSIZE[spec.dtype]
        return total


class OnnxModel(_CustomInputs):
    name = "onnx-model"
    description = "Your ONNX file (--model FILE --input NAME:SHAPE:DTYPE); inferences/s."
    params = (
        Param("path", str, "", "path to the .onnx file"),
        Param("inputs", str, "", "NAME:SHAPE:DTYPE;... (e.g. input_ids:1x128:int64)"),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        path = Path(self.values["path"])
        if not self.values["path"]:
            raise UserError("onnx-model: give the model file with --model PATH")
        if not path.is_file():
            raise UserError(f"{path}: no such model file")
        try:
            import onnx

            model = onnx.load(str(path), load_external_data=False)
            onnx.checker.check_model(model)
        except ImportError:
            raise UserError("onnx-model needs the onnx package: pip install 'bakeoff[onnxruntime]'") from None
        except Exception as exc:  # noqa: BLE001 - any parse failure is a bad model file
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise UserError(f"{path}: not a valid ONNX model ({reason})") from None
        graph_inputs = {i.name: i for i in model.graph.input}
        initializers = {i.name for i in model.graph.initializer}
        required = [name for name in graph_inputs if name not in initializers]
        given = [spec.name for spec in self.input_specs]
        unknown = [name for name in given if name not in graph_inputs]
        if unknown:
            raise UserError(f"--input {unknown[0]!r}: {path} has no such input (inputs: {', '.join(required)})")
        missing = [name for name in required if name not in given]
        if missing:
            raise UserError(f"{path}: input {missing[0]!r} needs a --input NAME:SHAPE:DTYPE")
        for spec in self.input_specs:
            rank = len(graph_inputs[spec.name].type.tensor_type.shape.dim)
            if rank and rank != len(spec.shape):
                raise UserError(f"--input {spec.name}: shape {spec.shape} has rank {len(spec.shape)}, "
                                f"the model expects rank {rank}")
        #: The OnnxModelFile capability: ONNX-capable backends load this file.
        self.onnx_path = path.resolve()
        self.output_names = tuple(o.name for o in model.graph.output)

    def build_module(self, dtype: str):
        raise NotImplementedError("an ONNX model has no torch module; ONNX-capable backends read the file")

    def weight_bytes_with_source(self, dtype: str) -> tuple[int, str]:
        import onnx

        model = onnx.load(str(self.onnx_path), load_external_data=False)
        total = 0
        for tensor in model.graph.initializer:
            count = 1
            for dim in tensor.dims:
                count *= dim
            total += count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
        return total, "initializers of the ONNX file (their stored dtype)"

    def reference_outputs(self, batch_size: int):
        """ONNX Runtime, CPU provider, float32 inputs: the closest thing to a reference."""
        import onnxruntime

        session = onnxruntime.InferenceSession(str(self.onnx_path), providers=["CPUExecutionProvider"])
        feeds = {s.name: t.numpy() for s, t in zip(self.input_specs, self.example_inputs(batch_size, "float32"))}
        return [output.astype("float32") if output.dtype.kind == "f" else output
                for output in session.run(None, feeds)]


class TorchModel(_CustomInputs):
    name = "torch-model"
    description = "Your torch module (--model-factory pkg.module:function --input ...); inferences/s."
    params = (
        Param("factory", str, "", "package.module:function returning an nn.Module"),
        Param("inputs", str, "", "NAME:SHAPE:DTYPE;..."),
    )

    def __init__(self, **values: Any) -> None:
        super().__init__(**values)
        target = self.values["factory"]
        module_name, colon, attribute = target.partition(":")
        if not colon or not module_name or not attribute:
            raise UserError(f"--model-factory {target!r}: expected package.module:function")
        try:
            self.factory = getattr(importlib.import_module(module_name), attribute)
        except (ImportError, AttributeError) as exc:
            raise UserError(f"--model-factory {target!r}: cannot import ({type(exc).__name__}: {exc})") from None
        if not callable(self.factory):
            raise UserError(f"--model-factory {target!r}: {attribute} is not callable")

    def build_module(self, dtype: str):
        from harness.contract.interface import torch_dtype

        from workloads._seeding import seeded

        with seeded(self.seed):
            module = self.factory()
        return module.to(torch_dtype(dtype)).eval()
