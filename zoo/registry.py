"""Name -> factory registries for models, losses, optimizers, schedulers and activations.

One small mechanism serves all of them, modelled on torchvision's ``register_model`` /
``list_models`` and timm's ``create_model``:

>>> from zoo.registry import Registry
>>> shapes = Registry("shape")
>>> @shapes.register()
... def square(side=1):
...     return side * side
>>> shapes.create("square", side=3)
9
>>> shapes.list("sq*")
['square']
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from zoo.errors import UnknownNameError

F = TypeVar("F", bound=Callable[..., Any])


def matching(
    names: Iterable[str],
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
) -> list[str]:
    """``names`` sorted, those matching any ``include`` pattern and no ``exclude`` pattern (fnmatch)."""
    found = sorted(names)
    if include is not None:
        pats = [include] if isinstance(include, str) else list(include)
        found = [n for n in found if any(fnmatch.fnmatch(n, p) for p in pats)]
    if exclude is not None:
        pats = [exclude] if isinstance(exclude, str) else list(exclude)
        found = [n for n in found if not any(fnmatch.fnmatch(n, p) for p in pats)]
    return found


class Registry:
    """A named collection of factories (classes or functions).

    Args:
        kind: what the entries are ("model", "loss", ...), used in messages.
        populate: modules to import before the first lookup, so that their ``@register``
            decorators have run (keeps ``import zoo`` cheap).
    """

    def __init__(self, kind: str, populate: Iterable[str] = ()) -> None:
        self.kind = kind
        self._populate = list(populate)
        self._entries: dict[str, Callable[..., Any]] = {}

    def _load(self) -> None:
        while self._populate:
            importlib.import_module(self._populate.pop(0))
        load_plugins()

    def register(self, name: str | None = None, obj: Callable[..., Any] | None = None) -> Any:
        """Register ``obj`` under ``name`` (default: its lower-cased ``__name__``).

        Used as a decorator (``@registry.register()`` or ``@registry.register("alias")``) or
        called directly with ``obj``. A name that is already taken raises ``ValueError``.
        """

        if name is not None and not (isinstance(name, str) and re.fullmatch(r"[A-Za-z][\w-]*", name)):
            raise ValueError(
                f"A {self.kind} name is a letter, then letters, digits, _ or - (no dots: the command "
                f"line reads a dotted name as a class path); got {name!r}"
            )

        def add(fn: F) -> F:
            key = (name or fn.__name__).lower()
            if key in self._entries:
                raise ValueError(
                    f"A {self.kind} named {key!r} is already registered ({self._entries[key]!r})"
                )
            self._entries[key] = fn
            if _loading_plugins:
                _plugin_entries.append(fn)
            return fn

        return add(obj) if obj is not None else add

    def list(
        self, include: str | Iterable[str] | None = None, exclude: str | Iterable[str] | None = None
    ) -> list[str]:
        """Sorted names matching any ``include`` pattern and no ``exclude`` pattern (fnmatch)."""
        self._load()
        return matching(self._entries, include, exclude)

    def __contains__(self, name: object) -> bool:
        self._load()
        return isinstance(name, str) and name.lower() in self._entries

    def get(self, name: str) -> Callable[..., Any]:
        """The factory registered as ``name``; an unknown name raises and lists close matches."""
        self._load()
        key = name.lower() if isinstance(name, str) else name
        if key not in self._entries:
            raise UnknownNameError(self.unknown_message(name))
        return self._entries[key]

    def unknown_message(self, name: object, option: str | None = None) -> str:
        self._load()
        where = f" for {option}" if option else ""
        msg = f"Unknown {self.kind} {name!r}{where}."
        close = difflib.get_close_matches(str(name).lower(), list(self._entries), n=3, cutoff=0.5)
        if close:
            msg += f" Did you mean {' or '.join(repr(c) for c in close)}?"
        return msg + f" Valid {self.kind} names: {', '.join(sorted(self._entries))}."

    def create(self, name: str, **kwargs: Any) -> Any:
        """Build the entry ``name``; keyword arguments whose value is ``None`` are dropped, so that
        unset CLI values fall back to the factory's own defaults."""
        return self.get(name)(**{k: v for k, v in kwargs.items() if v is not None})

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._entries)} entries)"


MODELS = Registry("model", populate=["zoo.models"])
LOSSES = Registry("loss", populate=["zoo.losses"])
OPTIMIZERS = Registry("optimizer", populate=["zoo.optim"])
SCHEDULERS = Registry("scheduler", populate=["zoo.optim"])
ACTIVATIONS = Registry("activation", populate=["zoo.nn.layers"])
DATA = Registry("data", populate=["zoo.data"])


#: the entry-point group through which an installed package adds its models, losses, ... to the
#: zoo's registries (in its pyproject.toml: ``[project.entry-points.lightning_zoo]
#: their_models = "theirpkg.zoo_models"``, a module whose ``register_model`` decorators run on import)
PLUGIN_GROUP = "lightning_zoo"
_plugins_loaded = False
_loading_plugins = False  # True while load_plugins imports them: what registers then is theirs
#: what the installed plugins registered (their classes' modules are trusted in checkpoints)
_plugin_entries: list[Callable[..., Any]] = []


