"""A study's ``infer`` section → simulation-based inference in workflow jobs (scatter / gather).

``run_training_chunk`` simulates one chunk of the training data (→ .npz with theta, x), any number of
which ``gather_training_chunks`` joins into exactly the arrays of one unchunked run; ``run_inference``
trains and writes the posterior, samples and figures, the misspecification check (summary.json: are the
data's features among the training simulations'?) and the posterior predictive check of the features
(predictive_check.json, .png); ``run_calibration`` checks the posterior by
simulation-based calibration. ``InferSection`` reads and checks the section (its ``check()``, run by
``check_infer_section``, is the cheap check the workflow runs before any job). Keys and defaults of the
section: the config schema. torch is imported only by the jobs.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.dataset import Dataset
from ..data.files import atomic_save_npz, atomic_write_bytes, check_memory
from ..errors import NeurofitError
from ..units import TIME
from .section import Section
from .study import ConfigError, Study, validate_config

if TYPE_CHECKING:
    from ..inference.inferencer import Inferencer

CHUNK_FORMAT = "neurofit.training_chunk"
INFERENCE_FILES = ("posterior.pt", "samples.parquet", "posterior.csv", "summary.json", "pairplot.png",
                   "predictive.png", "predictive_check.json", "predictive_check.png")
CALIBRATION_FILES = ("sbc_ranks.png", "coverage.png", "calibration.json")


class TrainingDataError(NeurofitError):
    """Training-data chunks that cannot be gathered (the message names the file)."""


#: Memory the workflow's Snakemake process needs per job of its graph (measured: about 20 kB).
JOB_BYTES = 50_000
#: Posterior samples drawn per test simulation by the calibration (as run_calibration does).
SBC_POSTERIOR_SAMPLES = 1000
#: Added to infer.seed for the calibration's test simulations, a stream apart from the training data's.
CALIBRATION_SEED_OFFSET = 1
#: Posterior draws simulated by the posterior predictive check of the features (predictive_check.json).
PREDICTIVE_SIMULATIONS = 100
#: Added to infer.seed for the predictive check's observation noise (Inferencer.predictive_check's default).
PREDICTIVE_SEED_OFFSET = 2

AUTO = "auto"  # infer.noise: estimated from the recordings' baseline
TRAINING_KEYS = ("bounds", "features", "window", "spike_threshold", "noise", "n_samples", "seed", "batch_size",
                 "raw_samples")  # the infer settings that determine the training data


def _simulation(study: Study) -> dict:
    """The study's simulate section with defaults filled in (all defaults when it has none)."""
    section = {**study.section, "simulate": study.section.get("simulate") or {}}
    return validate_config({"studies": {"study": section}}, label=None)["studies"]["study"]["simulate"]


