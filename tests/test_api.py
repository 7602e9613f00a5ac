"""The public namespace: every advertised name resolves, and unknown names fail clearly."""

import pytest

import ncbounds


@pytest.mark.parametrize("name", ncbounds.__all__)
def test_every_public_name_resolves(name):
    assert getattr(ncbounds, name) is not None


def test_unknown_attribute():
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        ncbounds.nope  # noqa: B018


def test_errors_are_value_errors():
    assert issubclass(ncbounds.NCBoundsError, ValueError)
    assert issubclass(ncbounds.NCBoundsWarning, UserWarning)
