"""Packaging of the one `bitsmith` namespace from the repository's own layout.

The folders stay where a reader expects them (main.py, engine/, gui/, kernels/, resources/ at the
top) and install as bitsmith.main, bitsmith.engine, bitsmith.gui, bitsmith.kernels and
bitsmith.resources. The repository root is mapped to `bitsmith` as a namespace package, so no
__init__.py sits at the root (pytest and other tools keep seeing a plain folder), nothing installs
at the top level of site-packages, and a new sub-package is picked up without editing a list.
Everything else (name, dependencies, entry point) is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup
from setuptools.command.build_py import build_py

PARTS = ("engine", "gui", "kernels", "resources")
packages = ["bitsmith"] + [f"bitsmith.{p}" for p in find_namespace_packages(include=[f"{part}*" for part in PARTS])
                           if "__pycache__" not in p]



class BuildPy(build_py):
    """The root folder is the `bitsmith` package, but of its files only main.py is the app's: this
    script and the repository's text files stay out of the wheel."""

    def find_package_modules(self, package, package_dir):
        found = super().find_package_modules(package, package_dir)
        return [m for m in found if package != "bitsmith" or m[1] == "main"]


setup(package_dir={"bitsmith": "."}, packages=packages, exclude_package_data={"bitsmith": ["*"]},
      cmdclass={"build_py": BuildPy})