class InferSection(Section):
    """The checked ``infer`` section of a study: the prior (infer.bounds, every other parameter fixed at its
    simulate.params or built-in value), features, noise and sizes; builds the ``Inferencer``. Simulation
    settings (init, method, backend, dtype) come from the study's ``simulate`` section (its defaults when
    it has none). Every mistake is a ``ConfigError`` whose message starts with the key path."""

    NAME = "infer"

    def __init__(self, study: Study, model=None):
        super().__init__(study)
        self.model = model if model is not None else study.model()
        self.parameters = list(self.model.parameters)
        self.simulation = _simulation(study)

    def check(self) -> None:
        """Before any job (no data, no torch): the prior names parameters of the model, with valid ranges;
        noise and window are quantities in the units of their variables; feature names are the library's or
        eFEL's, and spike features have a spike threshold; n_chunks is at most n_samples, and n_samples,
        sbc_simulations and n_chunks fit in the memory available (counting one feature: the data decide the
        rest)."""
        self.prior_bounds()
        self._check_quantities()
        self._check_feature_names()
        infer = self.settings
        if infer["n_chunks"] > infer["n_samples"]:
            raise ConfigError(f"{self.where('n_chunks')}: {infer['n_chunks']} chunks for {infer['n_samples']} "
                              f"simulations (n_samples); give at most one chunk per simulation")
        check_memory(self.where("n_chunks"), JOB_BYTES * infer["n_chunks"],
                     f"{infer['n_chunks']} chunk jobs in Snakemake's job graph")
        self.check_memory(len(infer["bounds"]), 1)

    def _check_quantities(self) -> None:
        """noise (SD per recorded variable, in its units, or auto) and window (start, end: times)."""
        noise = self.settings["noise"]
        for var, value in (noise if isinstance(noise, dict) else {}).items():
            if value != AUTO:
                self.quantity(("noise", var), self.model.dimensions.get(var))
        if self.settings["window"] is not None:
            self.quantity("window", TIME)

    def _check_feature_names(self) -> None:
        """ConfigError naming infer.features.<output> for a name that is neither the library's (trace features,
        or spike features under 'spikes') nor an eFEL feature (traces only; 'efel:' prefix allowed)."""
        import difflib

        from ..inference.features import SPIKE_FEATURES, SPIKES, TRACE_FEATURES, _efel_names
        efel_names = None  # eFEL's list, read once if a name is not the library's
        for var, items in (self.settings["features"] or {}).items():
            library = SPIKE_FEATURES if var == SPIKES else TRACE_FEATURES
            for item in items:
                if item in library:
                    continue
                if var != SPIKES:
                    efel_names = efel_names if efel_names is not None else _efel_names()
                    if (item[len("efel:"):] if item.startswith("efel:") else item) in efel_names:
                        continue
                close = difflib.get_close_matches(item, [*library, *sorted(efel_names or ())], n=3)
                hint = f"did you mean {', '.join(close)}? " if close else ""
                efel = "" if var == SPIKES else "; or an eFEL feature name"
                raise ConfigError(f"{self.where('features', var)}: unknown feature '{item}' ({hint}library: "
                                  f"{', '.join(library)}{efel})")

    def check_memory(self, n_parameters: int, n_features: int, n_traces: int = 1, n_steps: int = 1,
                     n_variables: int = 0) -> None:
        """ConfigError naming the infer key whose arrays exceed the memory available: the training data of
        n_samples (theta and features, with the copies training makes), a batch of batch_size simulations of
        ``n_variables`` recorded variables (n_traces x n_steps samples each), and the calibration's
        sbc_simulations tests with their posterior samples."""
        infer = self.settings
        n, per_set = infer["n_samples"], n_parameters + n_features
        check_memory(self.where("n_samples"), 8.0 * 3 * n * per_set,
                     f"{n} simulations x ({n_parameters} parameters + {n_features} feature(s))")
        if n_variables:
            batch = min(infer["batch_size"], n)
            check_memory(self.where("batch_size"), 8.0 * batch * n_traces * n_steps * n_variables,
                         f"{batch} simulations x {n_traces} traces x {n_steps} steps x {n_variables} variable(s)")
        sbc = infer["sbc_simulations"]
        check_memory(self.where("sbc_simulations"), 8.0 * sbc * (SBC_POSTERIOR_SAMPLES * n_parameters + per_set),
                     f"{sbc} tests x {SBC_POSTERIOR_SAMPLES} posterior samples x {n_parameters} parameters")

    def prior_bounds(self) -> dict:
        """infer.bounds plus a fixed value for every other parameter (simulate.params, else the built-in's
        value), checked."""
        from ..inference.features import SPIKES
        infer, model = self.settings, self.model
        bounds = dict(infer["bounds"])
        for p, value in {**self.study.default_params(model), **self.simulation["params"]}.items():
            if p in model.parameters:
                bounds.setdefault(p, value)
        self.read_bounds(bounds, "bounds", model.parameters, model.dimensions, allow_fixed=True)
        if infer["n_rounds"] > 1 and infer["sbc_simulations"] > 0:
            raise ConfigError(f"{self.where('sbc_simulations')}: calibration needs an amortized posterior "
                              f"(n_rounds 1); a multi-round posterior is only valid at the recorded data: set "
                              f"sbc_simulations to 0 or n_rounds to 1")
        if infer["features"] and SPIKES in infer["features"] and infer["spike_threshold"] is None:
            raise ConfigError(f"{self.where('spike_threshold')}: spike features need the data's spike "
                              f"times: give the voltage threshold of a spike (e.g. '0 mV')")
        return bounds

    def inferencer(self, dataset: Dataset | None = None, noise: dict | None = None) -> tuple["Inferencer", Dataset]:
        """An Inferencer (prior set) and the dataset; ``dataset`` (e.g. data.npz of ``neurofit prepare``)
        replaces reading the recordings; ``noise`` ({output: SD}, SI) replaces infer.noise (e.g. the noise
        pooled over a group of cells)."""
        from ..inference.features import SPIKES, detect_spikes
        from ..inference.inferencer import Inferencer
        infer, model, simulation, study = self.settings, self.model, self.simulation, self.study
        bounds = self.prior_bounds()
        self._check_quantities()
        dataset = dataset if dataset is not None else study.dataset()
        spec = study.builtin
        init = study.initial_values(model, simulation["init"], ("simulate", "init"))
        output = dict(dataset.outputs)
        if infer["features"] and SPIKES in infer["features"]:
            if not output:
                raise ConfigError(f"{self.where('features')}: spike features need a recorded voltage "
                                  f"(data outputs)")
            name, first = next(iter(output.items()))
            threshold = self.quantity("spike_threshold", model.dimensions.get(name))
            output[SPIKES] = detect_spikes(first, dataset.dt, threshold)
        missing = [i for i in model.inputs if i not in dataset.inputs]
        if missing:
            raise ConfigError(f"{study.where('data', 'inputs')}: the model needs input(s) {', '.join(missing)} "
                              f"(given: {', '.join(dataset.inputs) or 'none'})")
        method = simulation["method"] or (spec.method if spec else None)
        try:
            inferencer = Inferencer(dataset.dt, model, {i: dataset.inputs[i] for i in model.inputs}, output,
                                    features=infer["features"], method=method, param_init=init,
                                    backend=simulation["backend"], dtype=simulation["dtype"], seed=infer["seed"],
                                    window=infer["window"], batch_size=infer["batch_size"], threads=infer["threads"],
                                    raw_samples=infer["raw_samples"], noise=self.noise() if noise is None else noise)
            inferencer.init_prior(**bounds)
        except ValueError as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{self.where()}: {err}") from None
        self.check_memory(len(inferencer.param_names), len(inferencer.feature_names), inferencer.n_traces,
                          inferencer.n_steps, max(1, len(inferencer.feature_set.trace_vars)))
        return inferencer, dataset

    def noise(self):
        """infer.noise for the Inferencer: as given, or when null "auto" for recorded data (data.inputs/outputs
        files, data.recording) and {} (none) for data.synthetic."""
        noise = self.settings["noise"]
        if noise is None:
            return {} if "synthetic" in (self.study.section.get("data") or {}) else AUTO
        return noise

    def truth(self, names) -> dict:
        """The study's ground truth (SI) of the parameters ``names``, for the figures and the table."""
        return {p: v for p, v in self.read_ground_truth(self.model).items() if p in names}


