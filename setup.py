"""recbole-finest: rank-preserving fine-tuning (FINEST) for RecBole sequential recommenders.

torch is not pinned here on purpose: install the build you want first
(``pip install torch==2.13.0`` for the CPU wheel); scripts/run.sh does that for you.
"""

import os

from setuptools import find_packages, setup


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
    install_requires=[
        "torch>=2.0",
        "recbole==1.2.1",
        "ray[tune]>=2.6,<=2.6.3",
        "setuptools<81",
        "pyarrow<15",
        "pandas<3",
        "numpy<2",
        "scipy",
        "matplotlib",
        "pyyaml",
        "tqdm",
        "rbo==0.1.3",
    ],
    extras_require={"test": ["pytest"]},
    py_modules=["run_recbole_finest"],
    entry_points={"console_scripts": ["recbole-finest=run_recbole_finest:main"]},
)
