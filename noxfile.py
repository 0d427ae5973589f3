"""Developer sessions: ``nox -s tests``, ``nox -s lint``."""

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
def slow(session: nox.Session) -> None:
    """The slow checks kept out of the default run."""
    session.install("-e", ".[test]")
    session.run("python", "-m", "pytest", "-m", "slow", *session.posargs)
