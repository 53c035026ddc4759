"""Packaging (metadata: setup.cfg). Ships the top-level ``properties/`` folder as ``recbole_mamba/properties``."""

from setuptools import find_namespace_packages, find_packages, setup

PROPERTIES = ["recbole_mamba.properties"] + [
    f"recbole_mamba.properties.{name}" for name in find_namespace_packages(where="properties")
]

setup(
    packages=find_packages(include=["recbole_mamba*"]) + PROPERTIES,
    package_dir={"recbole_mamba.properties": "properties"},
    package_data={name: ["*.yaml", "*.hyper"] for name in PROPERTIES},  # hyper/: RecBole params files
)
