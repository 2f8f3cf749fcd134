"""The bench's report arithmetic (bench/run.py): connection samples, the
PgBouncer column, which must appear in a run through it and only there, and
each run's share of both floors."""

from bench.run import results_table, share_of, summarise_connections, targets_table


def test_connection_samples_are_summarised_by_mean_and_max():
    summary = summarise_connections([(16, 2), (16, 5), (18, 2)])

    assert summary == {"samples": 3, "total_mean": 50 / 3, "total_max": 18,
                       "busy_mean": 3.0, "busy_max": 5}


def test_no_sample_is_zero_not_an_error():
    assert summarise_connections([])["busy_max"] == 0


def _row(rate: float, seconds: dict) -> dict:
    return {"rate": rate, "p50_us": 1000, "p95_us": 2000, "p99_us": 3000, "errors": 0,
            "cpu": {"elapsed": 10.0, "seconds": seconds}}


def test_pgbouncer_column_only_in_a_run_through_it():
    direct = {"app": 10.0, "database": 4.0, "broker": 1.0, "upstream": 0.5, "load": 0.5, "other": 0.0}
    pooled = dict(direct, pooler=2.0)

    direct_table = results_table([("floor", _row(100, direct))], 100, 200)
    pooled_table = results_table([("floor", _row(100, direct)), ("service", _row(50, pooled))], 100, 200)

    assert "pgbouncer" not in direct_table
    header, _, floor_line, service_line = pooled_table.splitlines()
    assert "| wrk | pgbouncer | other |" in header
    # CPU per payment counts PgBouncer's CPU: (16 + 2) s over 500 payments.
    assert "| 36.00 |" in service_line
    assert service_line.count("|") == header.count("|") == floor_line.count("|")
    assert "| 0.20 | 0.00 |" in service_line  # pooler cores, then other


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_run_is_a_share_of_both_floors_but_not_of_itself():
    cpu = {"app": 1.0, "other": 0.0}
    table = results_table([("floor", _row(400, cpu)), ("fixed floor", _row(1000, cpu)),
                           ("service", _row(250, cpu))], 400, 1000)

    header, _, floor, fixed, service = (_cells(line) for line in table.splitlines())
    of_floor, of_fixed = header.index("of floor"), header.index("of fixed floor")
    assert (floor[of_floor], floor[of_fixed]) == ("—", "40%")
    assert (fixed[of_floor], fixed[of_fixed]) == ("250%", "—")
    assert (service[of_floor], service[of_fixed]) == ("62%", "25%")


def test_without_a_floor_rate_the_share_is_a_dash():
    assert share_of(100, None) == "—"
    assert share_of(100, 0) == "—"
    assert share_of(70, 100) == "70%"


def _run(rate: float, errors: int = 0, p99_us: int = 30_000) -> dict:
    return {"rate": rate, "errors": errors, "p99_us": p99_us, "connections": 32}


def test_the_fixed_floor_target_is_judged_on_its_own():
    targets = targets_table(_run(300), _run(240), None, 1.0, fixed=_run(1000)).splitlines()

    floor_line = next(line for line in targets if "of the floor" in line)
    fixed_line = next(line for line in targets if "of the fixed floor" in line)
    assert floor_line.endswith("| 80% of 300/s, 0 errors | yes |")
    assert "at 32 connections" in fixed_line
    assert fixed_line.endswith("| 24% of 1000/s, 0 errors | NO |")
    # No CPU measured, no PostgreSQL CPU target.
    assert not any("PostgreSQL CPU" in line for line in targets)


def test_the_fixed_floor_target_is_met_at_55_percent_without_errors():
    met = targets_table(_run(300), _run(550), None, 1.0, fixed=_run(1000))
    below = targets_table(_run(300), _run(549), None, 1.0, fixed=_run(1000))
    with_errors = targets_table(_run(300), _run(550, errors=1), None, 1.0, fixed=_run(1000))

    assert "| 55% of 1000/s, 0 errors | yes |" in met
    assert "| 55% of 1000/s, 0 errors | NO |" in below
    assert "| 55% of 1000/s, 1 errors | NO |" in with_errors


def test_no_fixed_floor_no_fixed_floor_target():
    assert "fixed floor" not in targets_table(_run(300), _run(240), None, 1.0)


def test_p99_is_judged_at_40_ms():
    assert "| p99 < 40 ms at 32 connections | 39.9 ms | yes |" in targets_table(
        _run(300), _run(240, p99_us=39_900), None, 1.0)
    assert "| 40.0 ms | NO |" in targets_table(_run(300), _run(240, p99_us=40_000), None, 1.0)


def test_app_cpu_per_payment_is_the_app_groups_seconds_over_the_payments():
    # 240 payments/s for 10 s on 3.36 s of the app's CPU: 1.40 ms each.
    service = {**_run(240), "cpu": {"elapsed": 10.0, "seconds": {"app": 3.36, "database": 9.0}}}
    assert "| 1.40 ms | yes |" in targets_table(_run(300), service, None, 1.0)
    service["cpu"]["seconds"]["app"] = 3.6
    assert "| 1.50 ms | NO |" in targets_table(_run(300), service, None, 1.0)


def _cpu_run(rate: float, database_s: float) -> dict:
    return {**_run(rate), "cpu": {"elapsed": 10.0, "seconds": {"app": 1.0, "database": database_s}}}


def test_postgresql_cpu_per_payment_is_judged_against_the_fixed_floors():
    # The fixed floor: 1000/s for 10 s on 5 s of PostgreSQL's CPU, 0.50 ms each.
    fixed = _cpu_run(1000, 5.0)
    # The service: 500/s on 3.25 s, 0.65 ms each: 1.30 times, met; 0.70 ms is not.
    met = targets_table(_run(300), _cpu_run(500, 3.25), None, 1.0, fixed=fixed)
    missed = targets_table(_run(300), _cpu_run(500, 3.5), None, 1.0, fixed=fixed)
    assert "| PostgreSQL CPU per payment ≤ 1.3 × the fixed floor's | 0.65 ms against 0.50 ms: 1.30 × | yes |" in met
    assert "| 0.70 ms against 0.50 ms: 1.40 × | NO |" in missed


def test_the_results_carry_app_and_postgresql_cpu_per_payment():
    table = results_table([("fixed floor", _row(1000, {"app": 4.0, "database": 5.0})),
                           ("service", _row(500, {"app": 7.0, "database": 3.0}))], None, 1000)
    header, _, fixed, service = (_cells(line) for line in table.splitlines())
    app, database = header.index("app ms/payment"), header.index("PostgreSQL ms/payment")
    assert (fixed[app], fixed[database]) == ("0.40", "0.50")
    assert (service[app], service[database]) == ("1.40", "0.60")


def test_the_one_connection_p50_is_judged_against_before():
    from bench.run import P50_ONE_CONNECTION_BEFORE_MS
    at = {**_run(100), "p50_us": P50_ONE_CONNECTION_BEFORE_MS * 1000}
    slower = {**_run(100), "p50_us": P50_ONE_CONNECTION_BEFORE_MS * 1000 + 10}
    assert targets_table(_run(300), _run(240), None, 1.0, single=at).splitlines()[-2].endswith("| yes |")
    assert targets_table(_run(300), _run(240), None, 1.0, single=slower).splitlines()[-2].endswith("| NO |")
