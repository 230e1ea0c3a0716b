"""Inference-only speed-ups of a trained network: BatchNorm folded into the convolutions (torch.fx) and, on the
CPU, each ReLU6 run inside its convolution (oneDNN post-ops). The same features to float rounding."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.fx.experimental.optimization import fuse

from facearith.training.network import Ensemble, FaceNet


class ConvActivation(nn.Module):
    """A convolution and the clamp after it as one oneDNN call (the fused op torch.compile emits on CPUs): the
    activation is applied while the output is still in cache, saving a pass over every map. The weight is
    reordered once, on the first call, into the layout oneDNN picks for that input size, not on every call."""

    def __init__(self, conv: nn.Conv2d, attr: str, scalars: list[float]) -> None:
        super().__init__()
        self.weight, self.bias = conv.weight, conv.bias
        self.padding, self.stride = list(conv.padding), list(conv.stride)
        self.dilation, self.groups = list(conv.dilation), conv.groups
        self.attr, self.scalars = attr, scalars
        self.packed: torch.Tensor | None = None  # any input size works with it; the first one's is fastest

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mkldnn = torch.ops.mkldnn
        if self.packed is None:
            args = (self.padding, self.stride, self.dilation, self.groups)
            self.packed = mkldnn._reorder_convolution_weight(self.weight.detach(), *args, list(x.shape))
        args = (self.padding, self.stride, self.dilation, self.groups, self.attr, self.scalars, "")
        return mkldnn._convolution_pointwise(x, self.packed, self.bias, *args)


def _fusable_activation(module: nn.Module) -> tuple[str, list[float]] | None:
    if isinstance(module, nn.Hardtanh):  # ReLU6 is a Hardtanh(0, 6)
        return "hardtanh", [float(module.min_val), float(module.max_val)]
    if isinstance(module, nn.ReLU):
        return "relu", []
    return None


def fuse_conv_activations(gm: torch.fx.GraphModule) -> int:
    """Replace each Conv2d by a ConvActivation, in place, taking in the ReLU/ReLU6 that is its only use; returns
    how many activations were fused. CPU inference only: the fused op has no autograd and no CUDA kernel.
    A no-op without oneDNN."""
    if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")):
        return 0
    modules = dict(gm.named_modules())
    fused = 0
    for node in list(gm.graph.nodes):
        conv = modules.get(node.target) if node.op == "call_module" else None
        if type(conv) is not nn.Conv2d or conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            continue
        (user,) = node.users if len(node.users) == 1 else (None,)
        plain_call = user is not None and user.op == "call_module" and len(user.args) == 1 and not user.kwargs
        act = _fusable_activation(modules[user.target]) if plain_call else None
        last = user if act else node  # the node whose output the fused module produces
        name = node.target.replace(".", "_") + "_fused"
        gm.add_submodule(name, ConvActivation(conv, *(act or ("none", []))))
        with gm.graph.inserting_after(last):
            new = gm.graph.call_module(name, node.args)
        last.replace_all_uses_with(new)
        gm.graph.erase_node(last)
        if act:
            gm.graph.erase_node(node)
            fused += 1
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return fused


def for_inference(model: FaceNet | Ensemble) -> FaceNet | Ensemble:
    """An eval-mode copy whose BatchNorms are folded into the convolutions before them (torch.fx) and, on the
    CPU, whose ReLU6 run inside the convolutions (oneDNN post-ops): the same features to float rounding, two
    memory passes less per layer, which is what limits this CPU (benchmarks/)."""
    if isinstance(model, Ensemble):
        return Ensemble([for_inference(m) for m in model.members]).eval()
    fused = copy.deepcopy(model).eval().requires_grad_(False)
    fused.net._features = fuse(fused.net._features, inplace=True).to(memory_format=torch.channels_last)
    if all(p.device.type == "cpu" for p in fused.parameters()):
        fuse_conv_activations(fused.net._features)
    return fused
