"""Tools for plugin authors and operators: ``export`` (the public ONNX export API),
``scaffold`` (``bakeoff new-backend``) and ``serve`` (an OpenAI-compatible server over a backend)."""