def check_infer_section(study: Study, model=None) -> None:
    """``InferSection(study, model).check()``: the cheap check the workflow runs before any job."""
    InferSection(study, model).check()


def inferencer_from_config(study: Study, dataset: Dataset | None = None) -> tuple["Inferencer", dict, Dataset]:
    """An Inferencer (prior set), the study's ``infer`` settings (defaults filled in) and the dataset, for a
    study with an ``infer`` section; ``dataset`` (e.g. data.npz of ``neurofit prepare``) replaces reading
    the recordings."""
    section = InferSection(study)
    inferencer, dataset = section.inferencer(dataset)
    return inferencer, section.settings, dataset


def _training_hash(study: Study, inputs: dict, noise_estimate: dict | None = None) -> str:
    """Hash of what determines a study's training data - its model, data and simulate sections, the infer
    settings of TRAINING_KEYS, the input arrays and the noise SDs estimated from the recordings (noise auto;
    {var: SD}) - not threads, chunking or training settings."""
    section = study.section
    what = {"model": section.get("model"), "data": section.get("data"), "simulate": section.get("simulate"),
            "infer": {k: section["infer"][k] for k in TRAINING_KEYS}}
    if noise_estimate:
        what["noise_estimate"] = {k: float(v) for k, v in sorted(noise_estimate.items())}
    digest = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode())
    for name in sorted(inputs):
        digest.update(name.encode() + np.ascontiguousarray(inputs[name], dtype=np.float64).tobytes())
    return digest.hexdigest()[:16]


