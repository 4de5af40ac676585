"""BOM explosion: worked cases a planner would check by hand, then properties over random BOMs."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.bom import BomLine, explode, find_cycle, lines_on_cycles

D = Decimal
ON = date(2026, 12, 1)


def boms_of(*lines: BomLine) -> dict[str, list[BomLine]]:
    structure: dict[str, list[BomLine]] = {}
    for line in lines:
        structure.setdefault(line.parent, []).append(line)
    return structure


def test_single_level_adds_the_scrap_allowance():
    boms = boms_of(BomLine("BREAD", "FLOUR", D("0.25"), D("0.02")), BomLine("BREAD", "BAG", D(1)))
    assert explode("BREAD", boms, ON) == {"FLOUR": D("0.255"), "BAG": D(1)}


def test_phantom_kit_is_replaced_by_its_own_bom_with_scrap_compounded():
    # A chair takes one seat kit (phantom, 1 % handling loss); the kit is 0.5 kg foam (+4 %) and 2 screws.
    boms = boms_of(
        BomLine("CHAIR", "SEAT-KIT", D(1), D("0.01"), phantom=True),
        BomLine("SEAT-KIT", "FOAM", D("0.5"), D("0.04")),
        BomLine("SEAT-KIT", "SCREW", D(2)),
    )
    assert explode("CHAIR", boms, ON) == {"FOAM": D("0.5252"), "SCREW": D("2.02")}


def test_stocked_sub_assembly_is_consumed_as_itself():
    boms = boms_of(BomLine("CHAIR", "FRAME", D(1)), BomLine("FRAME", "TUBE", D("1.8")))
    assert explode("CHAIR", boms, ON) == {"FRAME": D(1)}


def test_component_reached_directly_and_through_a_phantom_is_summed():
    boms = boms_of(
        BomLine("CHAIR", "SCREW", D(4)),
        BomLine("CHAIR", "SEAT-KIT", D(1), phantom=True),
        BomLine("SEAT-KIT", "SCREW", D(2)),
    )
    assert explode("CHAIR", boms, ON) == {"SCREW": D(6)}


def test_engineering_change_swaps_lines_on_its_date_without_overlap():
    change = date(2027, 3, 1)
    boms = boms_of(
        BomLine("BREAD", "FLOUR-T55", D("0.25"), effective_to=change),
        BomLine("BREAD", "FLOUR-T65", D("0.24"), effective_from=change),
    )
    assert explode("BREAD", boms, date(2027, 2, 28)) == {"FLOUR-T55": D("0.25")}
    assert explode("BREAD", boms, change) == {"FLOUR-T65": D("0.24")}


def test_item_without_a_bom_consumes_nothing():
    assert explode("FLOUR", {}, ON) == {}


def test_cycle_is_refused_naming_it():
    boms = boms_of(BomLine("A", "B", D(1), phantom=True), BomLine("B", "C", D(1)), BomLine("C", "A", D(1)))
    with pytest.raises(ValueError, match="A → B → C → A"):
        explode("A", boms, ON)


def test_cycle_through_stocked_sub_assemblies_is_refused_too():
    boms = boms_of(BomLine("A", "B", D(1)), BomLine("B", "A", D(1)))
    with pytest.raises(ValueError, match="A → B → A"):
        explode("A", boms, ON)


def test_cycle_only_through_a_line_not_yet_effective_does_not_block_today_but_is_found_on_any_date():
    boms = boms_of(BomLine("A", "B", D(1)), BomLine("B", "A", D(1), effective_from=date(2027, 1, 1)))
    assert explode("A", boms, ON) == {"B": D(1)}
    assert find_cycle("A", boms) == ("A", "B", "A")
    assert find_cycle("A", boms, ON) is None


def test_every_line_on_a_cycle_is_found_with_the_shortest_cycle_through_it():
    # A → B → C → A, and C → D → A closing a longer way round; E → A hangs off the cycle.
    lines = [("A", "B"), ("B", "C"), ("C", "A"), ("C", "D"), ("D", "A"), ("E", "A")]
    assert lines_on_cycles(lines) == {
        ("A", "B"): ("A", "B", "C", "A"), ("B", "C"): ("B", "C", "A", "B"), ("C", "A"): ("C", "A", "B", "C"),
        ("C", "D"): ("C", "D", "A", "B", "C"), ("D", "A"): ("D", "A", "B", "C", "D")}


def test_lines_known_elsewhere_close_a_cycle_but_are_not_reported():
    assert lines_on_cycles([("C", "A"), ("C", "X")], others=[("A", "B"), ("B", "C")]) == {("C", "A"): ("C", "A", "B", "C")}
    assert lines_on_cycles([("A", "A")]) == {("A", "A"): ("A", "A")}
    assert lines_on_cycles([("A", "B"), ("B", "C")]) == {}


def test_a_bom_deeper_than_the_recursion_limit_is_checked():
    chain = [BomLine(f"P{n}", f"P{n + 1}", D(1)) for n in range(5000)]
    assert find_cycle("P0", boms_of(*chain)) is None
    assert find_cycle("P0", boms_of(*chain, BomLine("P5000", "P0", D(1)))) == tuple(f"P{n}" for n in range(5001)) + ("P0",)


def test_phantom_without_an_effective_bom_is_an_error_not_an_empty_kit():
    boms = boms_of(BomLine("CHAIR", "SEAT-KIT", D(1), phantom=True),
                   BomLine("SEAT-KIT", "FOAM", D("0.5"), effective_to=ON))
    with pytest.raises(ValueError, match="phantom 'SEAT-KIT'"):
        explode("CHAIR", boms, ON)


@pytest.mark.parametrize("quantity_per, scrap_factor, error", [
    (0.25, D(0), TypeError),  # float refused, not converted
    (D(0), D(0), ValueError),
    (D(1), D("-0.01"), ValueError),
    (D("NaN"), D(0), ValueError),
])
def test_invalid_lines_are_refused(quantity_per, scrap_factor, error):
    with pytest.raises(error):
        BomLine("BREAD", "FLOUR", quantity_per, scrap_factor)


def test_int_quantity_is_taken_as_decimal_and_dates_must_be_in_order():
    assert BomLine("CHAIR", "SCREW", 4).quantity_per == D(4)
    assert isinstance(BomLine("CHAIR", "SCREW", 4).quantity_per, Decimal)
    with pytest.raises(ValueError):
        BomLine("A", "B", D(1), effective_from=ON, effective_to=ON)


# --- properties -------------------------------------------------------------------------------

quantities = st.decimals(min_value=D("0.001"), max_value=D(1000), places=3)
scrap_factors = st.decimals(min_value=D(0), max_value=D("0.5"), places=4)


@given(st.lists(st.tuples(st.sampled_from(["FLOUR", "SALT", "BAG", "YEAST"]), quantities, scrap_factors), max_size=8))
def test_single_level_equals_the_issue_formula(rows):
    boms = boms_of(*(BomLine("BREAD", component, quantity, scrap) for component, quantity, scrap in rows))
    expected: dict[str, Decimal] = {}
    for component, quantity, scrap in rows:
        expected[component] = expected.get(component, D(0)) + quantity * (1 + scrap)
    assert explode("BREAD", boms, ON) == expected


@st.composite
def layered_boms(draw):
    """A random acyclic multi-level BOM: items only ever use items from lower levels."""
    levels = [[f"L{level}-{i}" for i in range(draw(st.integers(1, 3)))] for level in range(draw(st.integers(2, 4)))]
    phantoms = {item for level in levels[1:-1] for item in level if draw(st.booleans())}
    lines = []
    for depth, level in enumerate(levels[:-1]):
        below = [item for lower in levels[depth + 1:] for item in lower]
        for parent in level:
            # every phantom must have a BOM, so every non-leaf item gets at least one line
            for component in draw(st.lists(st.sampled_from(below), min_size=1, max_size=3, unique=True)):
                lines.append(BomLine(parent, component, draw(quantities), draw(scrap_factors), phantom=component in phantoms))
    return levels[0][0], boms_of(*lines), phantoms


@given(layered_boms())
def test_inlining_a_phantom_into_its_parent_changes_nothing(case):
    item, boms, phantoms = case
    exploded = explode(item, boms, ON)
    assert not phantoms & exploded.keys()
    assert all(quantity > 0 for quantity in exploded.values())

    # Replace one phantom line of the top item by its kit's lines, scaled: the same consumption.
    top_phantoms = [line for line in boms.get(item, []) if line.phantom]
    if top_phantoms:
        kit = top_phantoms[0]
        inlined = [line for line in boms[item] if line is not kit] + [
            BomLine(item, part.component, kit.gross_quantity * part.gross_quantity, phantom=part.phantom)
            for part in boms[kit.component]
        ]
        assert explode(item, {**boms, item: inlined}, ON) == exploded


def reachable(item: str, boms: dict[str, list[BomLine]]) -> set[str]:
    seen, todo = set(), [item]
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(line.component for line in boms.get(node, []))
    return seen


@given(layered_boms(), st.data())
def test_a_line_pointing_back_up_is_always_reported_as_a_cycle(case, data):
    item, boms, _ = case
    child = data.draw(st.sampled_from(sorted(reachable(item, boms) & boms.keys())))
    closing = {**boms, child: [*boms[child], BomLine(child, item, D(1))]}
    cycle = find_cycle(item, closing)
    assert cycle is not None and cycle[0] == cycle[-1] == item
    with pytest.raises(ValueError, match="BOM cycle"):
        explode(item, closing, ON)


def reaches(lines: list[tuple[str, str]], source: str, target: str) -> bool:
    seen, todo = set(), [source]
    while todo:
        node = todo.pop()
        if node == target:
            return True
        if node not in seen:
            seen.add(node)
            todo.extend(component for parent, component in lines if parent == node)
    return False


@given(st.lists(st.tuples(st.sampled_from("ABCDEF"), st.sampled_from("ABCDEF")), max_size=12), st.data())
def test_a_line_is_on_a_cycle_exactly_when_its_component_leads_back_to_its_parent(lines, data):
    others = data.draw(st.lists(st.sampled_from(lines), max_size=4)) if lines else []
    checked = [line for line in lines if line not in others]
    cycles = lines_on_cycles(checked, others)
    assert list(cycles) == [line for line in dict.fromkeys(checked) if reaches(lines, line[1], line[0])]
    for (parent, component), cycle in cycles.items():
        assert cycle[:2] == (parent, component) and cycle[-1] == parent
        assert all(step in lines for step in zip(cycle, cycle[1:], strict=False))
