"""The README documents what the code does: the distribution table and the Rats spec."""

from __future__ import annotations

import re

from crossppl.models import DISTRIBUTIONS, bundled_specs

from .conftest import REPO

README = (REPO / "README.md").read_text()


def test_readme_distribution_table_lists_every_row_and_parameterization():
    rows = dict(re.findall(r"^\| `(\w+)` \| ((?:`\([^`]*\)`(?:, )?)+) \|", README, re.M))
    assert set(rows) == set(DISTRIBUTIONS)
    for name, row in DISTRIBUTIONS.items():
        documented = re.findall(r"`\(([^`]*)\)`", rows[name])
        assert documented == [", ".join(p.params) for p in row.parameterizations], name


def test_readme_shows_the_bundled_rats_spec_verbatim():
    spec = bundled_specs()["rats"].read_text()
    body = spec[spec.index("[model]"):].strip()
    assert body in README


def test_readme_states_the_setup_and_test_commands_that_ci_runs():
    assert "make rats" in README and "make test" in README
    assert re.search(r"^make( browser)? test$", (REPO / ".ci" / "run").read_text(), re.M)
