"""Runs `uv pip ...` with the package index pip is configured with on this machine.

uv reads its own settings (UV_* variables, uv.toml), never pip.conf or PIP_* variables, so on a machine
whose pip is pointed at a mirror, extra indexes or a wheel folder, a bare `uv pip install` would look
elsewhere than `pip install` does. This reads pip's effective configuration through `pip config list`
(the interpreter running this script must have pip: the Makefile runs it with the interpreter that
bootstraps uv with pip) and passes the same locations to uv as options. A setting for which uv's own
variable is already set is left to that variable.

Usage: python uv_with_pip_index.py UV pip SUBCOMMAND [ARGS...]
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys

# pip applies [global], then its command's section, then PIP_* variables (":env:"), each overriding the one before.
PIP_SECTIONS = ("global", "install", ":env:")


def pip_settings() -> dict[str, str]:
    """pip's effective setting per option name (`index-url`, `find-links`, ...) for `pip install`."""
    try:
        listing = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        detail = getattr(error, "stderr", "") or error
        sys.exit(f"cannot read pip's configuration with `{sys.executable} -m pip config list`: {detail}")
    by_section: dict[str, dict[str, str]] = {}
    for line in listing.splitlines():
        key, sep, quoted = line.partition("=")
        section, dot, name = key.rpartition(".")
        if not (sep and dot):
            continue
        try:
            value = ast.literal_eval(quoted)  # pip prints each value as a Python string literal
        except (ValueError, SyntaxError):
            sys.exit(f"cannot parse this line of `pip config list`: {line!r}")
        by_section.setdefault(section, {})[name] = str(value)
    settings: dict[str, str] = {}
    for section in PIP_SECTIONS:
        settings.update(by_section.get(section, {}))
    return settings


def is_true(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


def uv_options(settings: dict[str, str], environ: dict[str, str]) -> list[str]:
    """uv options naming the same indexes, wheel folders and trusted hosts as pip's settings."""
    options: list[str] = []
    if is_true(settings.get("no-index", "")):
        options.append("--no-index")
    if "index-url" in settings and not ({"UV_DEFAULT_INDEX", "UV_INDEX_URL"} & environ.keys()):
        options += ["--default-index", settings["index-url"]]
    extra_indexes = settings.get("extra-index-url", "").split()
    if extra_indexes and not ({"UV_INDEX", "UV_EXTRA_INDEX_URL"} & environ.keys()):
        for url in extra_indexes:
            options += ["--index", url]
        # pip takes the best match across all its indexes; uv's default stops at the first index that has the name.
        if "UV_INDEX_STRATEGY" not in environ:
            options += ["--index-strategy", "unsafe-best-match"]
    if "UV_FIND_LINKS" not in environ:
        for location in settings.get("find-links", "").split():
            options += ["--find-links", location]
    if "UV_INSECURE_HOST" not in environ:
        for host in settings.get("trusted-host", "").split():
            options += ["--allow-insecure-host", host]
    return options


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "pip":
        sys.exit("usage: uv_with_pip_index.py UV pip SUBCOMMAND [ARGS...]")
    uv, subcommand, rest = argv[0], argv[2], argv[3:]
    settings = pip_settings()
    environ = dict(os.environ)
    if "cert" in settings and "SSL_CERT_FILE" not in environ:
        environ["SSL_CERT_FILE"] = settings["cert"]  # pip's CA bundle, for a mirror behind a private CA
    command = [uv, "pip", subcommand, *uv_options(settings, environ), *rest]
    try:
        return subprocess.run(command, env=environ, check=False).returncode
    except OSError as error:
        sys.exit(f"cannot run {uv}: {error}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
