"""Test-only bakeoff plugins: fake backends that misbehave on purpose.

They live under tests/ and are registered through a real ``entry_points.txt``
in ``tests/plugins/bakeoff_testing-0.0.0.dist-info``, so discovery is tested
exactly as a third-party plugin is found. They never import torch.
"""
