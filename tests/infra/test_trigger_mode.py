"""ORDERS_TRIGGER_CARDINALITY through infra: a parameter of main.bicep, passed to the function app module,
set as an app setting, with the values and default the app accepts (shared.settings)."""

from __future__ import annotations

import json

from shared.settings import CARDINALITIES, CARDINALITY_SETTING
from tests.infra import bicep_rules as rules


def test_the_trigger_mode_is_a_parameter_wired_into_the_app_settings() -> None:
    main = rules.parse_file(rules.INFRA / "main.bicep")
    module = rules.parse_file(rules.MODULES / "functionapp.bicep")
    for parsed in (main, module):
        assert rules.param_default(parsed, "ordersTriggerCardinality") == "one"
    text = (rules.MODULES / "functionapp.bicep").read_text()
    assert "'one'\n  'many'" in text and "'one'\n  'many'" in (rules.INFRA / "main.bicep").read_text()
    assert tuple(CARDINALITIES) == ("one", "many")
    assert "ordersTriggerCardinality: ordersTriggerCardinality" in (rules.INFRA / "main.bicep").read_text()
    settings = rules.app_settings(module)
    assert CARDINALITY_SETTING in settings and "ordersTriggerCardinality" in str(
        settings[CARDINALITY_SETTING]
    )
    parameters = json.loads((rules.INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["ordersTriggerCardinality"]["value"] == "${ORDERS_TRIGGER_CARDINALITY=one}"
