"""Helpers for the Snakemake workflow (imported by the Snakefile and workflow/rules/*.smk), and the one hand-off
between a config file and the jobs: ``neurofit prepare`` reads the config file(s) and writes the frozen study,
results/<study>/study.yaml (``frozen_section``); every other job reads that file.

A study's ``description`` (free text) is not frozen: study.yaml, and so every job's input, is the same whatever
it says, and the prepare rule re-runs only when ``section_fingerprint`` (the section without its description)
changes. Editing a description, then ``snakemake -n``, reports nothing to do.
"""
from __future__ import annotations

import collections.abc
import copy
import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import NoReturn

#: Keys of a study section left out of results/<study>/study.yaml: free text that determines no number (the
#: config files and the report keep it). Changing them re-runs no job.
NOT_FROZEN = ("description",)


def put_command_on_path(python: str = sys.executable) -> bool:
    """Put the folder of ``python`` (holding the ``neurofit`` command of its environment) first on PATH.

    Rules call ``neurofit``; with this, ``.venv/bin/snakemake`` works without activating .venv (as
    ``make run`` does), and jobs use the neurofit of the Python that runs Snakemake. A rule's conda
    environment (``--sdm conda``) is activated inside the job and still comes first.
    Returns True if PATH changed.
    """
    folder = str(Path(python).parent)
    path = os.environ.get("PATH", "")
    if not (Path(folder) / "neurofit").exists() or path.split(os.pathsep)[0] == folder:
        return False
    os.environ["PATH"] = folder + (os.pathsep + path if path else "")
    return True


def config_error(message: str) -> NoReturn:
    """Stop Snakemake while it reads the Snakefile: ``message`` (one line, e.g. "config: studies.x.fit.n_samples:
    ...") is printed on stderr and Snakemake exits with status 1 - no traceback, no job started. (A
    WorkflowError would be logged on stdout with the Snakefile's file and line around it.)"""
    raise SystemExit(" ".join(str(message).split()))


# --- the frozen study ------------------------------------------------------------------------------------------

def frozen_section(section: dict) -> dict:
    """A copy of a (validated) study section without the keys of ``NOT_FROZEN``: what study.yaml holds."""
    return {key: copy.deepcopy(value) for key, value in section.items() if key not in NOT_FROZEN}


def section_fingerprint(section: dict) -> str:
    """sha256 of the frozen part of a study section (keys sorted): the prepare rule's parameter, so that the
    study is prepared again exactly when something but its description changed."""
    text = json.dumps(frozen_section(section), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- config files ----------------------------------------------------------------------------------------------

def merge_config(base: dict, update: dict) -> dict:
    """``base`` updated in place by ``update``, mappings merged key by key at every depth, anything else
    replaced: what Snakemake does with several config files (``snakemake.utils.update_config``)."""
    for key, value in update.items():
        if isinstance(value, collections.abc.Mapping):
            sub = base.get(key)
            base[key] = merge_config(sub if isinstance(sub, dict) else {}, value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def merged_config_files(workflow, default: str) -> list[str]:
    """The config files Snakemake merged into ``config``, in merge order: the Snakefile's ``configfile:``
    (``default``, when it exists and ``--replace-workflow-config`` did not discard it), then every
    ``--configfile`` (absolute paths). Values given with ``--config KEY=VALUE`` are in no file."""
    settings = workflow.config_settings
    replaced = bool(settings.replace_workflow_config and settings.overwrite_config)
    return ([] if replaced or not os.path.isfile(default) else [default]) + [str(f) for f in settings.configfiles]


def config_file_argument(path, cwd=None) -> str:
    """How a job names the config file ``path``: relative to the working directory when it lies below it (the
    command, and so the rule's parameters, stay the same when the project moves), else absolute; symlinks
    resolved (the file actually read, as manifests record it)."""
    real = Path(os.path.realpath(path))
    here = Path(os.path.realpath(cwd or os.getcwd()))
    try:
        return str(real.relative_to(here))
    except ValueError:
        return str(real)


def study_config_files(docs: dict, studies: dict) -> dict:
    """Study name -> the config files that define it: those among ``docs`` (path -> config document, in
    Snakemake's merge order) whose ``studies`` mapping holds the name. Merged in this order they give the
    study's section (the other files do not touch it), which ``studies`` (name -> its ``Study``, from
    Snakemake's ``config``) must match but for the description: ConfigError otherwise (a study changed with
    ``snakemake --config ...``, which no job could read)."""
    from ..errors import ConfigError
    from .study import Study

    found = {}
    for name, study in studies.items():
        files = [path for path, doc in docs.items() if name in (doc.get("studies") or {})]
        merged = {}
        for path in files:
            merge_config(merged, {"studies": {name: docs[path]["studies"][name]}})
        try:
            same = bool(files) and frozen_section(Study.from_config(merged, name).section) == \
                frozen_section(study.section)
        except ConfigError:
            same = False
        if not same:
            given = ", ".join(files) or "none defines it"
            raise ConfigError(f"studies.{name}: not what the config files give ({given}): the jobs read a study "
                              f"from its config files, not from `snakemake --config`; put the change in a file "
                              f"(--configfile FILE)")
        found[name] = files
    return found


def study_pattern(names) -> str:
    """A wildcard constraint matching exactly the study names ``names`` (none: a pattern that never matches)."""
    names = sorted(names)
    return "|".join(re.escape(n) for n in names) if names else "(?!)"
