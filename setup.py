"""Ships the repository's templates/ and migrations/ inside the package.

They stay top-level folders of the repository (where people edit them); a built wheel
carries a copy under dns_lifecycle/bundled/, which the code reads when there is no
checkout around it (see dns_lifecycle.core.settings.shipped). Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("templates", "migrations")


class BuildWithShippedFolders(build_py):
    def run(self) -> None:
        super().run()
        for name in SHIPPED:
            target = Path(self.build_lib) / "dns_lifecycle" / "bundled" / name
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(
                ROOT / name, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
            )


setup(cmdclass={"build_py": BuildWithShippedFolders})
