"""`adgen doctor`: the settings in force, what can run here, and the store in use.

Exit code 1, with one line per problem naming the setting to change, when the configured
choice cannot run (an unknown backend, an unusable font override, a store that cannot be
written, settings that do not validate); 0 otherwise. Informational findings (no GPU,
no torch) are not problems while every configured backend runs on CPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from adgen_dagster.cli._app import EXIT_FAILED, Failed, Verbose, app, load_settings, reporting, say

EPILOG = """\
Examples:

\b
  adgen doctor
  ADGEN_SEGMENTER=birefnet adgen doctor       # exit code 1: that backend cannot run here
  ADGEN_STORE__ROOT=/srv/adgen adgen doctor   # is that store writable?
  adgen doctor --all                          # every setting, with its value in force"""

BACKENDS = (  # (setting field, registry table, kind, environment variable)
    ("segmenter", "SEGMENTERS", "segmenter", "ADGEN_SEGMENTER"),
    ("background", "BACKGROUNDS", "background", "ADGEN_BACKGROUND"),
    ("analyzer", "ANALYZERS", "analyzer", "ADGEN_ANALYZER"),
)
CPU_BACKENDS = {"classical", "studio"}  # the built-in backends: CPU only, no weights
SHIPPED_MODEL = {"auto", "u2netp"}  # CPU, with the model shipped in the package (checked by its sha256)


