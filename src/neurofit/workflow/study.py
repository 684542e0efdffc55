"""A study's config section → model, dataset and simulation settings.

A config file (YAML, or the same structure as JSON) holds named studies::

    studies:
      hh_tutorial:
        model: {builtin: hh_traub, free: [Cm]}
        data: {dt: 0.01 ms, inputs: {I: {path: in.csv, unit: amp}}, outputs: {v: {path: out.csv, unit: mV}}}
        simulate: {params: {gl: 10 nS, g_na: 20 uS, g_kd: 6 uS, Cm: 200 pF}}

The keys, types and defaults of a config live in ONE place, the JSON schema shipped with the package
(``SCHEMA_PATH`` = ``neurofit/workflow/schemas/config.schema.yaml``): the Snakefile validates the whole file
against it (``snakemake.utils.validate``), and this module validates the one study a command needs
against the same file (``jsonschema``, defaults filled in), so that ``neurofit`` run by hand gives the
same one-line errors naming the key path. Checks a schema cannot express (model choice, units,
parameter names) follow in ``Study`` and in the modules that read a section (``fit_study``,
``inference``).
Data paths are relative to the working directory (the one Snakemake runs in). Config files are read with
``StrictLoader``: a key given twice in one mapping is an error naming the file and line (PyYAML would keep
the last silently). Sizes from the config are checked against the memory available (``check_memory``)
before anything that large is allocated.
"""
from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import models
from ..data.dataset import Dataset, load_dataset, unit_mismatch
from ..equations.expressions import ExpressionError, Scope, parse_expression
from ..equations.model import Model
from ..errors import ConfigError
from ..units import TIME, UnitError, to_si
from .section import missing_section, not_a_parameter, one_unit_message, si_quantity

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "config.schema.yaml"


@functools.lru_cache(maxsize=1)
def _schema_text() -> str:
    return SCHEMA_PATH.read_text(encoding="utf-8")


