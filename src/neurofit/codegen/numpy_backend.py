"""The numpy backend: the reference implementation of a KernelSpec, one vectorised step at a time.

Neurons are arrays of shape (n_sets, n_traces); parameters (n_sets, 1); inputs (n_traces,).
The generated functions take every symbol as an argument named ``u_<name>`` (printing.symbol_name),
so no model name can be a Python keyword or shadow ``np`` and the helpers.
"""
from __future__ import annotations

import numpy as np

from . import random_streams as rng
from .kernel import NOT_REFRACTORY, KernelSpec, noise_symbol
from .printing import EXPREL_D_SERIES_BELOW, EXPREL_SERIES_BELOW, Printer, symbol_name


def _function_source(name: str, args: list, body: list, returns: list, printer: Printer) -> str:
    """``def name(u_<arg>, ...)``: the assignments of ``body`` in order, then a tuple of ``returns``."""
    lines = [f"def {name}({', '.join(symbol_name(a) for a in args)}):"]
    for sym, expr in body:
        lines.append(f"    {printer(sym)} = {printer(expr)}")
    lines.append(f"    return ({', '.join(printer(r) for r in returns)}{',' if len(returns) == 1 else ''})")
    return "\n".join(lines)


def helper_namespace(dtype) -> dict:
    """The functions generated numpy code calls (exprel, its derivative, a dtype-keeping where)."""
    dtype = np.dtype(dtype)
    small, small_d, one = EXPREL_SERIES_BELOW[dtype.name], EXPREL_D_SERIES_BELOW[dtype.name], dtype.type(1.0)

    def _exprel(z):
        z = np.asarray(z)
        tiny = np.abs(z) < small
        safe = np.where(tiny, one, z)
        series = 1 + z / 2 + z * z / 6 if dtype == np.float64 else 1 + z / 2
        return np.where(tiny, series, np.expm1(safe) / safe).astype(dtype, copy=False)

    def _exprel_d(z):
        z = np.asarray(z)
        tiny = np.abs(z) < small_d
        safe = np.where(tiny, one, z)
        closed = (np.exp(safe) * (safe - 1) + 1) / (safe * safe)
        return np.where(tiny, 0.5 + z / 3 + z * z / 8, closed).astype(dtype, copy=False)

    def _where(cond, a, b):
        return np.where(cond, a, b).astype(dtype, copy=False)

    return {"np": np, "_exprel": _exprel, "_exprel_d": _exprel_d, "_where": _where}


