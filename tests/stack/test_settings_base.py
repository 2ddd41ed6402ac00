"""The adapters' settings base: an empty string means unset for a setting whose default is None
(what an unset ``${VAR:-}`` resolves to), aliases included, so no adapter needs its own validator."""

from __future__ import annotations

import pytest
from lamina.adapter import AdapterSettings
from pydantic import Field, ValidationError


class Example(AdapterSettings):
    region: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    prefix: str = "lamina"
    port: int | None = None


def test_an_empty_optional_setting_is_unset_and_other_empties_are_kept() -> None:
    s = Example.model_validate({"region": "", "schema": "  ", "prefix": "", "port": ""})
    assert (s.region, s.schema_, s.prefix, s.port) == (None, None, "", None)


def test_unknown_settings_are_still_errors() -> None:
    with pytest.raises(ValidationError, match="regoin"):
        Example.model_validate({"regoin": "eu"})


def test_first_party_settings_take_empty_optional_values_as_unset() -> None:
    from lamina.plugins.aws.snowflake_data import SnowflakeSettings
    from lamina.plugins.dask import DaskComputeSettings

    s = SnowflakeSettings.model_validate({"account": "", "schema": " ", "user": "u"})
    assert s.account is None and s.schema_ is None and s.user == "u"
    d = DaskComputeSettings.model_validate({"address": "  ", "python": ""})
    assert d.address is None and d.python is None