def run_training_chunk(study: Study, chunk: int, n_chunks: int, out_path, dataset: Dataset | None = None) -> Path:
    """Simulate chunk ``chunk`` (0 .. n_chunks-1) of a study's training data and write theta, x (.npz, atomic)."""
    from ..inference.inferencer import chunk_range
    inferencer, infer, _ = inferencer_from_config(study, dataset)
    theta, x = inferencer.simulate_training_chunk(infer["n_samples"], chunk, n_chunks)
    start, stop = chunk_range(infer["n_samples"], chunk, n_chunks)
    meta = {"format": CHUNK_FORMAT, "version": 1, "chunk": chunk, "n_chunks": n_chunks, "start": start, "stop": stop,
            "n_samples": infer["n_samples"], "seed": infer["seed"],
            "config_hash": _training_hash(study, inferencer.input, inferencer.noise_estimate),
            "param_names": inferencer.param_names, "feature_names": inferencer.feature_names,
            "n_invalid": int((~np.all(np.isfinite(x), axis=1)).sum()),
            "backend": inferencer.simulation_backend, "dtype": inferencer.dtype}
    return atomic_save_npz(out_path, {"theta": theta, "x": x, "__meta__": np.array(json.dumps(meta))})


def _read_chunk(path, keys=()) -> tuple[dict, list]:
    """The metadata of a training chunk and its arrays ``keys``, from one opening of the file."""
    try:
        archive = np.load(path, allow_pickle=False)  # a missing file raises FileNotFoundError (names the path)
    except ValueError:
        archive = None
    meta, arrays = {}, []
    if isinstance(archive, np.lib.npyio.NpzFile):
        with archive:
            if "__meta__" in archive.files:
                meta = json.loads(str(archive["__meta__"]))
            if meta.get("format") == CHUNK_FORMAT:
                arrays = [archive[key] for key in keys]
    if meta.get("format") != CHUNK_FORMAT:
        raise TrainingDataError(f"{path}: not a training chunk (written by 'neurofit simulate --chunk')")
    return meta, arrays


def read_chunk_meta(path) -> dict:
    """The metadata of a training chunk (chunk, n_chunks, start, stop, n_samples, seed, names, n_invalid)."""
    return _read_chunk(path)[0]


