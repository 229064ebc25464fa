import pytest

from floorline.report.registry import all_sections, section


def test_every_section_module_registers():
    names = [s.name for s in all_sections()]
    assert "device" in names and "evidence" in names
    assert len(names) == len(set(names))


def test_duplicate_registration_rejected():
    @section("dup-test", "a")
    def a(ctx):
        return None

    with pytest.raises(ValueError, match="registered twice"):

        @section("dup-test", "b")
        def b(ctx):
            return None