def flatten(doc: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows: list[tuple[str, object]] = []
    for k, v in doc.items():
        if isinstance(v, dict):
            rows += flatten(v, f"{prefix}{k}.")
        else:
            rows.append((f"{prefix}{k}", v))
    return rows


def default_settings() -> dict:
    """Every setting's built-in default (what the environment overrides)."""
    from pydantic import BaseModel

    from adgen_dagster.settings import AdgenSettings

    out = {}
    for name, info in AdgenSettings.model_fields.items():
        value = info.get_default(call_default_factory=True)
        out[name] = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    return out


def env_name(dotted: str) -> str:
    return "ADGEN_" + dotted.replace(".", "__").upper()


def shipped_model_check() -> tuple[str, str | None]:
    """(line, problem or None) for the cut-out model shipped in the package."""
    from adgen_dagster.models import u2netp

    try:
        u2netp.load_net()
    except u2netp.U2NetError as exc:
        return "DAMAGED", f"ADGEN_SEGMENTER: {exc}"
    return f"U2-Net-p, shipped ({u2netp.MODEL_PATH}, sha256 ok)", None


def store_check(settings) -> tuple[str, str | None]:
    """(description, problem or None) for the configured store."""
    kind = settings.store.kind
    if kind == "local":
        root = Path(settings.store.root).expanduser().resolve()
        if root.exists():
            if not root.is_dir():
                return f"local, root {root}", f"ADGEN_STORE__ROOT: {root} is a file, not a folder"
            if os.access(root, os.W_OK | os.X_OK):
                return f"local, root {root} (exists, writable)", None
            return f"local, root {root}", f"ADGEN_STORE__ROOT: {root} is not writable by this user"
        parent = root.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if parent.is_dir() and os.access(parent, os.W_OK | os.X_OK):
            return f"local, root {root} (will be created on first write)", None
        return f"local, root {root}", f"ADGEN_STORE__ROOT: {root} does not exist and cannot be created ({parent} is not writable)"
    # other kinds (S3): ask the store itself
    from adgen_dagster.cli.upload import open_store

    try:
        store = open_store(settings)
        where = store.uri("uploads")
        if hasattr(store, "check"):
            store.check()  # the S3 store's own check: the bucket exists and can be reached
        store.list_page("uploads/", limit=1)
        return f"{kind}, uploads at {where} (reachable)", None
    except Exception as exc:  # noqa: BLE001 - reported as the problem; the store's messages name the setting
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"{kind}", text if "ADGEN_STORE__" in text else f"the {kind} store cannot be used ({text}); check ADGEN_STORE__*"


def gpu_lines() -> list[str]:
    try:
        import torch
    except ModuleNotFoundError as exc:
        if exc.name != "torch":
            return [f"torch: installed but cannot be imported (needs {exc.name})"]
        return ["torch: not installed (CPU backends only)"]
    except Exception as exc:  # noqa: BLE001
        return [f"torch: installed but cannot be imported ({type(exc).__name__}: {exc})"]
    lines = [f"torch {torch.__version__}"]
    try:
        if torch.cuda.is_available():
            names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            free, total = torch.cuda.mem_get_info(0)
            lines.append(f"CUDA {torch.version.cuda}: {len(names)} device(s): {', '.join(names)}; "
                         f"{free / 2**30:.1f} of {total / 2**30:.1f} GiB free on device 0")
        else:
            lines.append("CUDA: not available (CPU only)")
    except Exception as exc:  # noqa: BLE001
        lines.append(f"CUDA: cannot be queried ({type(exc).__name__}: {exc})")
    return lines


def neural_check(settings, kind: str, name: str, env: str) -> tuple[str, str | None]:
    """(what was found, problem or None) for a neural backend: libraries, weights, device."""
    from adgen_dagster import backends

    spec = backends.spec(kind, name)
    params = getattr(settings, spec.settings_field)
    setting = f"ADGEN_{spec.settings_field.upper()}__MODEL"
    needs = {"torch": "'.[neural]'", "transformers": "'.[neural]'", "diffusers": "'.[neural]'"}
    if name == "birefnet":  # what BiRefNet's own (remote) code imports
        needs.update({"torchvision": "torchvision (the build matching your torch)", "timm": "'.[birefnet]'",
                      "kornia": "'.[birefnet]'", "einops": "'.[birefnet]'"})
    for module, how in needs.items():
        try:
            __import__(module)
        except Exception:  # noqa: BLE001
            return "CANNOT RUN", (f"{env}={name!r}: {module} is not installed; pip install {how} "
                                  f"or set {env} back to the CPU backend")
    from adgen_dagster.models.weights import locate
    from resources.model_host import ModelError, ModelHost

    marker = "model_index.json" if name == "flux" else "config.json"
    try:
        folder = locate(params.model, setting, marker)
        host = ModelHost(settings.gpu)
        host.require_accelerator(name, env)
    except ModelError as exc:
        return "CANNOT RUN", str(exc)
    return f"ok: {folder} on {host.device}", None


def font_lines(settings) -> tuple[list[str], list[str]]:
    from adgen_dagster.imaging import ads

    lines, problems = [], []
    for path in (*ads.SHIPPED_FONTS.values(), *ads.SHIPPED_LATIN_FONTS.values()):
        lines.append(f"{path.name}: {'found' if path.is_file() else 'MISSING'} ({path.parent})")
        if not path.is_file():
            problems.append(f"shipped font {path} is missing; reinstall the package (ads would fall back to other fonts)")
    override = settings.ads.font_path
    try:
        chain = ads.font_chain("bold", override) + ads.font_chain("regular", override)
        lines.append(f"font_path override: {override or '(none)'}" + (" (usable)" if override else ""))
        system = sorted({p for p in chain if p.startswith("/") and Path(p).parent != ads.FONT_DIR
                         and p != override and Path(p).resolve().parent != ads.FONT_DIR.resolve()})
        lines.append(f"system fallback fonts found: {len(system)}" + (f" ({', '.join(Path(p).name for p in system)})" if system else ""))
    except ValueError as exc:
        problems.append(f"ADGEN_ADS__FONT_PATH: {exc}")
    return lines, problems


@app.command(epilog=EPILOG)
def doctor(
    show_all: Annotated[bool, typer.Option("--all", help="List every setting, not only the store, the backends and what differs from the defaults.")] = False,
    verbose: Verbose = False,
) -> None:
    """The settings in force, what can run here (GPU, weights, fonts), the store."""
    with reporting("doctor", verbose):
        problems: list[str] = []
        try:
            settings = load_settings()
        except Failed as exc:
            say(f"adgen doctor: {exc}")
            raise typer.Exit(EXIT_FAILED) from None

        from adgen_dagster import backends

        out = typer.echo
        rows = flatten(settings.model_dump(mode="json"))
        defaults = dict(flatten(default_settings()))
        changed = [(k, v) for k, v in rows if defaults.get(k, object()) != v]
        local_only = {"store.kind", "store.root", "store.cache"}  # the S3 fields mean nothing for a local store
        key_rows = {k for k, _ in rows if k in [b[0] for b in BACKENDS] or (
            k.startswith("store.") and (settings.store.kind != "local" or k in local_only))}
        shown = rows if show_all else [(k, v) for k, v in rows if k in key_rows or (k, v) in changed]
        out("Settings in force (defaults, overridden by ADGEN_* environment variables)"
            + (":" if show_all else f"; the store, the backends and what differs from the defaults (--all: all {len(rows)}):"))
        width = max(len(k) for k, _ in shown)
        for key, value in shown:
            note = f"  (default {defaults[key]!r}; {env_name(key)})" if (key, value) in changed else ""
            out(f"  {key:<{width}}  {value!r}{note}")
        from_env = sorted(k for k in os.environ if k.upper().startswith("ADGEN_"))
        out(f"  from the environment: {', '.join(from_env) if from_env else 'nothing (all defaults)'}")

        out("\nStore:")
        desc, problem = store_check(settings)
        out(f"  {desc}" + ("" if problem is None else "  <- cannot be used"))
        if problem:
            problems.append(problem)

        out("\nBackends:")
        for field, table_name, kind, env in BACKENDS:
            name = getattr(settings, field)
            table = getattr(backends, table_name)
            available = ", ".join(sorted(table))
            if name in table:
                needs = ("CPU, no model weights" if name in CPU_BACKENDS else
                         "CPU, shipped model" if name in SHIPPED_MODEL else "registered")
                out(f"  {kind:<11} {name:<12} ok ({needs}); available: {available}")
            else:
                out(f"  {kind:<11} {name:<12} CANNOT RUN: not a registered backend; available: {available}")
                problems.append(f"{env}={name!r}: unknown {kind} backend; set {env} to one of: {available}")

        out("\nGPU:")
        for line in gpu_lines():
            out(f"  {line}")
        out("\nModel weights:")
        for field, table_name, kind, env in BACKENDS:
            name = getattr(settings, field)
            if name in CPU_BACKENDS:
                out(f"  {kind:<11} {name:<12} none needed")
            elif name in SHIPPED_MODEL:
                line, problem = shipped_model_check()
                out(f"  {kind:<11} {name:<12} {line}")
                if problem:
                    problems.append(problem)
            elif name in getattr(backends, table_name):
                line, problem = neural_check(settings, kind, name, env)
                out(f"  {kind:<11} {name:<12} {line}")
                if problem:
                    problems.append(problem)
            else:
                out(f"  {kind:<11} {name:<12} unknown backend (see above)")

        out("\nFonts (ad creatives):")
        lines, font_problems = font_lines(settings)
        for line in lines:
            out(f"  {line}")
        problems += font_problems

        out("\nDagster (only `adgen demo` and the UI use it):")
        try:
            from importlib.metadata import version

            dagster_version = version("dagster")
        except Exception:  # noqa: BLE001
            dagster_version = "not installed"
        out(f"  dagster {dagster_version}; DAGSTER_HOME={os.environ.get('DAGSTER_HOME') or '(unset: adgen demo uses ./.dagster_home)'}")

        if problems:
            out(f"\n{len(problems)} problem(s): the configured choice cannot run here.")
            for p in problems:
                say(f"adgen doctor: {p}")
            raise typer.Exit(EXIT_FAILED)
        out("\nok: everything configured can run here.")
