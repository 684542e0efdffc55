"""Built-in models: one equations file each, plus their usual constants, events and values.

>>> from neurofit import models
>>> model = models.get("hh_traub")                 # the TraceFitter tutorial's model
>>> model = models.get("hh_traub", free=["Cm"])    # Cm becomes a parameter
>>> models.SPECS["adex"].defaults                  # typical parameter values (SI)
"""
from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources

from ..equations.model import Model


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: equations file, namespace constants (value, unit), events, typical values."""

    file: str
    constants: dict = field(default_factory=dict)  # name -> (quantity string, unit of a declaration)
    threshold: str | None = None
    reset: str | None = None
    refractory: str | None = None
    defaults: dict = field(default_factory=dict)  # parameter -> typical value (SI)
    init: dict = field(default_factory=dict)  # state -> initial value (SI or expression)
    method: str | None = None

    def equations(self) -> str:
        return resources.files(__name__).joinpath(self.file).read_text()


SPECS = {
    "rate": ModelSpec(
        "rate.eqs", defaults={"tau": 1e-3, "a": 1.2, "theta": 2.8, "w": 0.0}, init={"r": 0.2}, method="euler"),
    "passive": ModelSpec(
        "passive.eqs", defaults={"gl": 10e-9, "El": -70e-3, "C": 100e-12}, init={"v": "El"},
        method="exponential_euler"),
    "lif": ModelSpec(
        "lif.eqs", threshold="v > Vt", reset="v = Vr", refractory="2*ms",
        defaults={"gl": 10e-9, "El": -70e-3, "C": 200e-12, "Vt": -50e-3, "Vr": -70e-3}, init={"v": -70e-3},
        method="exponential_euler"),
    "adex": ModelSpec(
        "adex.eqs", threshold="v > VT + 5*DeltaT", reset="v = Vr\nw += b",
        defaults={"C": 281e-12, "gl": 30e-9, "El": -70.6e-3, "VT": -50.4e-3, "DeltaT": 2e-3, "a": 4e-9,
                  "tau_w": 144e-3, "b": 0.0805e-9, "Vr": -70.6e-3},
        init={"v": -70.6e-3, "w": 0.0}, method="euler"),
    "izhikevich": ModelSpec(
        "izhikevich.eqs", threshold="v >= 30*mV", reset="v = c\nu += d",
        defaults={"a": 20.0, "b": 0.2, "c": -65e-3, "d": 8e-3}, init={"v": -65e-3, "u": -13e-3}, method="euler"),
    "hh_traub": ModelSpec(
        "hh_traub.eqs",
        constants={"El": ("-65 mV", "volt"), "EK": ("-90 mV", "volt"), "ENa": ("50 mV", "volt"),
                   "VT": ("-63 mV", "volt"), "Cm": ("200 pF", "farad")},
        defaults={"gl": 10e-9, "g_na": 20e-6, "g_kd": 6e-6}, init={"v": -65e-3, "m": 0.0, "n": 0.0, "h": 0.0},
        method="exponential_euler"),
    "hh_inferencer": ModelSpec(
        "hh_inferencer.eqs",
        constants={"E_Na": ("53 mV", "volt"), "E_K": ("-107 mV", "volt"), "E_l": ("-70 mV", "volt"),
                   "VT": ("-60 mV", "volt"), "g_l": ("10 nS", "siemens"), "Cm": ("200 pF", "farad")},
        threshold="m > 0.5", refractory="m > 0.5", defaults={"g_Na": 32e-6, "g_K": 1e-6},
        init={"v": "E_l", "m": "1 / (1 + beta_m / alpha_m)", "h": "1 / (1 + beta_h / alpha_h)",
              "n": "1 / (1 + beta_n / alpha_n)"},
        method="exponential_euler"),
    "hh_classic": ModelSpec(
        "hh_classic.eqs",
        constants={"ENa": ("50 mV", "volt"), "EK": ("-77 mV", "volt"), "El": ("-54.4 mV", "volt"),
                   "Cm": ("1 uF/cm**2", "farad/meter**2"), "area": ("20000 um**2", "meter**2")},
        defaults={"g_na": 1200.0, "g_k": 360.0, "g_l": 3.0},
        init={"v": -65e-3, "m": "alpha_m/(alpha_m + beta_m)", "n": "alpha_n/(alpha_n + beta_n)",
              "h": "alpha_h/(alpha_h + beta_h)"},
        method="exponential_euler"),
}


def get(name: str, namespace: dict | None = None, free=(), **events) -> Model:
    """The built-in model ``name``; ``namespace`` overrides constants, ``free`` turns constants into
    parameters, ``events`` (threshold/reset/refractory) override the model's own."""
    if name not in SPECS:
        raise KeyError(f"unknown built-in model '{name}' (valid: {', '.join(SPECS)})")
    spec = SPECS[name]
    unknown = [c for c in free if c not in spec.constants]
    if unknown:
        raise KeyError(f"model '{name}': {', '.join(unknown)} not a constant that can be freed "
                       f"(constants: {', '.join(spec.constants) or 'none'})")
    equations = spec.equations() + "".join(f"{c} : {spec.constants[c][1]} (constant)\n" for c in free)
    ns = {c: q for c, (q, _) in spec.constants.items() if c not in free}
    ns.update(namespace or {})
    kinds = {"threshold": spec.threshold, "reset": spec.reset, "refractory": spec.refractory}
    kinds.update(events)
    return Model(equations, namespace=ns, origin=f"{name} model ({spec.file})", **kinds)


def names() -> list[str]:
    return list(SPECS)
