"""The layout of DESIGN §7 and the rules that hold it up.

The import contracts themselves are import-linter's (setup.cfg, run by `make
test` as `lint-imports`); these tests run them too, make sure every module of
the package is covered by them, and check what import-linter cannot: that no
view branches on a role and that no module grows past a size a reader can hold.
"""
from __future__ import annotations

import ast
import configparser
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PACKAGE = os.path.join(REPO, "voucher_service")
BIN = os.path.dirname(sys.executable)
MAX_MODULE_LINES = 420  # "about 400": a module a reader can hold in mind
# Modules left over the limit, each with the reason; empty when the layout is done.
OVERSIZED = {}
# Modules that are neither services nor views: the app factory, configuration,
# the request-bound session, and the HTTP and command-line layers. The witness
# is not a service of the operator but a region's own program (DESIGN §10): its
# contract is that it imports nothing of the operator (setup.cfg).
NOT_SERVICES = ("voucher_service", "voucher_service.config", "voucher_service.db")
NOT_SERVICE_PACKAGES = ("voucher_service.http", "voucher_service.cli", "voucher_service.ledger",
                        "voucher_service.witness", "voucher_service.console")


def modules() -> dict[str, str]:
    found = {}
    for folder, dirs, files in os.walk(PACKAGE):
        dirs[:] = [d for d in dirs if d not in ("__pycache__", "migrations")]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                dotted = os.path.relpath(path, REPO)[:-3].replace(os.sep, ".")
                found[dotted.removesuffix(".__init__")] = path
    return found


def is_view(module: str) -> bool:
    return "api" in module.split(".")[1:]


def contract_sources(name: str) -> set[str]:
    config = configparser.ConfigParser()
    config.read(os.path.join(REPO, "setup.cfg"))
    return set(config[f"importlinter:contract:{name}"]["source_modules"].split())


def covered(module: str, sources: set[str]) -> bool:
    return any(module == s or module.startswith(s + ".") for s in sources)


def test_the_import_contracts_hold():
    done = subprocess.run([os.path.join(BIN, "lint-imports"), "--no-cache"], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "5 kept, 0 broken" in done.stdout


@pytest.mark.parametrize("contract", ["services-know-no-http", "views-above-services"])
def test_every_service_module_is_under_the_contracts(contract):
    """A new service module must be listed in setup.cfg, or the contracts would not see it."""
    sources = contract_sources(contract)
    unlisted = sorted(m for m, path in modules().items()
                      if not is_view(m) and m not in NOT_SERVICES and not covered(m, set(NOT_SERVICE_PACKAGES))
                      and not covered(m, sources) and _has_code(path))
    assert not unlisted, f"add these to [importlinter:contract:{contract}] in setup.cfg: {unlisted}"


def _has_code(path: str) -> bool:
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    return any(not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)) for node in tree.body)


def _role_reads(path: str) -> list[int]:
    with open(path, encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    return [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "role"]


def test_no_view_branches_on_a_role():
    """Who may do what is decided in voucher_service/http/access.py alone."""
    offenders = {m: lines for m, path in modules().items() if is_view(m) and (lines := _role_reads(path))}
    assert not offenders, offenders


def test_role_reads_are_caught(tmp_path):
    """The check above can fail: a view reading `who.role` is found."""
    view = tmp_path / "api.py"
    view.write_text("def view(who):\n    if who.role == 'officer':\n        return 1\n")
    assert _role_reads(str(view)) == [2]


def test_no_module_is_too_long():
    sizes = {}
    for module, path in modules().items():
        with open(path, encoding="utf-8") as handle:
            sizes[module] = sum(1 for _ in handle)
    too_long = {m: n for m, n in sizes.items() if n > MAX_MODULE_LINES and m not in OVERSIZED}
    assert not too_long, too_long
    assert all(sizes.get(m, 0) > MAX_MODULE_LINES for m in OVERSIZED), "shrunk: drop it from OVERSIZED"


def test_few_modules_at_the_top():
    top = sorted(m for m in modules() if m.count(".") == 1 and not os.path.isdir(os.path.join(REPO, *m.split("."))))
    assert top == ["voucher_service.clock", "voucher_service.config", "voucher_service.db"], top
