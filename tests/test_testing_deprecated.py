"""vivace.testing.RaisesGroup / Matcher: trio 0.33 deprecated its own in favour of
pytest's; here the deprecated names give pytest's classes, with trio's warning."""

from __future__ import annotations

import warnings

import pytest

import vivace
import vivace.testing


@pytest.mark.parametrize(
    ("name", "replacement"), [("RaisesGroup", "RaisesGroup"), ("Matcher", "RaisesExc")]
)
def test_deprecated_name_gives_pytests_class_and_warns_at_the_caller(
    name: str, replacement: str
) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = getattr(vivace.testing, name)
    assert value is getattr(pytest, replacement)
    [warning] = caught
    assert issubclass(warning.category, vivace.TrioDeprecationWarning)
    assert warning.filename == __file__
    assert f"vivace.testing.{name} is deprecated since Trio 0.33.0" in str(warning.message)
    assert f"use pytest.{replacement} instead" in str(warning.message)


def test_from_import_of_a_deprecated_name_warns() -> None:
    with pytest.deprecated_call():
        from vivace.testing import RaisesGroup  # noqa: F401


def test_other_missing_names_are_plain_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchThing'"):
        vivace.testing.NoSuchThing  # type: ignore[attr-defined]