def load_plugins() -> None:
    """Import the modules installed packages name in the :data:`PLUGIN_GROUP` entry points, once,
    so that the names they register work everywhere the zoo's own do (``zoo train --model
    theirs``, ``zoo models``, ``create_model``). A plugin that fails to import is a warning naming
    it, never the command's failure."""
    global _plugins_loaded, _loading_plugins
    if _plugins_loaded:
        return
    _plugins_loaded = True
    import warnings
    from importlib.metadata import entry_points

    for point in entry_points(group=PLUGIN_GROUP):
        _loading_plugins = True
        try:
            point.load()
        except Exception as err:  # noqa: BLE001 - someone else's package: say which, go on
            warnings.warn(
                f"lightning-zoo plugin {point.name!r} ({point.value}) failed to load: "
                f"{type(err).__name__}: {err}",
                stacklevel=2,
            )
        finally:
            _loading_plugins = False


def plugin_modules() -> set[str]:
    """The modules of the classes (and factories) that installed plugins (:data:`PLUGIN_GROUP`
    entry points) registered, the plugins imported first (:func:`load_plugins`). A checkpoint of
    a plugin's model may name them: the zoo imports that code on any name lookup anyway
    (:func:`zoo.checkpoints.check_named_classes`)."""
    load_plugins()
    modules = set()
    for factory in _plugin_entries:
        cls = getattr(factory, "preset", (factory,))[0]  # a preset names the class it builds
        module = getattr(cls, "__module__", None)
        if isinstance(module, str):
            modules.add(module)
    return modules


def register_model(name: str | None = None) -> Callable[[F], F]:
    """Decorator: add a LightningModule class (or a preset function returning one) to the model registry."""
    return MODELS.register(name)


def _preset(
    registry: Registry, name: str, cls: type, doc: str, defaults: dict[str, Any]
) -> Callable[..., Any]:
    def build(**kwargs: Any) -> Any:
        return cls(**{**defaults, **kwargs})

    build.__name__ = build.__qualname__ = name
    build.__doc__ = doc
    build.preset = (cls, dict(defaults))  # type: ignore[attr-defined]
    registry.register(name, build)
    return build


def register_preset(name: str, cls: type, doc: str, **defaults: Any) -> Callable[..., Any]:
    """Register the model ``name`` as ``cls`` with ``defaults`` (overridable): a preset, like timm's
    and torchvision's model names. Returns the factory; its ``preset`` attribute is ``(cls,
    defaults)``, which is how the command line turns ``--model resnet20`` into a class path and
    its arguments."""
    return _preset(MODELS, name, cls, doc, defaults)


def register_data(name: str, cls: type, doc: str, **defaults: Any) -> Callable[..., Any]:
    """Register the data name ``name`` (``--data digits``) as the DataModule ``cls`` with ``defaults``."""
    return _preset(DATA, name, cls, doc, defaults)


def public_class_path(cls: type) -> str:
    """``zoo.models.ResNet`` rather than ``zoo.models.conv.ResNet`` where the package exports it."""
    package = cls.__module__.rsplit(".", 1)[0]
    module = importlib.import_module(package) if package != cls.__module__ else None
    if module is not None and getattr(module, cls.__name__, None) is cls:
        return f"{package}.{cls.__name__}"
    return f"{cls.__module__}.{cls.__qualname__}"


def named_config(registry: Registry, name: str) -> tuple[str, dict[str, Any]]:
    """The class path and preset arguments of the entry ``name`` (a model or data name), the
    arguments as a config holds them (tuples as lists)."""
    entry = registry.get(name)
    cls, defaults = getattr(entry, "preset", (entry, {}))
    return public_class_path(cls), {k: list(v) if isinstance(v, tuple) else v for k, v in defaults.items()}


def list_models(
    include: str | Iterable[str] | None = None,
    exclude: str | Iterable[str] | None = None,
    pretrained: bool = False,
) -> list[str]:
    """Registered model names, optionally filtered by fnmatch patterns; with ``pretrained=True``
    the trained models instead (``zoo models --pretrained``), the names
    ``create_model(name, pretrained=True)`` takes."""
    if not pretrained:
        return MODELS.list(include, exclude)
    from zoo.pretrained import manifest

    return matching(manifest(), include, exclude)


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> Any:
    """Build a registered model; ``None``-valued kwargs are ignored.

    With ``pretrained=True``, ``name`` is a trained model (``zoo models --pretrained``, e.g.
    ``convnet_fashion``), returned with its weights and preprocessing in eval mode; ``kwargs`` then
    change its config, and a new ``num_classes`` gets a fresh output layer (see
    :func:`zoo.pretrained.create`).
    """
    if pretrained:
        from zoo.pretrained import create

        return create(name, **{k: v for k, v in kwargs.items() if v is not None})
    return MODELS.create(name, **kwargs)