def gather_training_chunks(paths, study: Study | None = None, inputs: dict | None = None,
                           noise_estimate: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(theta, x) of all chunks, in chunk order: exactly the arrays of one unchunked run. With ``study``,
    its ``inputs`` (name → array) and the noise SDs estimated from its recordings (``noise_estimate``,
    {var: SD}), the chunks must have been simulated for its current settings."""
    parts = []
    for path in paths:
        meta, (theta, x) = _read_chunk(path, ("theta", "x"))
        parts.append((meta, theta, x, str(path)))
    if not parts:
        raise TrainingDataError("gather_training_chunks: no chunk files given")
    first = parts[0][0]
    for meta, _, _, path in parts:
        for key in ("n_chunks", "n_samples", "seed", "config_hash"):
            if meta[key] != first[key]:
                raise TrainingDataError(f"{path}: {key} = {meta[key]!r} but {parts[0][3]} has {first[key]!r}; "
                                        f"all chunks must come from one run")
    if study is not None and first["config_hash"] != _training_hash(study, inputs or {}, noise_estimate):
        raise TrainingDataError(f"{parts[0][3]}: simulated for other settings than study '{study.name}' has now "
                                f"(model, data, simulate or infer's prior, features, noise, n_samples, seed, "
                                f"the input traces or the noise estimated from the recordings); simulate the "
                                f"chunks again")
    found = sorted(meta["chunk"] for meta, *_ in parts)
    if found != list(range(first["n_chunks"])):
        missing = sorted(set(range(first["n_chunks"])) - set(found))
        raise TrainingDataError(f"gather_training_chunks: chunks {found} given; need each of "
                                f"0 .. {first['n_chunks'] - 1} once" + (f" (missing {missing})" if missing else ""))
    parts.sort(key=lambda p: p[0]["chunk"])
    return np.concatenate([p[1] for p in parts]), np.concatenate([p[2] for p in parts])


def run_inference(study: Study, chunk_paths, out_dir, dataset: Dataset | None = None) -> dict:
    """Gather training chunks, train, and write the posterior (posterior.pt), samples (samples.parquet,
    SI), pairplot.png, predictive.png, summary.json (with the observation noise used and the
    misspecification check) and the posterior predictive check of the features (predictive_check.json,
    predictive_check.png; PREDICTIVE_SIMULATIONS draws) into ``out_dir``; returns {name: path}."""
    import pandas as pd

    from ..data.files import atomic_write_json, atomic_write_text
    from ..inference import diagnostics
    from ..plots import save_figure
    out_dir = Path(out_dir)
    section = InferSection(study)
    inferencer, dataset = section.inferencer(dataset)
    infer = section.settings
    theta, x = gather_training_chunks(chunk_paths, study, inferencer.input, inferencer.noise_estimate)
    if theta.shape[1] != len(inferencer.param_names) or x.shape[1] != len(inferencer.feature_names):
        raise TrainingDataError(f"training chunks hold {theta.shape[1]} parameters and {x.shape[1]} features; "
                                f"the study infers {len(inferencer.param_names)} with "
                                f"{len(inferencer.feature_names)} features")
    settings = sbi_settings(infer)
    inferencer.infer(theta=theta, x=x, **settings)
    rounds = [_round_summary(inferencer, theta.shape[0])]
    for _ in range(infer["n_rounds"] - 1):  # later rounds simulate from the last posterior (or the truncated
        inferencer.infer(n_samples=infer["n_samples"], truncate=infer["truncate"], **settings)  # prior), in this job
        rounds.append(_round_summary(inferencer, infer["n_samples"]))
    paths = {name: out_dir / name for name in INFERENCE_FILES}
    inferencer.save_posterior(paths["posterior.pt"])
    samples = inferencer.sample((infer["num_posterior_samples"],))
    buffer = io.BytesIO()
    pd.DataFrame(samples, columns=inferencer.param_names).to_parquet(buffer, index=False)
    atomic_write_bytes(paths["samples.parquet"], buffer.getvalue())
    units = {p: str(inferencer.model.dimensions[p]) for p in inferencer.param_names}
    truth = section.truth(inferencer.param_names)
    save_figure(diagnostics.plot_posterior(samples, inferencer.param_names, units, truth), paths["pairplot.png"])
    var = inferencer.feature_set.trace_vars[0] if inferencer.feature_set.trace_vars else next(iter(inferencer.output))
    predicted = inferencer.generate_traces(n_samples=50, output_var=var, reduce=None)
    t = np.arange(inferencer.n_steps) * inferencer.dt
    save_figure(diagnostics.plot_predictive(t, inferencer.output[var], predicted, inferencer.input, var=var,
                                            units=dataset.units), paths["predictive.png"])
    table = _posterior_table(samples, inferencer.param_names, units, truth)
    atomic_write_text(paths["posterior.csv"], table.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    summary = {"n_simulations": sum(r["n_simulations"] for r in rounds),
               "n_invalid": sum(r["n_invalid"] for r in rounds), "rounds": rounds, "method": infer["method"],
               "parameters": {row["parameter"]: {k: row[k] for k in ("mean", "median", "q05", "q95")}
                              for row in table.to_dict("records")},
               "noise": {var: {"sd": float(sd), "estimated": var in inferencer.noise_estimate}
                         for var, sd in inferencer.noise.items()},
               "misspecification": None if inferencer.misspecification is None
               else inferencer.misspecification.to_dict()}
    atomic_write_json(paths["summary.json"], summary)
    check = inferencer.predictive_check(PREDICTIVE_SIMULATIONS, seed=infer["seed"] + PREDICTIVE_SEED_OFFSET,
                                        samples=samples)  # the first draws of samples.parquet
    atomic_write_json(paths["predictive_check.json"], {"seed": infer["seed"] + PREDICTIVE_SEED_OFFSET,
                                                       **check.to_dict()})
    save_figure(diagnostics.plot_predictive_check(check, _feature_units(inferencer, dataset.units)),
                paths["predictive_check.png"])
    return paths


def sbi_settings(infer: dict) -> dict:
    """The keyword arguments of ``Inferencer.infer`` that the infer settings ``infer`` (defaults filled in) give:
    method, density estimator, and sbi's inference, training and posterior options."""
    return dict(inference_method=infer["method"], density_estimator_model=infer["density_estimator"],
                inference_kwargs=infer["inference_kwargs"], train_kwargs=infer["train"],
                posterior_kwargs=infer["posterior"])


def _feature_units(inferencer: "Inferencer", units: dict) -> dict:
    """Feature name → SI unit name for the figures: a trace feature in its variable's unit (units: variable
    → unit, e.g. {"v": "volt"}; kurtosis dimensionless), spike times and intervals in seconds, counts
    dimensionless, eFEL and callable features unknown (left out)."""
    from ..inference.features import SPIKES, TRACE_FEATURES, FeatureSet
    found = {}
    if not isinstance(inferencer.feature_set, FeatureSet):  # automatic features: block means of the traces
        return {name: units.get(name.split("[")[0]) for name in inferencer.feature_names}
    for name in inferencer.feature_names:
        var, label = name.split("[")[0], name.rsplit(".", 1)[-1]
        if var == SPIKES:
            found[name] = "1" if label == "spike_count" else "second"
        elif label in TRACE_FEATURES:
            found[name] = "1" if label == "v_kurtosis" else units.get(var)
    return found


def _posterior_table(samples, names, units: dict, truth: dict):
    """One row per parameter: SI unit, posterior mean, median, 5 % and 95 % quantiles, the truth if known
    (SI) and whether the central 90 % interval holds it."""
    import pandas as pd
    rows = []
    for k, name in enumerate(names):
        q05, median, q95 = np.quantile(samples[:, k], [0.05, 0.5, 0.95])
        known = truth.get(name)
        rows.append({"parameter": name, "unit": units.get(name, ""), "mean": float(samples[:, k].mean()),
                     "median": float(median), "q05": float(q05), "q95": float(q95), "truth": known,
                     "truth_in_90": None if known is None else bool(q05 <= known <= q95)})
    return pd.DataFrame(rows)


def _round_summary(inferencer: "Inferencer", n_simulations: int) -> dict:
    """Simulations, invalid ones, and the training of the round just run (epochs, best validation loss)."""
    training = inferencer.inference.summary
    return {"n_simulations": int(n_simulations), "n_invalid": int(inferencer.n_invalid),
            "epochs": int(training["epochs_trained"][-1]),
            "best_validation_loss": float(training["best_validation_loss"][-1])}


def run_calibration(study: Study, posterior_path, out_dir, dataset: Dataset | None = None) -> dict:
    """Simulation-based calibration of a study's posterior (``infer.sbc_simulations`` test simulations from
    the prior): write sbc_ranks.png, coverage.png and calibration.json into ``out_dir``; returns {name: path}."""
    from ..data.files import atomic_write_json
    from ..inference import diagnostics
    from ..plots import save_figure
    section = InferSection(study)
    infer = section.settings
    if infer["sbc_simulations"] < 1:
        raise ConfigError(f"{section.where('sbc_simulations')}: 0; give the number of test simulations "
                          f"(e.g. 200) to calibrate the posterior")
    inferencer, _ = section.inferencer(dataset)
    inferencer.load_posterior(posterior_path)
    result = diagnostics.simulation_based_calibration(inferencer, infer["sbc_simulations"],
                                                      num_posterior_samples=1000, seed=infer["seed"] + CALIBRATION_SEED_OFFSET)
    coverage = result.coverage()
    out_dir = Path(out_dir)
    paths = {name: out_dir / name for name in CALIBRATION_FILES}
    save_figure(diagnostics.plot_rank_histograms(result, inferencer.param_names), paths["sbc_ranks.png"])
    save_figure(diagnostics.plot_coverage(diagnostics.LEVELS, coverage, inferencer.param_names,
                                          result.ranks.shape[0]), paths["coverage.png"])
    atomic_write_json(paths["calibration.json"], {
        "levels": diagnostics.LEVELS.round(2).tolist(),
        "coverage": {p: coverage[:, k].tolist() for k, p in enumerate(inferencer.param_names)},
        "n_tests": int(result.ranks.shape[0]), "n_invalid": result.n_invalid, "num_posterior_samples": 1000})
    return paths
