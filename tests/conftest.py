"""Shared pytest set-up of the suite."""

import platform
import sysconfig
from importlib import metadata

#: distributions whose versions head every test run (the stack the suite ran on)
STACK = ("numpy", "torch", "recbole", "ray", "pandas")


def stack_versions():
    """``{"python": ..., "numpy": ..., ...}``; ``"absent"`` for a distribution not installed."""
    out = {"python": platform.python_version()}
    site = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    for name in STACK:  # this environment's (a started Ray puts its vendored packages on sys.path)
        dist = next(iter(metadata.distributions(name=name, path=site)), None)
        out[name] = dist.version if dist is not None else "absent"
    return out


def pytest_report_header(config):
    """First line of the run: the versions the suite ran on."""
    return "stack: " + ", ".join(f"{k} {v}" for k, v in stack_versions().items())


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """``-q`` (the README's command) drops the header: the stack line then closes the run instead."""
    if config.get_verbosity() < 0:
        terminalreporter.write_line(pytest_report_header(config))