def load_schema() -> dict:
    """The config schema (a fresh copy: callers may change it)."""
    # libyaml's safe loader when present: the pure-Python one takes ~60 ms on every Snakefile parse
    return yaml.load(_schema_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@functools.lru_cache(maxsize=1)
def _validator():
    """A Draft 2020-12 validator of the schema that fills in ``default:`` values while it validates
    (as ``snakemake.utils.validate`` does, but with a copy of each default, never the schema's object)."""
    return _filling_validator(load_schema())


def _filling_validator(schema: dict):
    from jsonschema import Draft202012Validator, validators

    check_properties = Draft202012Validator.VALIDATORS["properties"]

    def properties_with_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for key, sub in properties.items():
                if "default" in sub and key not in instance:
                    instance[key] = copy.deepcopy(sub["default"])
        yield from check_properties(validator, properties, instance, schema)

    filling = validators.extend(Draft202012Validator, {"properties": properties_with_defaults})
    return filling(schema)


def validate_config(doc: dict, label: str | None = "config", schema: dict | None = None) -> dict:
    """A copy of the config document ``doc`` with defaults filled in, if it matches the schema (``schema``:
    another one than the package's, e.g. a changed copy in a test); else ConfigError with one line naming
    the key path (prefixed by ``label``)."""
    import jsonschema

    doc = copy.deepcopy(doc)
    try:
        (_validator() if schema is None else _filling_validator(schema)).validate(doc)
    except jsonschema.ValidationError as err:
        raise ConfigError(describe_validation_error(err, label)) from None
    return doc


SCHEMA = load_schema()  # for reading descriptions and defaults; validate with validate_config


class DuplicateKeyError(yaml.MarkedYAMLError):
    """A key given twice in one mapping of a YAML document (``problem_mark`` is the second one)."""


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (merge keys ``<<:`` may still be
    overridden). Every config reader of neurofit (and the Snakefile) loads YAML with it."""

    def compose_mapping_node(self, anchor):
        """The mapping node as PyYAML composes it, after checking its keys (before merge keys are expanded)."""
        node = super().compose_mapping_node(anchor)
        first = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            if (key.tag, key.value) in first:
                line = first[key.tag, key.value].line + 1
                raise DuplicateKeyError(problem=f"duplicate key '{key.value}' (first given on line {line})",
                                        problem_mark=key.start_mark)
            first[key.tag, key.value] = key.start_mark
        return node


def load_yaml(text: str, origin: str):
    """The YAML (or JSON) document ``text`` read with ``StrictLoader``; ConfigError "``origin`` line N: ..."
    for a syntax error or a duplicate key."""
    try:
        return yaml.load(text, Loader=StrictLoader)  # a SafeLoader: builds no Python objects
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{origin} line {mark.line + 1}" if mark is not None else origin
        if isinstance(err, DuplicateKeyError):
            raise ConfigError(f"{where}: {err.problem}") from None
        raise ConfigError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None


def read_config(path=None, text: str | None = None) -> tuple[dict, str]:
    """The config document from a YAML/JSON file or a JSON/YAML string → (mapping, origin label)."""
    if (path is None) == (text is None):
        raise ConfigError("give a config file (--config) or a config text (--config-json), not both")
    origin = str(path) if path is not None else "--config-json"
    if path is not None:
        if not Path(path).is_file():
            raise ConfigError(f"{path}: config file not found")
        text = Path(path).read_text(encoding="utf-8")
    doc = load_yaml(text, origin)  # JSON is YAML
    if not isinstance(doc, dict):
        raise ConfigError(f"{origin}: expected a mapping with a 'studies' key, got {type(doc).__name__}")
    return doc, origin


@dataclass
class Study:
    """One validated study section (defaults filled in); builds its model, dataset and settings."""

    name: str
    section: dict
    origin: str = "config"

    @classmethod
    def from_config(cls, doc: dict, name: str, origin: str = "config") -> "Study":
        studies = doc.get("studies")
        if not isinstance(studies, dict) or not studies:
            raise ConfigError(f"{origin}: no 'studies' mapping (expected studies: {{NAME: {{model: ..., data: ...}}}})")
        if name not in studies:
            raise ConfigError(f"{origin}: no study '{name}' under 'studies' (studies: {', '.join(map(str, studies))})")
        section = validate_config({"studies": {name: studies[name]}}, label=None)["studies"][name]
        study = cls(name, section, origin)
        study.check_model_choice()
        return study

    @classmethod
    def load(cls, name: str, path=None, text: str | None = None) -> "Study":
        doc, origin = read_config(path, text)
        return cls.from_config(doc, name, origin)

    def where(self, *keys) -> str:
        return ".".join(["studies", self.name, *keys])

    def to_config(self) -> dict:
        """A config document holding only this study (defaults filled in)."""
        return {"studies": {self.name: copy.deepcopy(self.section)}}

    # --- model -----------------------------------------------------------------------------------
    def check_model_choice(self):
        """ConfigError unless the model section names exactly one of builtin, equations, equations_file (and
        free constants only of a built-in)."""
        if self.section.get("model") is None:  # a rate or reduction study (the schema requires one of them)
            return
        m = self.section["model"]
        given = [k for k in ("builtin", "equations", "equations_file") if m.get(k)]
        if len(given) != 1:
            raise ConfigError(f"{self.where('model')}: give exactly one of builtin, equations, equations_file "
                              f"(got {', '.join(given) or 'none'})")
        if m["builtin"] is not None and m["builtin"] not in models.SPECS:
            raise ConfigError(f"{self.where('model', 'builtin')}: unknown built-in model '{m['builtin']}' "
                              f"(valid: {', '.join(models.SPECS)})")
        if m["builtin"] is None and m["free"]:
            raise ConfigError(f"{self.where('model', 'free')}: only for built-in models; declare the parameter "
                              f"in the equations instead ('Cm : farad (constant)')")

    def _require(self, key: str) -> dict:
        if self.section.get(key) is None:
            raise missing_section(self, key)
        return self.section[key]

    @property
    def builtin(self) -> models.ModelSpec | None:
        name = self._require("model")["builtin"]
        return models.SPECS[name] if name else None

    @property
    def model_label(self) -> str:
        """Short name of the model for titles: the built-in's name, the equations file, or 'equations'."""
        m = self._require("model")
        return m["builtin"] or (Path(m["equations_file"]).name if m["equations_file"] else "equations")

    @property
    def model_files(self) -> list[str]:
        """Files the model is read from (inputs of the workflow rules)."""
        path = (self.section.get("model") or {}).get("equations_file")
        return [path] if path else []

    def model(self) -> Model:
        m = self._require("model")
        events = {k: m[k] for k in ("threshold", "reset", "refractory") if m[k] is not None}
        namespace = dict(m["namespace"])
        if m["builtin"]:
            spec = self.builtin
            unknown = [c for c in m["free"] if c not in spec.constants]
            if unknown:
                raise ConfigError(f"{self.where('model', 'free')}: {', '.join(map(str, unknown))} not a constant of "
                                  f"'{m['builtin']}' (constants: {', '.join(spec.constants) or 'none'})")
            return models.get(m["builtin"], namespace=namespace, free=m["free"], **events)
        if m["equations_file"]:
            path = Path(m["equations_file"])
            if not path.is_file():
                raise ConfigError(f"{self.where('model', 'equations_file')}: {path}: file not found")
            text, origin = path.read_text(encoding="utf-8"), str(path)
        else:
            text, origin = m["equations"], f"{self.where('model', 'equations')}"
        return Model(text, namespace=namespace, inputs=m["inputs"], origin=origin, **events)

    # --- data ------------------------------------------------------------------------------------
    @property
    def data_files(self) -> list[str]:
        """Recorded files the study reads (inputs of the workflow rules)."""
        d = self.section.get("data") or {}
        if "synthetic" in d:
            return []
        if "recording" in d:
            from ..data.recordings.from_settings import recording_files

            return recording_files(d["recording"])
        files = []
        for role in ("inputs", "outputs"):
            for _name, spec in (d.get(role) or {}).items():
                if isinstance(spec, dict) and isinstance(spec.get("path"), str):
                    files.append(spec["path"])
        return files

    @property
    def source_files(self) -> list[str]:
        """Every file the study reads: its recordings and its equations file."""
        return self.data_files + self.model_files

    def dataset(self, model: Model | None = None) -> Dataset:
        """The recordings: read from the files under data.inputs/outputs, or generated by data.synthetic.

        With ``model`` (the study's model, already built), the units of recorded files are checked against
        it before any file is read, and synthetic data are generated with it."""
        d = self._require("data")
        if "synthetic" in d:
            if d.get("inputs") or d["outputs"]:
                raise ConfigError(f"{self.where('data')}: give inputs (recorded files) or synthetic (generated), "
                                  f"not both")
            return self._synthetic_dataset(d, model if model is not None else self.model())
        if "recording" in d:
            if d.get("inputs") or d["outputs"]:
                raise ConfigError(f"{self.where('data')}: give inputs/outputs (array files) or recording (a "
                                  f"current-clamp file), not both")
            from ..data.recordings.from_settings import recording_dataset

            return recording_dataset(d["recording"], self._data_dt(d), self.where("data", "recording"))
        for role in ("inputs", "outputs"):
            for name, spec in d[role].items():
                path = spec.get("path") if isinstance(spec, dict) else None
                if isinstance(path, str) and not Path(path).exists():
                    hint = "" if Path(path).is_absolute() else \
                        f" (relative paths start from the working directory, {Path.cwd()})"
                    raise ConfigError(f"{self.where('data', role, name, 'path')}: {path}: file not found{hint}")
        return load_dataset(inputs=d["inputs"], outputs=d["outputs"], dt=d["dt"], model=model)

    def check(self, model: Model | None = None) -> None:
        """What can be checked against the study's model without reading a recording or simulating, before
        any job (the Snakefile's validation, ``neurofit prepare``): the units of the recorded files against
        the model's dimensions, the initial values of simulate and data.synthetic (quantities, expressions),
        and the size of synthetic data against the memory available. ConfigError naming the key otherwise;
        nothing to check for a study without a model (rate, reduction)."""
        if self.section.get("model") is None:
            return
        model = model if model is not None else self.model()
        d = self.section.get("data") or {}
        if "synthetic" in d:
            from ..data.synthetic import check_size  # it imports ConfigError from here

            check_size(model, d["synthetic"], self._data_dt(d), self.where("data", "synthetic"))
            self.initial_values(model, d["synthetic"]["init"], ("data", "synthetic", "init"))
        for role in ("inputs", "outputs"):
            for name, spec in (d.get(role) or {}).items():
                try:
                    mismatch = unit_mismatch(role, name, spec["unit"], model)
                except UnitError as err:
                    raise ConfigError(f"{self.where('data', role, name, 'unit')}: {err}") from None
                if mismatch:
                    raise ConfigError(f"{self.where('data', role, name)} ({spec['path']}): {mismatch}")
        if "recording" in d:  # the current is in amp and the membrane potential in volt
            r = d["recording"]
            for role, name, unit in (("inputs", r["input"], "amp"), ("outputs", r["output"], "volt")):
                mismatch = unit_mismatch(role, name, unit, model)
                if mismatch:
                    key = "input" if role == "inputs" else "output"
                    raise ConfigError(f"{self.where('data', 'recording', key)} ({r['path']}): {mismatch}")
        if self.section.get("simulate") is not None:
            self.initial_values(model, self.section["simulate"]["init"], ("simulate", "init"))

    def _data_dt(self, d: dict) -> float:
        """data.dt in seconds."""
        return si_quantity(d["dt"], TIME, self.where("data", "dt"))

    def _synthetic_dataset(self, d: dict, model: Model) -> Dataset:
        """data.synthetic: ``model`` simulated at the ground truth (built-in defaults for the rest)."""
        from ..data.synthetic import synthetic_dataset  # it imports ConfigError from here

        s = d["synthetic"]
        truth = self.section["ground_truth"]
        unknown = [p for p in truth if p not in model.parameters]
        if unknown:
            raise not_a_parameter(self.where('ground_truth', unknown[0]), model.parameters)
        params = {**self.default_params(model), **truth}
        missing = [p for p in model.parameters if p not in params]
        if missing:
            raise ConfigError(f"{self.where('ground_truth')}: missing value for {', '.join(missing)} (synthetic "
                              f"data are simulated at the ground truth; only built-in models have defaults)")
        params = {p: self.quantity(v, model, p, ("ground_truth", p)) for p, v in params.items()}
        spec = self.builtin
        settings = dict(s, init=self.initial_values(model, s["init"], ("data", "synthetic", "init")),
                        method=s["method"] or (spec.method if spec is not None else None))
        return synthetic_dataset(model, settings, self._data_dt(d), params, self.where("data", "synthetic"))

    # --- simulation ------------------------------------------------------------------------------
    def simulation_settings(self, model: Model, dataset: Dataset) -> dict:
        """Keyword arguments of ``neurofit.simulate`` (without the model) from the 'simulate' section."""
        s = self._require("simulate")
        spec = self.builtin
        params = self.default_params(model)
        params.update(s["params"])
        unknown = [p for p in s["params"] if p not in model.parameters]
        if unknown:
            raise not_a_parameter(self.where('simulate', 'params', unknown[0]), model.parameters)
        missing = [p for p in model.parameters if p not in params]
        if missing:
            raise ConfigError(f"{self.where('simulate', 'params')}: missing value for {', '.join(missing)}")
        params = {p: self.quantity(v, model, p, ("simulate", "params", p)) for p, v in params.items()}
        init = self.initial_values(model, s["init"], ("simulate", "init"))
        missing_inputs = [i for i in model.inputs if i not in dataset.inputs]
        if missing_inputs:
            raise ConfigError(f"{self.where('data', 'inputs')}: the model needs input(s) {', '.join(missing_inputs)} "
                              f"(given: {', '.join(dataset.inputs) or 'none'})")
        record = s["record"]
        if record is None:
            record = [o for o in dataset.outputs if o in model.recordable()] or model.states[:1]
        spikes = s["spikes"] if s["spikes"] is not None else model.threshold is not None
        method = s["method"] or (spec.method if spec is not None else None)
        return dict(params=params, inputs={i: dataset.inputs[i] for i in model.inputs}, dt=dataset.dt, init=init,
                    record=tuple(record), spikes=spikes, method=method, backend=s["backend"], dtype=s["dtype"],
                    seed=s["seed"], threads=s["threads"])

    def quantity(self, value, model: Model, name: str, keys: tuple):
        """``value`` (or a list of them) in SI, checked against the dimension of ``model``'s ``name``;
        ConfigError naming the key path ``keys`` otherwise (``section.si_quantity``)."""
        expected = model.dimensions.get(name)
        out = [si_quantity(v, expected, self.where(*keys)) for v in (value if isinstance(value, list) else [value])]
        return out if isinstance(value, list) else out[0]

    def default_params(self, model: Model) -> dict:
        """The built-in's typical values of the model's parameters, freed constants at their constant's value
        (nothing for equations)."""
        spec = self.builtin
        if spec is None:
            return {}
        params = {p: v for p, v in spec.defaults.items() if p in model.parameters}
        params.update({c: spec.constants[c][0] for c in self.section["model"]["free"]})
        return params

    def initial_values(self, model: Model, given: dict, keys: tuple) -> dict:
        """The built-in's initial values overridden by ``given`` (the section at ``keys``), SI where a quantity."""
        spec = self.builtin
        init = dict(spec.init) if spec is not None else {}
        init.update(given)
        bad = [k for k in init if k not in model.states]
        if bad:
            raise ConfigError(f"{self.where(*keys, bad[0])}: not a state variable "
                              f"(states: {', '.join(model.states)})")
        return {k: self._init_value(v, model, k, keys) for k, v in init.items()}

    def _init_value(self, value, model: Model, state: str, keys: tuple):
        """One initial value: a quantity string → SI; an expression (e.g. 'alpha_m/(alpha_m + beta_m)') is
        parsed with the model's restricted parser and kept as text (simulate evaluates it); numbers as given."""
        if not isinstance(value, str):
            return value
        where = self.where(*keys, state)
        try:
            return to_si(value, model.dimensions.get(state), name=where)
        except UnitError as err:
            if "has units of" in str(err):
                raise ConfigError(one_unit_message(str(err))) from None
            not_a_quantity = " ".join(str(err).split())
        scope = model.scope  # inputs found in the equations join the declared symbols; no new names
        symbols = {**scope.symbols, **{n: (sym, scope.input_dims.get(n)) for n, sym in scope.new_inputs.items()}}
        try:
            _, dim = parse_expression(value, Scope(symbols, scope.constants))
        except ExpressionError as err:
            if str(err).startswith("syntax error"):
                raise ConfigError(f"{where}: '{value}' is neither a quantity ({not_a_quantity}) nor an expression "
                                  f"({err})") from None
            raise ConfigError(f"{where}: initial value '{value}': {err}") from None
        expected = model.dimensions.get(state)
        if dim is not None and expected is not None and dim != expected:
            raise ConfigError(f"{where}: the expression '{value}' has units of {dim}, but {state} is in {expected}")
        return value


def describe_validation_error(err, label: str | None = "config") -> str:
    """One line for a ``jsonschema.ValidationError`` of the config: the key path and what is wrong,
    prefixed by ``label`` (the Snakefile's "config: ...")."""
    path = ".".join(str(p) for p in err.absolute_path)
    where = ": ".join(x for x in (label, path) if x) or "config"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = err.schema.get("properties", {})
        unknown = sorted(k for k in err.instance if k not in allowed)
        if unknown and allowed:
            return f"{where}.{unknown[0]}: unknown key (valid keys: {', '.join(allowed)})"
    if err.validator == "required":
        missing = err.message.split("'")[1] if "'" in err.message else err.message
        return f"{where}.{missing}: missing (required)"
    if err.validator == "enum":
        valid = ", ".join("null" if v is None else str(v) for v in err.validator_value)
        return f"{where}: {err.instance!r} is not valid (valid: {valid})"
    if err.validator == "dependentRequired" and isinstance(err.instance, dict):
        for key, needs in err.validator_value.items():
            missing = [k for k in needs if k not in err.instance]
            if key in err.instance and missing:
                return f"{where}.{missing[0]}: missing (required with {key})"
    if err.validator == "anyOf" and all("description" in sub for sub in err.validator_value):
        options = [sub["description"] for sub in err.validator_value]
        if all(list(sub) in (["required", "description"], ["description", "required"]) for sub in err.validator_value):
            return f"{where}: give at least one of {', '.join(options)}"
        return f"{where}: {err.instance!r} is not valid (expected {', or '.join(options)})"
    return f"{where}: {' '.join(err.message.split())}"

