"""Finding the shipped recipes (YAML configs) by name. Imports no torch.

Recipes live in the top-level ``recipes/`` folder of the source tree and are shipped inside the
wheel as ``zoo/recipes``. A recipe's first comment line is the command that runs it, the second
is its one-line description; later header lines may say what a run of it reached (``# measured:
...``) and the least it must reach (``# floor: test/acc >= 0.96``), which the tests and the
weights build (``nox -s weights``) hold it to.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from difflib import get_close_matches
from pathlib import Path

from zoo.errors import ZooError

_PACKAGE_DIR = Path(__file__).resolve().parent


def recipes_dir() -> Path:
    """The folder holding the shipped recipes (installed wheel or source checkout)."""
    for candidate in (_PACKAGE_DIR / "recipes", _PACKAGE_DIR.parent / "recipes"):
        if candidate.is_dir():
            return candidate
    raise ZooError("The shipped recipes are missing from this installation of lightning-zoo.")


@dataclass(frozen=True)
class Recipe:
    name: str  # "mlp_digits", "logger/wandb"
    path: Path
    command: str
    description: str
    #: what a run of it reached, where and when (a ``# measured:`` header line; empty: not measured)
    measured: str = ""
    #: ``(metric, ">=" or "<=", value)`` from a ``# floor:`` header line; ``None``: no floor
    floor: tuple[str, str, float] | None = None

    def meets_floor(self, metrics: dict[str, float]) -> bool:
        """Whether ``metrics`` (a run's test metrics) reach this recipe's floor (``True`` without one)."""
        if self.floor is None:
            return True
        metric, op, value = self.floor
        found = metrics.get(metric)
        return found is not None and {">=": operator.ge, "<=": operator.le}[op](found, value)

    @property
    def is_fragment(self) -> bool:
        """Fragments (in sub-folders) are added to a full recipe with a second ``-c``."""
        return "/" in self.name


def _read(path: Path, root: Path) -> Recipe:
    comments = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        comments.append(line.lstrip("#").strip())
    command = comments[0] if comments else ""
    description = comments[1] if len(comments) > 1 else ""
    fields = dict(c.split(":", 1) for c in comments[2:] if ":" in c)
    name = path.relative_to(root).with_suffix("").as_posix()
    floor = None
    if fields.get("floor"):
        text = fields["floor"].strip()
        match = re.fullmatch(r"(\S+)\s*(>=|<=)\s*([-+0-9.eE]+)", text)
        if match is None:
            raise ZooError(f"recipe {name}: '# floor: {text}' is not 'METRIC >= VALUE' or 'METRIC <= VALUE'.")
        floor = (match[1], match[2], float(match[3]))
    return Recipe(name, path, command, description, fields.get("measured", "").strip(), floor)


def list_recipes() -> list[Recipe]:
    """Every shipped recipe and fragment, full recipes first, each group sorted by name."""
    root = recipes_dir()
    # sweeps/ holds search spaces for `zoo sweep --space NAME`, not configs
    found = [_read(p, root) for p in root.rglob("*.yaml") if p.relative_to(root).parts[0] != "sweeps"]
    return sorted(found, key=lambda r: (r.is_fragment, r.name))


def find_recipe(name: str, option: str | None = "-c/--config") -> Recipe:
    """A shipped recipe by name (``mlp_digits``, ``logger/wandb``, a unique ``wandb``, or
    ``recipes/logger/wandb.yaml``). An unknown name raises with the close matches; ``option``
    names where the name was given (``None``: a recipe name alone, not a file)."""
    recipes = list_recipes()
    key = name.removeprefix("recipes/").removesuffix(".yaml").removesuffix(".yml")
    by_name = {r.name: r for r in recipes}
    if key in by_name:
        return by_name[key]
    stems = [r for r in recipes if r.name.rsplit("/", 1)[-1] == key]
    if len(stems) == 1:
        return stems[0]
    names = list(by_name)
    close = get_close_matches(key, names, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    what = (
        f"{option} {name!r} is neither a file nor a shipped recipe"
        if option
        else f"no shipped recipe {name!r}"
    )
    raise ZooError(f"{what}.{hint} Shipped recipes: {', '.join(names)} (see `zoo recipes list`).")


def resolve_config_args(argv: list[str]) -> list[str]:
    """Replace recipe names given to ``-c``/``--config`` by their paths; files are left alone."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-c", "--config") and i + 1 < len(argv):
            out += [arg, _resolve(argv[i + 1])]
            i += 2
            continue
        if arg.startswith("--config="):
            arg = "--config=" + _resolve(arg.split("=", 1)[1])
        out.append(arg)
        i += 1
    return out


def _resolve(value: str) -> str:
    if Path(value).is_file():
        check_config_file(value)
        return value
    if value.lstrip().startswith(("{", "[")):
        return value
    return str(find_recipe(value).path)


def check_config_file(path: str | Path, option: str = "-c/--config") -> None:
    """Raise :class:`ZooError` naming ``path`` unless it holds a YAML mapping (``model:``,
    ``data:``, ``trainer:`` ...): a syntax error, an empty file or a list would otherwise reach
    jsonargparse, whose message names neither the file nor what a config looks like."""
    import yaml

    try:
        config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as err:
        raise ZooError(f"{option} {path}: not a text file ({err}).") from err
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise ZooError(f"{option} {path}: not valid YAML ({problem}{where}).") from err
    if not isinstance(config, dict):
        found = "nothing" if config is None else f"a {type(config).__name__}"
        raise ZooError(
            f"{option} {path}: a config is a mapping of sections (model:, data:, trainer: ...); this "
            f"file holds {found}."
        )
