"""An independent reverse-mode BPTT oracle for the BioGrad eligibility traces (float64).

A minimal tape autodiff: the forward pass of a layer is recorded as a graph of
vector operations, then gradients flow backwards through it in reverse creation
order. The spike nonlinearity s = [v > θ] gets the surrogate derivative
ψ = a [|v - θ| < w], everything else is differentiated exactly — including the
reset gate (1 - s(t-1)), which is where κ = 1 - s - v ψ comes from. It shares no
code with learner.kernels: agreement is the correctness check of both engines.
"""

from __future__ import annotations

import numpy as np


class Node:
    _counter = 0

    def __init__(self, value, parents=()):
        self.value = np.asarray(value, dtype=np.float64)
        self.parents = parents  # tuples (node, vjp: upstream -> contribution)
        self.grad = None
        Node._counter += 1
        self.order = Node._counter

    def __add__(self, other):
        return Node(self.value + other.value, ((self, lambda g: g), (other, lambda g: g)))

    def __mul__(self, other):
        a, b = self.value, other.value
        return Node(a * b, ((self, lambda g: g * b), (other, lambda g: g * a)))


def const(value) -> Node:
    return Node(value)


def scale(node: Node, c: float) -> Node:
    return Node(node.value * c, ((node, lambda g: g * c),))


def one_minus(node: Node) -> Node:
    return Node(1.0 - node.value, ((node, lambda g: -g),))


def matvec(w: Node, x: np.ndarray) -> Node:
    """W @ x with x a constant vector."""
    return Node(w.value @ x, ((w, lambda g: np.outer(g, x)),))


def spike(v: Node, th: float, win: float, amp: float) -> Node:
    psi = amp * (np.abs(v.value - th) < win)
    return Node((v.value > th).astype(np.float64), ((v, lambda g: g * psi),))


def total(nodes) -> Node:
    out = nodes[0]
    for n in nodes[1:]:
        out = out + n
    return Node(np.sum(out.value), ((out, lambda g: np.full(out.value.shape, g)),))


def backward(root: Node) -> None:
    """Accumulate d root / d node into every reachable node's .grad."""
    seen, stack, nodes = set(), [root], []
    while stack:
        n = stack.pop()
        if id(n) in seen:
            continue
        seen.add(id(n))
        nodes.append(n)
        stack.extend(p for p, _ in n.parents)
    nodes.sort(key=lambda n: n.order, reverse=True)
    root.grad = np.ones_like(root.value)
    for n in nodes:
        if n.grad is None:
            continue
        for parent, vjp in n.parents:
            contrib = vjp(n.grad)
            parent.grad = contrib if parent.grad is None else parent.grad + contrib


def layer_bptt(x: np.ndarray, w: np.ndarray, b: np.ndarray, lam, th, win, amp):
    """Forward one layer over x (T, N_in) constant spikes; return (spikes (T, N), E (N, N_in), E_b (N,), v (T, N)).

    E = ∂(Σ_i Σ_t s_i(t)) / ∂W; since neurons of a layer are independent given
    their inputs, row i of it is ∂(Σ_t s_i(t)) / ∂W_i·.
    """
    wn, bn = Node(w), Node(b)
    v_prev = s_prev = None
    spikes, vs = [], []
    for t in range(x.shape[0]):
        current = matvec(wn, x[t]) + bn
        if t == 0:
            v = current
        else:
            v = scale(v_prev * one_minus(s_prev), lam) + current
        s = spike(v, th, win, amp)
        spikes.append(s)
        vs.append(v.value)
        v_prev, s_prev = v, s
    backward(total(spikes))
    return (np.array([s.value for s in spikes]), wn.grad, bn.grad, np.array(vs))


def error_deltas(out_spikes: np.ndarray, label: int, t_e: int, feedback):
    """Error phase written from the algorithm text: δ_out = D/K, δ_l = (Σ_t B_l (z⁺ - z⁻)) / K."""
    steps, n_out = out_spikes.shape
    c = np.zeros(n_out)
    a_pos, a_neg = np.zeros(n_out), np.zeros(n_out)
    z_pos, z_neg = np.zeros(n_out), np.zeros(n_out)
    d_out = np.zeros(n_out)
    d_hidden = [np.zeros(b.shape[0]) for b in feedback]
    for t in range(steps):
        c = c + out_spikes[t]
        if t < t_e:
            continue
        e = np.exp(c) / np.sum(np.exp(c)) - np.eye(n_out)[label]
        a_pos = a_pos - z_pos + e
        a_neg = a_neg - z_neg - e
        z_pos = (a_pos > 1).astype(float)
        z_neg = (a_neg > 1).astype(float)
        d_out += z_pos - z_neg
        for dh, b in zip(d_hidden, feedback):
            dh += b @ (z_pos - z_neg)
    k = steps - t_e
    return [dh / k for dh in d_hidden] + [d_out / k], c
