"""The layer rule: which package of ``node/`` may import which, ``transport/`` imports
nothing from ``node/``, and no module imports itself back through others (no cycle).

Lower layers never import upper ones: the wire format (``protocol``) and the pure
resilience and app layers import no other layer; the core sees only the protocol and
the app interface; the shell, the client and the command line sit on top. The config,
its schema, the TLS certificates and the choice of network (plain or TLS) are shared.
"""

from __future__ import annotations

import pytest

from tests.architecture.imports import imports, layer_of, module_name, source_files

SHARED = {"node.config", "node.config_schema", "node.errors", "node.certs", "node.tls_network"}
ALLOWED: dict[str, set[str]] = {
    "transport": set(),
    "node.errors": set(),
    "node.config_schema": set(),
    "node.certs": set(),  # cryptography alone
    "node.config": {"node.config_schema", "node.certs"},
    "node.tls_network": {"node.config", "node.certs", "transport"},
    "protocol": set(),
    "resilience": set(),
    "app": {"protocol"},  # the strict msgpack reader
    "observability": set(),
    "consensus": {"protocol", "app"},
    "storage": {"protocol", "consensus"},
    "client": {"protocol", "app", "transport"} | SHARED,
    "shell": {
        "protocol",
        "consensus",
        "app",
        "resilience",
        "storage",
        "observability",
        "transport",
    }
    | SHARED,
    "cli": {"shell", "client", "storage", "protocol", "consensus", "app", "transport"} | SHARED,
    "node.__main__": {"cli"},
    "node": set(),
}


def edges() -> dict[str, set[str]]:
    return {module_name(path): imports(path) for path in source_files()}


def test_every_layer_is_known() -> None:
    assert {layer_of(m) for m in edges()} <= set(ALLOWED)


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_layer_imports_only_what_it_may(layer: str) -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in edges().items()
        if layer_of(module) == layer
        for target in targets
        if layer_of(target) not in ALLOWED[layer] | {layer}
    )
    assert wrong == []


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The cycles of ``graph`` found by a depth-first search, one path per back edge."""
    found: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycle() -> None:
    graph = {
        m: {t for t in ts if t != m and not m.startswith(t + ".")} for m, ts in edges().items()
    }
    assert cycles(graph) == []


def test_the_rule_catches() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
    assert layer_of("node.shell.replica") == "shell"
    assert layer_of("node.config") == "node.config"
    assert layer_of("transport.listener") == "transport"
