"""Which names a layer may have: the rules both back ends and the checker share.

A layer's name becomes an attribute of an ``nn.Module`` (``self.conv1``) and a key prefix in its
``state_dict``, so it cannot be renamed quietly: a name that Python or ``nn.Module`` already owns
is refused by the checker (E505), every such name in one run. Names that only the generated
code's own variables and helpers use are renamed by the code generator instead (the state_dict
does not depend on them). No torch here: the list of ``nn.Module`` attributes is kept below and
``tests/syntax/test_names.py`` checks it against the installed torch.
"""

from __future__ import annotations

import keyword
from collections.abc import Container

from resdsl.diagnostics import Diagnostic, error
from resdsl.syntax import ast
from resdsl.syntax.parser import LAYER_RESERVED_WORDS, RESERVED_WORDS, reserved_word

# dir(torch.nn.Module()) without dunder names, torch 2.13 (tests/syntax/test_names.py keeps it current)
NN_MODULE_ATTRIBUTES = frozenset(
    {
        "T_destination",
        "_apply",
        "_backward_hooks",
        "_backward_pre_hooks",
        "_buffers",
        "_call_impl",
        "_compiled_call_impl",
        "_forward_hooks",
        "_forward_hooks_always_called",
        "_forward_hooks_with_kwargs",
        "_forward_pre_hooks",
        "_forward_pre_hooks_with_kwargs",
        "_get_backward_hooks",
        "_get_backward_pre_hooks",
        "_get_name",
        "_is_full_backward_hook",
        "_load_from_state_dict",
        "_load_state_dict_post_hooks",
        "_load_state_dict_pre_hooks",
        "_maybe_warn_non_full_backward_hook",
        "_modules",
        "_named_members",
        "_non_persistent_buffers_set",
        "_parameters",
        "_register_load_state_dict_pre_hook",
        "_register_state_dict_hook",
        "_replicate_for_data_parallel",
        "_save_to_state_dict",
        "_slow_forward",
        "_state_dict_hooks",
        "_state_dict_pre_hooks",
        "_version",
        "_wrapped_call_impl",
        "add_module",
        "apply",
        "bfloat16",
        "buffers",
        "call_super_init",
        "children",
        "compile",
        "cpu",
        "cuda",
        "double",
        "dump_patches",
        "eval",
        "extra_repr",
        "float",
        "forward",
        "get_buffer",
        "get_extra_state",
        "get_parameter",
        "get_submodule",
        "half",
        "ipu",
        "load_state_dict",
        "modules",
        "mtia",
        "named_buffers",
        "named_children",
        "named_modules",
        "named_parameters",
        "parameters",
        "register_backward_hook",
        "register_buffer",
        "register_forward_hook",
        "register_forward_pre_hook",
        "register_full_backward_hook",
        "register_full_backward_pre_hook",
        "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook",
        "register_module",
        "register_parameter",
        "register_state_dict_post_hook",
        "register_state_dict_pre_hook",
        "requires_grad_",
        "set_extra_state",
        "set_submodule",
        "share_memory",
        "state_dict",
        "to",
        "to_empty",
        "train",
        "training",
        "type",
        "xpu",
        "zero_grad",
    }
)

# attributes of resdsl's own modules (resdsl.backends.torch.ScopeModule and the models both back
# ends build: the preprocess method, the feature and checkpointing switches), and every resdsl_* name
RESDSL_ATTRIBUTES = frozenset({"kind", "preprocess", "feature_info", "grad_checkpointing", "checkpoint_reentrant"})
RESDSL_PREFIX = "resdsl_"

PYTHON_KEYWORDS = frozenset(keyword.kwlist)  # soft keywords (match, case, _) are valid attributes


def layer_name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a layer (module attribute), or None when it can."""
    if name in PYTHON_KEYWORDS:
        return "is a Python keyword"
    if name.startswith("__") and name.endswith("__"):
        return "is a Python special name"
    if name in NN_MODULE_ATTRIBUTES:
        return "is an attribute of torch.nn.Module, which a module of that name would replace"
    if name in RESDSL_ATTRIBUTES or name.startswith(RESDSL_PREFIX):
        return "is an attribute resdsl's modules use"
    if not name.isidentifier():
        return "is not a valid identifier"
    return None


class FreshNames:
    """Names not yet taken in one namespace: ``base``, then ``base_1``, ``base_2`` ... (``sep``
    joins base and number). Where numbering stopped is remembered per base, so a body of a
    thousand anonymous ``relu`` layers is named in linear time. The one helper that names what
    the writer left unnamed (anonymous layers, error nodes, shared modules, graph node ids)."""

    def __init__(self, *taken: Container[str], sep: str = "_") -> None:
        self.taken, self.sep = taken, sep
        self._next: dict[str, int] = {}

    def __call__(self, base: str) -> str:
        n = self._next.get(base, 0)
        while True:
            candidate = base if n == 0 else f"{base}{self.sep}{n}"
            n += 1
            for names in self.taken:  # a loop, not any(...): a placer calls this for every node
                if candidate in names:
                    break
            else:
                self._next[base] = n
                return candidate


def bad_layer_name(name: str, problem: str, span: ast.Span) -> Diagnostic:
    """E505: a layer name that cannot be a module attribute (reported, never renamed)."""
    return error(
        "E505",
        f"the layer name '{name}' {problem}",
        span,
        help=f"rename the layer, e.g. '{name}_' or '{name}1' (it becomes a module attribute and state_dict key)",
    )


def reserved_names(module: ast.Module) -> list[Diagnostic]:
    """E005 for every definition or parameter named with a reserved word, and every assignment
    named with one that is a keyword inside a body (``block = ...`` names a layer)."""
    out: list[Diagnostic] = []

    def flag(name: str, span: ast.Span, what: str) -> None:
        reserved = LAYER_RESERVED_WORDS if what == "a layer or value name" else RESERVED_WORDS
        if name in reserved:
            out.extend(reserved_word(name, span, what).diagnostics)

    for definition in module.definitions:
        flag(definition.name, definition.name_span, "a definition's name")
        if isinstance(definition, (ast.BlockDef, ast.NetworkDef)):
            for param in definition.params:
                flag(param.name, param.span, "a parameter's name")
            for stmt in definition.body:
                if isinstance(stmt, ast.Assign):
                    flag(stmt.name, stmt.name_span, "a layer or value name")
    return out
