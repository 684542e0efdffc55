"""Units shown in figures (neurofit.plots): SI values get the SI prefix that keeps the numbers readable."""
import pytest

from neurofit.plots import display_scale, format_quantity, unit_for


def test_format_quantity_picks_the_prefix():
    assert format_quantity(2e-5, "siemens") == "20 uS"
    assert format_quantity(-0.065, "volt") == "-65 mV"
    assert format_quantity(2e-10, "farad") == "200 pF"
    assert format_quantity(0.0, "amp") == "0 A"
    assert format_quantity(1.5, "1") == "1.5"


def test_unit_for_follows_the_median_magnitude():
    assert unit_for([3.0e-5, 3.3e-5, 2.9e-5], "siemens") == ("uS", pytest.approx(1e6))
    assert unit_for([-0.07, -0.06], "volt") == ("mV", pytest.approx(1e3))
    assert unit_for([1.2, 0.8], "1") == ("", 1.0)
    assert unit_for([0.0, 0.0], "siemens") == ("siemens", 1.0)
    assert unit_for([5.0], "meter**2") == ("meter**2", 1.0)  # no symbol: stays SI


def test_display_scale_ignores_missing_infinite_and_zero_values():
    assert display_scale([2e-5, None, float("nan"), 0.0, 0.0, 0.0], "siemens") == ("uS", pytest.approx(1e6))
    assert display_scale([None, float("inf")], "volt") == ("volt", 1.0)
    assert display_scale([2e-10], "1") == ("", 1.0)
