"""An unreachable database fails within a minute with the default settings, whatever its name resolves to."""
from types import SimpleNamespace

from dbmig_pipeline.db import CONNECT_DEADLINE_S, _connect_budget_s, _no_attempt_past
from dbmig_pipeline.settings import Settings


def _stops_after(seconds_per_attempt: float, attempts: int, budget: float) -> float:
    """When the attempts end, each `seconds_per_attempt` long (waits left out), `attempts` at most."""
    stop = _no_attempt_past(budget)
    elapsed = 0.0
    for number in range(1, attempts + 1):
        elapsed += seconds_per_attempt
        if stop(SimpleNamespace(attempt_number=number, seconds_since_start=elapsed)):
            break
    return elapsed


def test_a_host_with_two_silent_addresses_still_fails_within_a_minute():
    """libpq's connect_timeout (10 s) applies per address: `localhost` (::1 and 127.0.0.1) took 20 s an
    attempt, and four attempts 80 s."""
    defaults = Settings.from_env({})
    budget = _connect_budget_s(defaults)
    assert budget == CONNECT_DEADLINE_S < 60
    attempts = defaults.connect_retries + 1
    assert _stops_after(2 * defaults.connect_timeout_s, attempts, budget) <= budget
    assert _stops_after(defaults.connect_timeout_s, attempts, budget) == attempts * defaults.connect_timeout_s


def test_settings_that_ask_for_longer_get_it():
    patient = Settings.from_env({"DBMIG_CONNECT_TIMEOUT": "30", "DBMIG_CONNECT_RETRIES": "4"})
    assert _connect_budget_s(patient) == 150
    assert _stops_after(30, 5, _connect_budget_s(patient)) == 150
