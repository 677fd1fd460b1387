"""Package layout: the design card keeps core/, kernels/, partitioner/,
delegates/ and hwlab/ at the top level of the repository; they install as
subpackages of ``edgeplex`` so nothing claims a top-level name like ``core``.
Everything else lives in pyproject.toml."""
from setuptools import find_packages, setup

SUBPACKAGE_ROOTS = ("core", "kernels", "partitioner", "delegates", "hwlab")


def layout() -> tuple[list[str], dict[str, str]]:
    packages = ["edgeplex"] + [f"edgeplex.{p}" for p in find_packages("edgeplex")]
    package_dir = {"edgeplex": "edgeplex"}
    for root in SUBPACKAGE_ROOTS:
        packages.append(f"edgeplex.{root}")
        packages += [f"edgeplex.{root}.{p}" for p in find_packages(root)]
        package_dir[f"edgeplex.{root}"] = root
    return packages, package_dir


packages, package_dir = layout()
setup(packages=packages, package_dir=package_dir,
      package_data={"": ["*.glsl", "*.json", "*.toml"]})
