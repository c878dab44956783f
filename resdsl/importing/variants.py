"""How the instances of one module class may differ and still be one block: by an identity
residual that some lack (timm's ``has_skip``), or by a named layer that some hold and others
lack or hold as ``nn.Identity`` (a stage's first ``downsample``, an SE module in some blocks
only). Such a layer is written ``layer = ... if has_layer else identity``. Instances that differ
otherwise are blocks of their own (variants)."""

from __future__ import annotations

Statement = tuple[str, str, dict[str, object]]  # (layer name or "", op, arguments)
ABSENT: dict[str, object] = {"absent": True}  # the arguments of a layer an instance lacks


def shape_of(statements: list[Statement]) -> list[tuple[str, str, object]]:
    """What instances of one class must share: names, ops and groups' bodies."""
    return [(s[0], s[1], s[2].get("body")) for s in statements]


def skip_at(first: list[Statement], new: list[Statement]) -> int | None:
    """Where one of two instances has an identity residual the other lacks, all else alike."""
    if abs(len(first) - len(new)) != 1:
        return None
    longer, shorter = (first, new) if len(first) > len(new) else (new, first)
    at = next((i for i, (a, b) in enumerate(zip(longer, shorter, strict=False)) if a[:2] != b[:2]), len(shorter))
    if longer[at][1] != "residual" or longer[at][2]["kind"] not in ("identity", "none"):
        return None
    return at if shape_of(longer[:at] + longer[at + 1 :]) == shape_of(shorter) else None


def fits(first: list[Statement], new: list[Statement]) -> bool:
    """Whether an instance has the layers of a block class's first (or lacks only its skip)."""
    return shape_of(first) == shape_of(new) or skip_at(first, new) is not None


def absent(name: str) -> Statement:
    """The place of a named layer an instance does not hold."""
    return (name, "identity", dict(ABSENT))


def missing(statement: Statement) -> bool:
    """A layer the instance lacks, or holds as nn.Identity (timm's ``self.se = nn.Identity()``)."""
    return bool(statement[0]) and statement[1] == "identity"


def _lacking(statement: Statement | None, rest: list[Statement]) -> Statement | None:
    """What stands in for ``statement`` in an instance whose ``rest`` lacks it: an absent layer
    for a named one, no addition for an identity residual; None where it cannot be lacking."""
    if statement is None:
        return None
    name, op, args = statement
    if name and name not in {s[0] for s in rest}:
        return absent(name)
    if op == "residual" and args.get("kind") in ("identity", "none") and not any(s[1] == "residual" for s in rest):
        return ("", "residual", {"kind": "none"})
    return None


Insertions = list[tuple[int, Statement]]  # (position in the padded list, what is put there)


def pad(first: list[Statement], new: list[Statement]) -> tuple[Insertions, Insertions] | None:
    """What to insert into each of two instances, where (positions in the padded lists, in
    order), so that they line up statement by statement; None where no insertion lines them up."""
    into_first: Insertions = []
    into_new: Insertions = []
    i = j = size = 0
    while i < len(first) or j < len(new):
        a = first[i] if i < len(first) else None
        b = new[j] if j < len(new) else None
        if a is not None and b is not None and a[0] == b[0] and (a[1] == "residual") == (b[1] == "residual"):
            i, j = i + 1, j + 1
        elif (stand_in := _lacking(a, new[j:])) is not None:
            into_new.append((size, stand_in))
            i += 1
        elif (stand_in := _lacking(b, first[i:])) is not None:
            into_first.append((size, stand_in))
            j += 1
        else:
            return None
        size += 1
    return into_first, into_new


def optional_layers(template: list[Statement], new: list[Statement]) -> set[str] | None:
    """The layers held by one of two lined-up instances and missing from the other; None where
    they differ in any other way (another op, another group, another statement)."""
    if len(template) != len(new):
        return None
    names: set[str] = set()
    for a, b in zip(template, new, strict=True):
        if shape_of([a]) == shape_of([b]) or (missing(a) and missing(b)):
            continue
        if a[1] == b[1] == "residual" and {a[2]["kind"], b[2]["kind"]} <= {"identity", "none"}:
            continue
        if a[0] != b[0] or not (missing(a) or missing(b)):
            return None
        names.add(a[0])
    return names
