"""Class names as spec names: snake case, never a reserved word."""

from resdsl.importing.names import snake


def test_snake_case_and_reserved_words() -> None:
    assert snake("BasicBlock") == "basic_block"
    assert snake("SEModule") == "se_module"
    assert snake("Block") == "block_"
