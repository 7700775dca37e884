"""recbole-finest: rank-preserving fine-tuning (FINEST) for RecBole sequential recommenders.

torch is not pinned here on purpose: install the build you want first
(``pip install torch==2.13.0`` for the CPU wheel); scripts/run.sh does that for you.

RecBole itself is not listed either: ``recbole==1.2.1`` pins ``ray<=2.6.3`` in its metadata,
and no such Ray has a wheel for Python 3.12+, nor supports NumPy 2. pip cannot drop one
requirement of a package, so RecBole (and ``rbo``, whose metadata pins ``numpy<2``) are
installed with ``--no-deps`` (scripts/run.sh does it; docs/install.md by hand), and
``RECBOLE_REQUIRES`` below are RecBole 1.2.1's own runtime requirements without the Ray pin.
``import recbole_finest`` names the missing step if RecBole is absent.
"""

import os

from setuptools import find_packages, setup
from setuptools.command.build_py import build_py


#: Start-up hook: applies recbole_finest.compat.stack when RecBole is first imported, so plain
#: RecBole scripts run in the plugin's environment (docs/library.md). Installed into site-packages.
STARTUP_PTH = "recbole_finest-stack.pth"
#: its one line, written into the wheel at build time (a start-up hook may only hold one import line):
#: a finder that does nothing until ``recbole`` is imported, then ``compat.startup.install()`` once
_BOOTSTRAP = '''class _RecBoleFinestBootstrap:
    """Until RecBole is imported: nothing. Then: recbole_finest.compat.startup.install() once."""
    started = False
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if cls.started or name != "recbole":
            return None
        cls.started = True
        try:
            from recbole_finest.compat.startup import RecBoleStackFinder, install
            install()
            return RecBoleStackFinder().find_spec(name, path, target)
        except Exception:
            return None
sys.meta_path.insert(0, _RecBoleFinestBootstrap)
'''
STARTUP_LINE = f'import os, sys; exec({_BOOTSTRAP!r}) if not os.environ.get("RECBOLE_FINEST_NO_HOOK") else None\n'


class BuildPyWithStartupHook(build_py):
    """``build_py`` that also puts :data:`STARTUP_PTH` at the top of the wheel (site-packages)."""

    def run(self):
        super().run()
        if not getattr(self, "editable_mode", False):
            with open(os.path.join(self.build_lib, STARTUP_PTH), "w", encoding="utf-8") as f:
                f.write(STARTUP_LINE)


class _StrategyWithStartupHook:
    """An editable-install strategy of setuptools that also writes :data:`STARTUP_PTH` into the wheel."""

    def __init__(self, strategy):
        self.strategy = strategy

    def __call__(self, wheel, files, mapping):
        self.strategy(wheel, files, mapping)
        wheel.writestr(STARTUP_PTH, STARTUP_LINE)

    def __enter__(self):
        self.strategy.__enter__()
        return self

    def __exit__(self, *exc):
        return self.strategy.__exit__(*exc)


def commands():
    """``build_py`` for wheels; ``editable_wheel`` for ``pip install -e .`` where setuptools has it (>= 64)."""
    cmdclass = {"build_py": BuildPyWithStartupHook}
    try:
        from setuptools.command.editable_wheel import editable_wheel
    except ImportError:
        return cmdclass

    class EditableWheelWithStartupHook(editable_wheel):
        def _select_strategy(self, *args, **kwargs):
            return _StrategyWithStartupHook(super()._select_strategy(*args, **kwargs))

    cmdclass["editable_wheel"] = EditableWheelWithStartupHook
    return cmdclass


#: RecBole 1.2.1's runtime requirements (its metadata) without ``ray<=2.6.3``; ``rbo``'s
#: besides NumPy. Both packages themselves are installed with ``--no-deps``.
RECBOLE_REQUIRES = [
    "scipy>=1.6.0",
    "pandas>=1.3.0",
    "tqdm>=4.48.2",
    "colorlog>=4.7.2",             # RecBole pins ==; any later release works
    "colorama>=0.4.4",
    "scikit-learn>=0.23.2",
    "pyyaml>=5.1.0",
    "tensorboard>=2.5.0",
    "thop>=0.1.1.post2207130030",
    "tabulate>=0.8.10",
    "plotly>=4.0.0",
    "texttable>=0.9.0",
    "psutil>=5.9.0",
]


def property_files():
    root = "properties"
    return [os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs if f.endswith(".yaml")]


setup(
    name="recbole-finest",
    version="0.1.0",
    description="FINEST: rank-preserving fine-tuning that stabilizes RecBole sequential recommenders",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["recbole_finest", "recbole_finest.*"]) + ["recbole_finest.properties"],
    # properties/ lives at the top of the repository and ships inside the wheel as
    # recbole_finest/properties, where Config looks first.
    package_dir={"recbole_finest.properties": "properties"},
    package_data={"recbole_finest.properties": property_files()},
    install_requires=RECBOLE_REQUIRES + [
        "torch>=2.5",               # torch.serialization.safe_globals (compat/checkpoints.py)
        "numpy>=2",
        "ray[tune]>=2.41",          # today's Tuner API (ray.tune.RunConfig, ray.tune.report)
        # pandas 3 works: recbole_finest/compat/stack.py fixes RecBole 1.2.1's dataset code for it
        # no pyarrow pin: the old pyarrow<15 has no NumPy 2 build; ray[tune] itself needs pyarrow>=17
        "filelock",
        "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
    cmdclass=commands(),
    py_modules=["run_recbole_finest"],
    entry_points={"console_scripts": ["recbole-finest=run_recbole_finest:main"]},
)
