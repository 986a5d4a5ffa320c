"""Model factories for the bring-your-own-model tests (``--model-factory``)."""

import torch


def two_layer_classifier() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))


not_callable = 3
