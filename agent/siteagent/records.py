"""Typed records for the modules a pilot rank loads: ``@record`` is ``@dataclass`` for mypy
and, at run time, a light equivalent that neither imports ``dataclasses`` (which loads
inspect, ast, dis and tokenize) nor compiles code per class. Together these were about a
third of a rank's start-up, for some forty classes.

What a record has, as a dataclass would: ``__init__`` (positional or keyword, defaults,
``default_factory``, ``__post_init__``), ``__repr__``, ``__eq__`` over the fields compared,
``__hash__`` when frozen, ``frozen=True`` raising ``dataclasses.FrozenInstanceError``, and
``__match_args__``. ``fields``, ``replace``, ``asdict`` and ``MISSING`` here work on records;
``dataclasses.fields``/``replace``/``asdict``/``is_dataclass`` do too (``__dataclass_fields__``
is built on first use, importing ``dataclasses`` then). Only the options this code uses are
supported: ``@record`` and ``@record(frozen=True)``; ``field(default, default_factory,
compare, repr, metadata)``.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing on a rank's path
if TYPE_CHECKING:
    from dataclasses import MISSING, asdict, field, fields, replace
    from dataclasses import dataclass as record
    from dataclasses import is_dataclass as is_record
else:

    class _Missing:
        __slots__ = ()

        def __repr__(self) -> str:
            return "MISSING"

    MISSING = _Missing()

    class Field:
        """One field of a record (what ``dataclasses.Field`` says of it)."""

        __slots__ = ("compare", "default", "default_factory", "init", "metadata", "name")
        __slots__ += ("repr", "type")

        def __init__(self, default, default_factory, init, repr, compare, metadata):
            if default is not MISSING and default_factory is not MISSING:
                raise ValueError("cannot specify both default and default_factory")
            self.name = self.type = None
            self.default, self.default_factory = default, default_factory
            self.init, self.repr, self.compare = init, repr, compare
            self.metadata = {} if metadata is None else metadata

        def __repr__(self) -> str:
            return f"Field(name={self.name!r}, default={self.default!r})"

    def field(
        *,
        default=MISSING,
        default_factory=MISSING,
        init=True,
        repr=True,
        compare=True,
        metadata=None,
    ):
        """A field with a default, a default factory, or kept out of repr/compare."""
        return Field(default, default_factory, init, repr, compare, metadata)

    def fields(class_or_instance):
        """The record's fields, in order."""
        try:
            return class_or_instance.__record_fields__
        except AttributeError:
            raise TypeError("must be called with a record type or instance") from None

    def is_record(obj) -> bool:
        """Whether ``obj`` is a record class or instance."""
        cls = obj if isinstance(obj, type) else type(obj)
        return hasattr(cls, "__record_fields__")

    def replace(obj, /, **changes):
        """A copy of the record ``obj`` with ``changes`` (``dataclasses.replace``)."""
        for f in obj.__record_fields__:
            if not f.init:
                if f.name in changes:
                    raise ValueError(f"field {f.name} is declared with init=False")
            elif f.name not in changes:
                changes[f.name] = getattr(obj, f.name)
        return obj.__class__(**changes)

    _PLAIN = (str, int, float, bool, type(None))

    def asdict(obj):
        """The record ``obj`` as a dict, nested records, lists, tuples and dicts converted,
        other values deep-copied (``dataclasses.asdict``)."""
        if not is_record(obj) or isinstance(obj, type):
            raise TypeError("asdict() should be called on record instances")
        return _asdict(obj)

    def _asdict(value):
        if isinstance(value, _PLAIN):
            return value
        if hasattr(type(value), "__record_fields__"):
            return {f.name: _asdict(getattr(value, f.name)) for f in value.__record_fields__}
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(_asdict(v) for v in value)
        if isinstance(value, dict):
            return type(value)((_asdict(k), _asdict(v)) for k, v in value.items())
        import copy

        return copy.deepcopy(value)

    class _DataclassFields:
        """``__dataclass_fields__``, built on first use from the record's fields, so that
        ``dataclasses`` functions take records (off the rank path: it imports dataclasses)."""

        def __init__(self, own):
            self.own, self.built = own, None

        def __get__(self, obj, owner):
            if self.built is None:
                self.built = {f.name: _dataclass_field(f) for f in self.own}
            return self.built

    def _dataclass_field(f):
        """The record field ``f`` as a ``dataclasses.Field`` (imports dataclasses)."""
        import dataclasses

        d = dataclasses.field(
            default=dataclasses.MISSING if f.default is MISSING else f.default,
            default_factory=dataclasses.MISSING
            if f.default_factory is MISSING
            else f.default_factory,
            init=f.init,
            repr=f.repr,
            compare=f.compare,
            metadata=f.metadata or None,
        )
        d.name, d.type = f.name, f.type
        d._field_type = dataclasses._FIELD  # what dataclasses.fields() keeps
        return d

    def _init(self, args, kwargs):
        cls = type(self)
        if len(args) > len(cls.__record_init__):
            raise TypeError(
                f"{cls.__qualname__}.__init__() takes {len(cls.__record_init__) + 1} positional "
                f"arguments but {len(args) + 1} were given"
            )
        values = dict(zip(cls.__match_args__, args, strict=False))
        _check_keywords(cls, values, kwargs)
        values.update(kwargs)
        _fill_defaults(cls, values)
        self.__dict__.update(values)
        post_init = getattr(self, "__post_init__", None)
        if post_init is not None:
            post_init()

    def _check_keywords(cls, positional, kwargs):
        """Raise as Python does for a keyword given twice or not a parameter."""
        for name in kwargs:
            if name in positional:
                raise TypeError(
                    f"{cls.__qualname__}.__init__() got multiple values for argument '{name}'"
                )
            if name not in cls.__record_names__:
                raise TypeError(
                    f"{cls.__qualname__}.__init__() got an unexpected keyword argument '{name}'"
                )

    def _fill_defaults(cls, values):
        """Set each field not given (or not an init field) from its default or factory."""
        for f in cls.__record_fields__:
            if f.name not in values or not f.init:
                values[f.name] = _default_value(cls, f)

    def _default_value(cls, f):
        """The field's default, or its factory's new value; TypeError if it has neither."""
        if f.default is not MISSING:
            return f.default
        if f.default_factory is not MISSING:
            return f.default_factory()
        raise TypeError(
            f"{cls.__qualname__}.__init__() missing 1 required positional argument: '{f.name}'"
        )

    def _repr(self):
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}" for f in type(self).__record_fields__ if f.repr
        )
        return f"{type(self).__qualname__}({shown})"

    def _key(self):
        return tuple(getattr(self, f.name) for f in type(self).__record_fields__ if f.compare)

    def _eq(self, other):
        if other.__class__ is self.__class__:
            return _key(self) == _key(other)
        return NotImplemented

    def _hash(self):
        return hash(_key(self))

    def _frozen_setattr(self, name, value):
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")

    def _frozen_delattr(self, name):
        import dataclasses

        raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")

    def _is_classvar(annotation) -> bool:
        text = annotation if isinstance(annotation, str) else repr(annotation)
        return text.startswith(("ClassVar", "typing.ClassVar"))

    def _own_fields(cls):
        """The fields the class itself annotates; a ``field()`` class attribute is replaced
        by its default (or removed), as dataclasses does."""
        # not inspect.get_annotations: importing inspect is what records avoid
        annotations = cls.__dict__.get("__annotations__", {})  # noqa: RUF063
        return [_own_field(cls, n, a) for n, a in annotations.items() if not _is_classvar(a)]

    def _own_field(cls, name, annotation):
        """The field the class annotates as ``name``."""
        value = cls.__dict__.get(name, MISSING)
        f = value if isinstance(value, Field) else field(default=value)
        f.name, f.type = name, annotation
        if isinstance(f.default, (list, dict, set)):
            raise ValueError(
                f"mutable default {type(f.default)} for field {name} is not allowed: "
                "use default_factory"
            )
        if isinstance(value, Field):
            if f.default is MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
        return f

    def _all_fields(cls, own):
        """The base records' fields then the class's own, an own field overriding its base's."""
        merged = {}
        for base in reversed(cls.__mro__[1:]):
            merged.update((f.name, f) for f in base.__dict__.get("__record_fields__", ()))
        merged.update((f.name, f) for f in own)
        return tuple(merged.values())

    def _check_default_order(init_fields):
        """Raise if a field without a default follows one with a default."""
        seen_default = False
        for f in init_fields:
            if f.default is not MISSING or f.default_factory is not MISSING:
                seen_default = True
            elif seen_default:
                raise TypeError(f"non-default argument '{f.name}' follows default argument")

    def _sets_hash(cls):
        """Whether the class defines ``__hash__`` itself (``__hash__ = None`` beside its own
        ``__eq__`` does not count: Python sets that)."""
        class_hash = cls.__dict__.get("__hash__", MISSING)
        return not (class_hash is MISSING or (class_hash is None and "__eq__" in cls.__dict__))

    def _add_methods(cls, frozen):
        """``__repr__``, ``__eq__``, ``__hash__`` (and the frozen guards) as dataclasses adds
        them: never over the class's own."""
        explicit_hash = _sets_hash(cls)
        if "__repr__" not in cls.__dict__:
            cls.__repr__ = _repr
        if "__eq__" not in cls.__dict__:
            cls.__eq__ = _eq
        if not explicit_hash:  # dataclasses' rule for eq=True
            cls.__hash__ = _hash if frozen else None
        if frozen:
            cls.__setattr__ = _frozen_setattr
            cls.__delattr__ = _frozen_delattr

    def _process(cls, frozen):
        all_fields = _all_fields(cls, _own_fields(cls))
        _check_default_order(f for f in all_fields if f.init)
        cls.__record_fields__ = all_fields
        cls.__record_init__ = tuple(f for f in all_fields if f.init)
        cls.__record_names__ = frozenset(f.name for f in cls.__record_init__)
        cls.__dataclass_fields__ = _DataclassFields(all_fields)
        cls.__match_args__ = tuple(f.name for f in cls.__record_init__)

        def __init__(self, *args, **kwargs):
            _init(self, args, kwargs)

        __init__.__qualname__ = f"{cls.__qualname__}.__init__"
        cls.__init__ = __init__
        _add_methods(cls, frozen)
        return cls

    def record(cls=None, /, *, frozen=False):
        """``@record`` or ``@record(frozen=True)``: the class as a record (see the module)."""
        if cls is None:
            return lambda c: _process(c, frozen)
        return _process(cls, frozen)


__all__ = ["MISSING", "asdict", "field", "fields", "is_record", "record", "replace"]
