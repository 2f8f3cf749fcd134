"""The bench's report arithmetic (bench/run.py): connection samples and the
PgBouncer column, which must appear in a run through it and only there."""

from bench.run import results_table, summarise_connections


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

    direct_table = results_table([("floor", _row(100, direct))], 100)
    pooled_table = results_table([("floor", _row(100, direct)), ("service", _row(50, pooled))], 100)

    assert "pgbouncer" not in direct_table
    header, _, floor_line, service_line = pooled_table.splitlines()
    assert "| wrk | pgbouncer | other |" in header
    # CPU per payment counts PgBouncer's CPU: (16 + 2) s over 500 payments.
    assert "| 36.00 |" in service_line
    assert service_line.count("|") == header.count("|") == floor_line.count("|")
    assert "| 0.20 | 0.00 |" in service_line  # pooler cores, then other
