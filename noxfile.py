"""Developer sessions: ``nox -s tests``, ``lint``, ``docs``, ``slow``, ``weights``, ``minimums``."""

import nox

nox.options.sessions = ["lint", "tests"]
nox.options.reuse_existing_virtualenvs = True


@nox.session
def tests(session: nox.Session) -> None:
    """The test suite (pass pytest arguments after ``--``)."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff: lint and formatting."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", "zoo", "tests", "benchmarks", "noxfile.py")
    session.run("ruff", "format", "--check", "zoo", "tests", "benchmarks", "noxfile.py")


@nox.session
def docs(session: nox.Session) -> None:
    """The documentation site (mkdocs-material + mkdocstrings), built with warnings as errors."""
    session.install("-e", ".[docs]")
    session.run("mkdocs", "build", "--strict", "-d", "build/site", env={"NO_MKDOCS_2_WARNING": "1"})


@nox.session
def slow(session: nox.Session) -> None:
    """The slow checks kept out of the default run."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)


@nox.session
def weights(session: nox.Session) -> None:
    """Retrain every shipped model from its recipe (or those named after ``--``), refuse one below its
    recipe's floor, record the weights in zoo/weights/ and refresh the README's table."""
    session.install("-e", ".")
    session.run("python", "-m", "zoo.pretrained", *session.posargs)


# what this machine's pip may install: torch and torchvision are capped at the releases on its disk
# (/etc/xdg/pip/constraints.txt), so their declared minimums (2.6 / 0.21) are checked where a
# machine can download them: `nox -s minimums -- --with-torch`
CAPPED = {"torch", "torchvision"}


def _lower_bounds(with_torch: bool) -> list[str]:
    """``name==minimum`` for every dependency of pyproject.toml that states a ``>=`` minimum."""
    import re
    from pathlib import Path

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = re.match(r"^([A-Za-z0-9_.-]+)(\[[^\]]*\])?\s*>=\s*([0-9][^,;\s]*)", requirement)
        if match and (with_torch or match.group(1) not in CAPPED):
            pins.append(f"{match.group(1)}=={match.group(3)}")
    return pins


@nox.session
def minimums(session: nox.Session) -> None:
    """The test suite on the oldest releases pyproject.toml allows (``-- --with-torch`` adds torch)."""
    with_torch = "--with-torch" in session.posargs
    args = [a for a in session.posargs if a != "--with-torch"]
    pins = _lower_bounds(with_torch)
    constraints = session.create_tmp() + "/minimums.txt"
    with open(constraints, "w") as handle:
        handle.write("\n".join(pins) + "\n")
    session.log("pinned: " + ", ".join(pins))
    session.install("-c", constraints, "-e", ".[test]")
    session.run("python", "-m", "pip", "freeze", silent=False)
    session.run("python", "-m", "pytest", "-x", *args)
