"""Graph reasoning unit (GloRe) of the OAA / IAM head (docs/method.md, stage 1, "GloRe unit").

Pixels are projected onto a small set of graph nodes, a one-layer graph
convolution mixes the nodes and their states, and the result is projected back
to the pixels and added to the input (residual). Parameter names
(``conv_state``, ``conv_proj``, ``gcn.conv1``, ``gcn.conv2``, ``conv_extend``,
``blocker``) are those of the original NSROM checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

BLOCKER_BN_EPS = 1e-4
"""BatchNorm eps of the output ("blocker") normalisation, as in the original unit."""


class GraphConv(nn.Module):
    """Graph convolution over node features ``(B, states, nodes)``.

    A 1x1 Conv1d across the node axis (with bias) added to its input, ReLU, then
    a 1x1 Conv1d across the state channels (no bias).
    """

    def __init__(self, num_state: int, num_node: int):
        super().__init__()
        self.conv1 = nn.Conv1d(num_node, num_node, kernel_size=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv1d(num_state, num_state, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # conv1 runs on the node axis: swap (states, nodes) so nodes are channels.
        h = self.conv1(x.transpose(1, 2)).transpose(1, 2)
        return self.conv2(self.relu(h + x))


def _autocast_on(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch before 2.4 has one query per device type)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_enabled() if device_type == "cuda" else torch.is_autocast_cpu_enabled()


class GloReUnit2d(nn.Module):
    """GloRe unit on ``(B, num_in, H, W)`` maps with ``2*num_mid`` states and ``num_mid`` nodes.

    node features = state (B, S, N) x projection^T (B, N, nodes); graph conv;
    back-projection with the same projection; 1x1 conv back to ``num_in``
    channels, BatchNorm (eps 1e-4), added to the input. No normalisation by
    the number of pixels N.
    """

    def __init__(self, num_in: int, num_mid: int):
        super().__init__()
        self.num_state = 2 * num_mid
        self.num_node = num_mid
        self.conv_state = nn.Conv2d(num_in, self.num_state, kernel_size=1)
        self.conv_proj = nn.Conv2d(num_in, self.num_node, kernel_size=1)
        self.gcn = GraphConv(self.num_state, self.num_node)
        self.conv_extend = nn.Conv2d(self.num_state, num_in, kernel_size=1, bias=False)
        self.blocker = nn.BatchNorm2d(num_in, eps=BLOCKER_BN_EPS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """In float32 even under autocast: the two products sum over every pixel without normalising,
        so in float16 ``back`` overflows (65504) at the sizes of a 256-pixel input (bfloat16 keeps the
        range but loses the precision). Without autocast this is the plain float32 computation."""
        if _autocast_on(x.device.type):
            with torch.autocast(x.device.type, enabled=False):
                return self._forward(x.float())
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        state = self.conv_state(x).reshape(b, self.num_state, h * w)  # (B, S, N)
        proj = self.conv_proj(x).reshape(b, self.num_node, h * w)  # (B, nodes, N)
        nodes = torch.bmm(state, proj.transpose(1, 2))  # (B, S, nodes)
        nodes = self.gcn(nodes)
        back = torch.bmm(nodes, proj).reshape(b, self.num_state, h, w)  # (B, S, H, W)
        return x + self.blocker(self.conv_extend(back))
