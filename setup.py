"""Packaging of the one `bitsmith` namespace from the repository's own layout.

The folders stay where a reader expects them (main.py, engine/, gui/, kernels/, resources/ at the
top) and install as bitsmith.main, bitsmith.engine, bitsmith.gui, bitsmith.kernels and
bitsmith.resources. The repository root is mapped to `bitsmith` as a namespace package, so no
__init__.py sits at the root (pytest and other tools keep seeing a plain folder), nothing installs
at the top level of site-packages, and a new sub-package is picked up without editing a list.
Everything else (name, dependencies, entry point) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

PARTS = ("engine", "gui", "kernels", "resources")
packages = ["bitsmith"] + [f"bitsmith.{p}" for p in find_namespace_packages(include=[f"{part}*" for part in PARTS])
                           if "__pycache__" not in p]

setup(package_dir={"bitsmith": "."}, packages=packages)
