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


#: RecBole 1.2.1's runtime requirements (its metadata) without ``ray<=2.6.3``; ``rbo``'s
#: besides NumPy. Both packages themselves are installed with ``--no-deps``.
RECBOLE_REQUIRES = [
    "scipy>=1.6.0",
    "pandas>=1.3.0",
    "tqdm>=4.48.2",
    "colorlog==4.7.2",
    "colorama==0.4.4",
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
        "torch>=2.0",
        "numpy>=2",
        "ray[tune]>=2.41",          # today's Tuner API (ray.tune.RunConfig, ray.tune.report)
        "pandas<3",                 # pandas 3 breaks RecBole 1.2.1's dataset loading (token_seq remap, fillna)
        # no pyarrow pin: the old pyarrow<15 has no NumPy 2 build; ray[tune] itself needs pyarrow>=17
        "filelock",
        "matplotlib",
    ],
    extras_require={"test": ["pytest"]},
    py_modules=["run_recbole_finest"],
    entry_points={"console_scripts": ["recbole-finest=run_recbole_finest:main"]},
)
