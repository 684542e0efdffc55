"""One shape for the bridges between a study's config sections and the package: ``Section``.

A study (``studies.<name>`` of a config file) has sections - ``fit``, ``infer``, ``rate``, ``reduction`` - each
read by one module here (``fit_section``, ``infer_section``, ``rate_section``, ``reduction_section``) whose
class is a ``Section``::

    section = FitSection(study)                  # ConfigError if the study has no 'fit' section
    section.settings                             # the validated dict: every default filled in by the schema
    section.quantity("metric.t_start", TIME)     # SI float, checked against the dimension
    section.check_parameters(section.settings["fixed"], "fixed", model.parameters)

The messages a section gives for these are made here, and only here, so every section says the same thing:

* a missing section  ``studies.<s>.<section>: study '<s>' has no '<section>' section``
* a wrong unit       ``studies.<s>.<section>.<key> = '<v>': has units of X, expected Y``
* an unknown name    ``studies.<s>.<section>.<key>.<name>: not a parameter of the model (parameters: ...)``

Defaults live in the config schema only (``schemas/config.schema.yaml``, filled in when a study is read):
a section reads them from ``settings`` and keeps no copy of them in Python.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..errors import ConfigError
from ..fitting.bounds import BoundsError, parse_bounds
from ..units import Dimension, UnitError, parse_quantity, shorten

if TYPE_CHECKING:
    from .study import Study

_FROM_SETTINGS = object()


# --- the one wording of each message --------------------------------------------------------------

def missing_section(study: "Study", name: str) -> ConfigError:
    """The error of a study without section ``name``."""
    return ConfigError(f"{study.where(name)}: study '{study.name}' has no '{name}' section")


def unit_error(where: str, value, found, expected) -> ConfigError:
    """The error of a quantity at ``where`` in units of ``found`` where ``expected`` was needed."""
    return ConfigError(f"{where} = '{shorten(str(value))}': has units of {found}, expected {expected}")


def not_a_parameter(where: str, parameters) -> ConfigError:
    """The error of a name at ``where`` that is none of ``parameters`` (the model's)."""
    return ConfigError(f"{where}: not a parameter of the model (parameters: {', '.join(parameters) or 'none'})")


_LOWER_UNIT_MESSAGE = re.compile(r"^(\S+ = '.*?') has units of ")


def one_unit_message(message: str) -> str:
    """A unit error of a lower layer ("<key> = '<v>' has units of ...", from ``units.to_si`` or
    ``fitting.bounds``) in the wording of ``unit_error``; any other message unchanged."""
    return _LOWER_UNIT_MESSAGE.sub(r"\1: has units of ", message, count=1)


def si_quantity(value, expected: Dimension | None, where: str, expressions: bool = False):
    """``value`` at the key path ``where`` in SI: a number as given (already SI), a quantity string like
    '10 nS' converted and checked against the dimension ``expected`` (None: any). With ``expressions``, a
    string that is no quantity is returned unchanged (an expression, e.g. an initial value that simulate
    evaluates). ConfigError naming ``where`` otherwise."""
    if not isinstance(value, (str, int, float)) or isinstance(value, bool):
        raise ConfigError(f"{where} = {shorten(repr(value))}: not a number or a quantity like '10 nS'")
    if not isinstance(value, str):
        return float(value)
    try:
        number, dim = parse_quantity(value)
    except UnitError as err:
        if expressions:
            return value
        raise ConfigError(f"{where} = '{shorten(value)}': {' '.join(str(err).split())}") from None
    if expected is not None and dim != expected and not (dim.is_dimensionless and expected.is_dimensionless):
        raise unit_error(where, value, dim, expected)
    return number


def in_schema_order(value, schema: dict, root: dict | None = None):
    """A copy of the settings ``value`` with the keys of every mapping in the order of ``schema``'s
    properties (keys it does not list after them, as given): settings written out whole (rate_study.json)
    then read the same whatever order the config gave them in. ``root``: the document ``$ref`` points into."""
    root = schema if root is None else root
    while "$ref" in schema and schema["$ref"].startswith("#/"):
        node = root
        for part in schema["$ref"][2:].split("/"):
            node = node[part]
        schema = node
    if isinstance(value, list):
        return [in_schema_order(v, schema.get("items") or {}, root) for v in value]
    if not isinstance(value, dict):
        return value
    props = schema.get("properties") or {}
    keys = [k for k in props if k in value] + [k for k in value if k not in props]
    return {k: in_schema_order(value[k], props.get(k) or {}, root) for k in keys}


@dataclass
class Output:
    """A file a section wrote for a command: its path, the files it read, the seconds it took (the
    command writes its provenance)."""

    path: str
    inputs: list = field(default_factory=list)
    wall_time: float = 0.0


class Section:
    """One section of a study's config: its validated ``settings`` (defaults from the schema) and the
    readers every section shares. A subclass sets ``NAME`` (the section's config key) and, once it knows
    its model, ``parameters``."""

    NAME = ""

    def __init__(self, study: "Study", name: str | None = None):
        self.study = study
        self.name = name or self.NAME
        self.settings = self.settings_of(study, self.name)
        self.parameters: list = []

    @classmethod
    def settings_of(cls, study: "Study", name: str | None = None) -> dict:
        """The validated settings of section ``name`` (default: the class's) of ``study`` (the study's own
        dict); ConfigError "study '<s>' has no '<section>' section" without one."""
        name = name or cls.NAME
        settings = study.section.get(name)
        if settings is None:
            raise missing_section(study, name)
        return settings

    @property
    def section(self) -> dict:
        """The settings, under the name the commands and workflow rules have used."""
        return self.settings

    # --- key paths ----------------------------------------------------------------------------------
    def where(self, *keys) -> str:
        """The key path of ``keys`` inside this section, e.g. ``studies.hh.fit.bounds.gl``."""
        return self.study.where(self.name, *map(str, keys))

    @staticmethod
    def _keys(key) -> tuple:
        if key is None or key == "" or key == ():
            return ()
        if isinstance(key, str):
            return tuple(key.split("."))
        return tuple(map(str, key))

    def get(self, key):
        """The setting at ``key`` ("metric.t_start" or ("metric", "t_start")); list items by index."""
        value = self.settings
        for k in self._keys(key):
            value = value[int(k)] if isinstance(value, list) else value[k]
        return value

    # --- readers ------------------------------------------------------------------------------------
    def quantity(self, key, dimension: Dimension | None, value=_FROM_SETTINGS, expressions: bool = False):
        """The setting at ``key`` (or ``value``, named by ``key``) in SI, checked against ``dimension``
        (None: no check). A list gives a list, each item named by its index. ConfigError naming the key
        path: "<key> = '<v>': has units of X, expected Y"."""
        keys = self._keys(key)
        value = self.get(keys) if value is _FROM_SETTINGS else value
        if isinstance(value, list):
            return [si_quantity(v, dimension, self.where(*keys, i), expressions) for i, v in enumerate(value)]
        return si_quantity(value, dimension, self.where(*keys), expressions)

    def parameter(self, name: str, key=(), parameters=None) -> str:
        """``name`` (found under ``key``) if it is a parameter of the model (``parameters``, default:
        the section's); ConfigError "<key>.<name>: not a parameter of the model (parameters: ...)"."""
        parameters = self.parameters if parameters is None else list(parameters)
        if name not in parameters:
            raise not_a_parameter(self.where(*self._keys(key), name), parameters)
        return name

    def check_parameters(self, names, key=(), parameters=None) -> None:
        """Every one of ``names`` (e.g. the keys of the mapping at ``key``) a parameter of the model."""
        for name in names:
            self.parameter(name, key, parameters)

    def read_bounds(self, given: dict, key, parameters, dimensions: dict, **options):
        """``fitting.bounds.parse_bounds`` of the mapping ``given`` (at ``key``) for ``parameters``: a
        ``ParameterSpace``; its errors as ConfigError naming the key path, in the wording of this module."""
        keys = self._keys(key)
        self.check_parameters(given, keys, parameters)
        try:
            return parse_bounds(given, parameters, dimensions=dimensions,
                                where=lambda name: self.where(*keys, name), **options)
        except BoundsError as err:
            message = one_unit_message(str(err))
            if not message.startswith(self.study.where()):
                message = f"{self.where(*keys)}: {message}"
            raise ConfigError(message) from None

    def read_ground_truth(self, model) -> dict:
        """The study's ground_truth in SI (parameters of ``model``), for comparing results with it."""
        truth = {}
        for name, value in self.study.section.get("ground_truth", {}).items():
            if name not in model.parameters:
                raise not_a_parameter(self.study.where("ground_truth", name), model.parameters)
            truth[name] = si_quantity(value, model.dimensions.get(name), self.study.where("ground_truth", name))
        return truth

