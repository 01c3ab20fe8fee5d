"""Scenarios: a network and the steps to run on it, described in one TOML file."""

from .schema import Scenario, ScenarioError, load

__all__ = ["Scenario", "ScenarioError", "load"]