class NumpyKernel:
    """Compiles a KernelSpec into Python functions over numpy arrays."""

    def __init__(self, spec: KernelSpec, dtype: str):
        self.spec = spec
        self.dtype = np.dtype(dtype)
        printer = Printer("numpy", dtype)
        args = (spec.states + spec.parameters + spec.inputs + [noise_symbol(n).name for n in spec.noise]
                + ["t", "dt", NOT_REFRACTORY.name])
        # the step returns the new states, then the values at step start of the recorded names and targets
        self.observed = spec.record + [v for v in spec.targets if v not in spec.record]
        sources = [_function_source("step", args, spec.body,
                                    [spec.updates[s] for s in spec.states]
                                    + [spec.record_values[r] for r in self.observed], printer)]
        event_args = spec.states + spec.parameters + spec.inputs + ["t", "dt"]
        if spec.threshold is not None:
            sources.append(_function_source("threshold", event_args, [], [spec.threshold], printer))
        for i, (_target, _op, expr) in enumerate(spec.reset):
            sources.append(_function_source(f"reset_{i}", event_args, [], [expr], printer))
        if spec.refractory is not None:
            sources.append(_function_source("refractory", event_args, [], [spec.refractory[1]], printer))
        self.source = "\n\n".join(sources)
        namespace = helper_namespace(self.dtype)
        exec(compile(self.source, f"<neurofit numpy kernel {spec.method}>", "exec"), namespace)
        self.step = namespace["step"]
        self.threshold = namespace.get("threshold")
        self.resets = [namespace[f"reset_{i}"] for i in range(len(spec.reset))]
        self.refractory = namespace.get("refractory")

    def run(self, shape: tuple, params: dict, inputs: dict, init: dict, dt: float, n_steps: int, seed: int | None,
            set_offset: int, targets: dict, target_start: int):
        """Simulate ``n_steps`` steps of ``dt`` (s) for every parameter set against every input trace.

        ``shape``: (n_sets, n_traces); ``params``: name → (n_sets,) in SI; ``inputs``: name → (n_traces,
        n_steps); ``init``: state → (n_sets, n_traces); ``seed``, ``set_offset``: noise keys (set_offset + set,
        trace); ``targets``: recordable name → (n_traces, n_steps), squared error summed from step
        ``target_start`` on.
        Returns (records: name → (n_sets, n_traces, n_steps) values at the start of each step,
        spike events [(step, set indices, trace indices)] in step order, invalid (n_sets, n_traces) bool,
        final state: state → (n_sets, n_traces), squared errors: state → (n_sets, n_traces)).
        """
        spec, dtype = self.spec, self.dtype
        n_sets, n_traces = shape
        state = [np.array(init[s], dtype=dtype) for s in spec.states]
        pars = [np.asarray(params[p], dtype=dtype).reshape(n_sets, 1) for p in spec.parameters]
        inp = {k: np.ascontiguousarray(np.asarray(v, dtype=dtype).T) for k, v in inputs.items()}
        records = {r: np.empty((n_sets, n_traces, n_steps), dtype=dtype) for r in spec.record}
        sq_err = {v: np.zeros((n_sets, n_traces)) for v in spec.targets}
        tgt = {v: np.ascontiguousarray(np.asarray(a, dtype=np.float64).T) for v, a in targets.items()}
        bad = np.zeros((n_sets, n_traces), dtype=bool)
        spike_events = []  # (step, set, trace)
        lastspike = np.full((n_sets, n_traces), -(2 ** 62), dtype=np.int64)
        one = np.ones((n_sets, n_traces), dtype=dtype)
        not_ref = one
        keys = None
        if spec.noise:
            ids = (np.arange(n_sets)[:, None] + set_offset) * n_traces + np.arange(n_traces)[None, :]
            keys = rng.neuron_keys(seed, ids)
        dt_typed = dtype.type(dt)
        with np.errstate(all="ignore"):
            for k in range(n_steps):
                t = dtype.type(k * dt)
                u = [inp[name][k] for name in spec.inputs]
                if spec.refractory is not None:
                    not_ref = self._not_refractory(state, pars, u, t, dt_typed, k, lastspike, one)
                z = [rng.standard_normal(keys, k * len(spec.noise) + j).astype(dtype)
                     for j in range(len(spec.noise))]
                out = self.step(*state, *pars, *u, *z, t, dt_typed, not_ref)
                new_state = out[:len(spec.states)]
                current = dict(zip(self.observed, out[len(spec.states):]))
                for r in spec.record:
                    records[r][:, :, k] = current[r]
                for v in spec.targets:
                    if k >= target_start:
                        diff = current[v] - tgt[v][k]
                        sq_err[v] += np.broadcast_to(diff, (n_sets, n_traces)).astype(np.float64) ** 2
                state = [np.broadcast_to(s, (n_sets, n_traces)).astype(dtype, copy=True) for s in new_state]
                for s in state:
                    bad |= ~np.isfinite(s)
                if self.threshold is not None:
                    spiking = np.asarray(self.threshold(*state, *pars, *u, t, dt_typed)[0], dtype=bool)
                    if spec.refractory is not None:
                        spiking &= not_ref.astype(bool)
                    if spiking.any():
                        self._reset(state, pars, u, t, dt_typed, spiking)
                        lastspike[spiking] = k
                        sets, traces = np.nonzero(spiking)
                        spike_events.append((k, sets, traces))
        final = dict(zip(spec.states, state))
        return records, spike_events, bad, final, sq_err

    def _not_refractory(self, state, pars, u, t, dt, k, lastspike, one):
        value = self.refractory(*state, *pars, *u, t, dt)[0]
        if self.spec.refractory[0] == "condition":
            # as Brian2: refractory from a spike until the condition first fails (lastspike >= 0 marks it)
            still = (lastspike >= 0) & np.asarray(value, dtype=bool)
            lastspike[~still] = -(2 ** 62)
            return np.where(still, 0, 1).astype(self.dtype) * one
        ref_steps = np.floor((np.asarray(value, dtype=np.float64) + 1e-3 * float(dt)) / float(dt)).astype(np.int64)
        return ((k - lastspike) >= ref_steps).astype(self.dtype)

    def _reset(self, state, pars, u, t, dt, spiking):
        index = {s: i for i, s in enumerate(self.spec.states)}
        for (target, op, _), fn in zip(self.spec.reset, self.resets):
            value = np.broadcast_to(fn(*state, *pars, *u, t, dt)[0], spiking.shape)
            i = index[target]
            current = state[i]
            if op == "=":
                new = value
            elif op == "+=":
                new = current + value
            elif op == "-=":
                new = current - value
            elif op == "*=":
                new = current * value
            else:
                new = current / value
            np.copyto(state[i], new.astype(self.dtype, copy=False), where=spiking)


