from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from deepcore_core import OptionError
from deepcore_core.options import describe_options, parse_options


@dataclasses.dataclass(frozen=True)
class Opts:
    k: int = 10
    eps: float = 0.01
    metric: Literal["euclidean", "cosine"] = "euclidean"
    flag: bool = False
    name: str = "x"
    limit: int | None = None

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")


def test_parse_from_strings_and_values():
    o = parse_options(
        Opts,
        {
            "k": "5",
            "eps": "1e-3",
            "metric": "cosine",
            "flag": "true",
            "name": "123",
            "limit": "null",
        },
        "m",
    )
    assert o == Opts(5, 0.001, "cosine", True, "123", None)
    assert parse_options(Opts, {"eps": 1, "limit": 3}, "m") == Opts(eps=1.0, limit=3)


def test_unknown_key_lists_valid_options_and_defaults():
    with pytest.raises(OptionError) as e:
        parse_options(Opts, {"kk": 1}, "meth")
    msg = str(e.value)
    assert "unknown option 'kk' for method 'meth'" in msg
    assert "k=10 (int)" in msg and "metric='euclidean' ('euclidean' | 'cosine')" in msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("k", "abc"),
        ("k", 1.5),
        ("k", True),
        ("eps", "nan"),
        ("eps", "inf"),
        ("eps", float("-inf")),
        ("metric", "manhattan"),
        ("flag", "maybe"),
        ("name", 3),
    ],
)
def test_ill_typed(key, value):
    with pytest.raises(OptionError, match=f"option '{key}' of method 'm' must be"):
        parse_options(Opts, {key: value}, "m")


def test_infinite_numbers_are_named_as_such():
    with pytest.raises(OptionError, match="'eps' of method 'm' must be a finite number, got 'inf'"):
        parse_options(Opts, {"eps": "inf"}, "m")


def test_range_check_from_post_init():
    with pytest.raises(OptionError, match="k must be >= 1, got 0"):
        parse_options(Opts, {"k": 0}, "m")


def test_describe():
    assert describe_options(Opts).startswith("k=10 (int), eps=0.01 (float)")


@dataclasses.dataclass(frozen=True)
class _Documented:
    keep: Literal["hardest", "easiest"] = "hardest"  #: which end of the ranking to keep
    k: int = dataclasses.field(default=3, metadata={"help": "neighbours"})
    plain: float | None = None
    #: documented on the lines
    #: before it
    above: int = 1
    after: int = 2  #: its own, not the next field's
    #: the next field's
    last: str = "x"


def test_option_table_has_type_default_and_doc():
    from deepcore_core.options import option_table

    rows = {r["name"]: r for r in option_table(_Documented)}
    assert rows["keep"] == {
        "name": "keep",
        "type": "'hardest' | 'easiest'",
        "default": "hardest",
        "doc": "which end of the ranking to keep",
    }
    assert rows["k"]["doc"] == "neighbours" and rows["k"]["type"] == "int"
    assert rows["plain"]["type"] == "float | None" and rows["plain"]["doc"] == ""
    assert rows["above"]["doc"] == "documented on the lines before it"
    assert rows["after"]["doc"] == "its own, not the next field's"
    assert rows["last"]["doc"] == "the next field's"
