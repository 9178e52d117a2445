"""NIR (Neuromorphic Intermediate Representation) export of a BioGrad network.

Graph: ``input`` (Input) → per weight layer ``affine{l}`` (Affine: W_l, b_l) → ``lif{l}`` (LIF)
→ ``output`` (Output). NIR's LIF is continuous-time::

    τ dv/dt = (v_leak - v) + R I,     z = [v > v_threshold],   v ← v_reset on z = 1

BioGrad's neuron is the forward-Euler step of it with step ``dt`` (the convention of snnTorch's
NIR export): ``v(t) = (1 - dt/τ) v(t-1) + (dt R/τ) I(t)``, so with ``τ = dt / (1 - λ)``,
``R = τ / dt``, ``v_leak = 0``, ``v_reset = 0`` and ``v_threshold = θ`` one step is exactly
``v(t) = λ v(t-1) + W s(t) + b`` with a reset to 0 after a spike (BioGrad's
``λ v (1 - s_prev)`` gives the same next voltage). ``dt`` is the duration of one time bin
(1 ms for rate-coded MNIST, 5 ms for N-MNIST); the graph's metadata records it with the
number of steps per sample and the readout (the output spike count, argmax).

Learning-only state (the feedback matrices B, the ψ window) is not part of an inference graph
and is not exported. :func:`from_nir` reads a graph back and :func:`simulate_nir` runs it
with the same discretisation (a reference reader; no third-party NIR simulator is installed).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from biograd.core.errors import DataFormatError
from biograd.deploy.params import NetworkParams


@dataclass(frozen=True)
class NIRNetwork:
    """What a NIR graph of this shape holds, in BioGrad's terms (float64)."""

    weights: tuple[np.ndarray, ...]
    biases: tuple[np.ndarray, ...]
    vdecay: tuple[np.ndarray, ...]  # λ per neuron (1 - dt/τ)
    vth: tuple[np.ndarray, ...]
    input_scale: tuple[np.ndarray, ...]  # dt R / τ per neuron (1 for a BioGrad export)
    timesteps: int
    dt: float


def to_nir(params: NetworkParams, dt: float = 1e-3):
    """The inference graph of ``params`` as a ``nir.NIRGraph``."""
    import nir

    n_in = params.layer_sizes[0]
    nodes = {"input": nir.Input(input_type={"input": np.array([n_in])})}
    edges = []
    prev = "input"
    for l in range(params.n_layers):
        n = params.layer_sizes[l + 1]
        lam = params.vdecay[l]
        if not 0.0 <= lam < 1.0:
            raise ValueError(f"layer {l}: decay {lam} has no NIR LIF time constant (needs 0 <= λ < 1)")
        tau = np.full(n, dt / (1.0 - lam))
        nodes[f"affine{l}"] = nir.Affine(
            weight=np.asarray(params.weights[l], dtype=np.float64), bias=np.asarray(params.biases[l], dtype=np.float64)
        )
        nodes[f"lif{l}"] = nir.LIF(
            tau=tau,
            r=tau / dt,
            v_leak=np.zeros(n),
            v_threshold=np.full(n, float(params.vth[l])),
            v_reset=np.zeros(n),
        )
        edges += [(prev, f"affine{l}"), (f"affine{l}", f"lif{l}")]
        prev = f"lif{l}"
    nodes["output"] = nir.Output(output_type={"output": np.array([params.layer_sizes[-1]])})
    edges.append((prev, "output"))
    meta = {
        "producer": "biograd",
        "dt": float(dt),
        "timesteps": int(params.timesteps),
        "readout": "argmax of output spike counts over timesteps",
    }
    return nir.NIRGraph(nodes=nodes, edges=edges, metadata=meta)


def write_nir(params: NetworkParams, path: str | Path, dt: float = 1e-3) -> Path:
    """Write the graph of ``params`` to ``path`` (NIR's HDF5 format)."""
    import nir

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nir.write(path, to_nir(params, dt))
    return path


def from_nir(graph_or_path) -> NIRNetwork:
    """Read a feed-forward Input → (Affine → LIF)* → Output graph back into arrays."""
    import nir

    source = str(graph_or_path) if not hasattr(graph_or_path, "nodes") else "<graph>"
    graph = nir.read(graph_or_path) if not hasattr(graph_or_path, "nodes") else graph_or_path
    nxt = dict(graph.edges)
    if len(nxt) != len(graph.edges):
        raise DataFormatError(source, "a node feeds more than one node: only chains are supported")
    dt = float(graph.metadata.get("dt", 1e-3))
    ws, bs, lams, ths, scales = [], [], [], [], []
    name = "input"
    if not isinstance(graph.nodes.get(name), nir.Input):
        raise DataFormatError(source, "no Input node named 'input'")
    while name in nxt:
        name = nxt[name]
        node = graph.nodes[name]
        if isinstance(node, nir.Output):
            break
        if not isinstance(node, nir.Affine) or not isinstance(graph.nodes.get(nxt.get(name, "")), nir.LIF):
            raise DataFormatError(source, f"node {name!r}: expected Affine followed by LIF")
        lif = graph.nodes[nxt[name]]
        if np.any(lif.v_leak != 0) or np.any(lif.v_reset != 0):
            raise DataFormatError(source, f"node {nxt[name]!r}: only v_leak = v_reset = 0 is supported")
        ws.append(np.asarray(node.weight, dtype=np.float64))
        bs.append(np.asarray(node.bias, dtype=np.float64))
        tau = np.asarray(lif.tau, dtype=np.float64)
        lams.append(1.0 - dt / tau)
        scales.append(dt * np.asarray(lif.r, dtype=np.float64) / tau)
        ths.append(np.asarray(lif.v_threshold, dtype=np.float64))
        name = nxt[name]
    else:
        raise DataFormatError(source, "the chain does not end in an Output node")
    T = int(graph.metadata.get("timesteps", 0))
    return NIRNetwork(tuple(ws), tuple(bs), tuple(lams), tuple(ths), tuple(scales), T, dt)


def simulate_nir(net: NIRNetwork, dense_input: np.ndarray) -> np.ndarray:
    """Output spike counts of one sample ((T, N_in) 0/1) through the discretised NIR graph."""
    x = np.asarray(dense_input, dtype=np.float64)
    for w, b, lam, th, k in zip(net.weights, net.biases, net.vdecay, net.vth, net.input_scale):
        v = np.zeros(w.shape[0])
        out = np.zeros((x.shape[0], w.shape[0]))
        for t in range(x.shape[0]):
            v = lam * v + k * (w @ x[t] + b)
            s = v > th
            v[s] = 0.0
            out[t] = s
        x = out
    return x.sum(axis=0).astype(np.int64)
