"""The connection string's startup options become settings of each
transaction (payment/db/libpq_options.py): nothing is left for a pooler to refuse."""

from psycopg.conninfo import conninfo_to_dict

from payment.config import Config
from payment.db.libpq_options import lift_settings, settings_statement


def lifted(conninfo):
    rest, settings = lift_settings(conninfo)
    return conninfo_to_dict(rest), settings


def test_searchpath_of_the_documented_connection_string_stays_out_of_the_startup_packet():
    config = Config.from_env({"ConnectionStrings__Default": "Host=db;Port=5432;Database=p;Username=u;SearchPath=bc_payment",
                              "KAFKA_BOOTSTRAP_SERVERS": "k:9092"})
    params, settings = lifted(config.database_url)
    assert "options" not in params and settings == {}
    # It is set in every transaction instead (open_pool's search_path).
    assert config.db_search_path == "bc_payment"


def test_every_spelling_of_a_setting_is_lifted_and_other_options_stay():
    params, settings = lifted(r"host=h options='-c search_path=a,b -cwork_mem=4MB --lock_timeout=5s -c x.y=a\\ b -X'")
    assert settings == {"search_path": "a,b", "work_mem": "4MB", "lock_timeout": "5s", "x.y": "a b"}
    assert params["options"] == "-X"


def test_the_settings_statement_quotes_values():
    statement = settings_statement({"search_path": "bc_payment, public", "application_name": "it's"})
    assert statement == ("SELECT set_config('search_path', 'bc_payment, public', true),"
                         " set_config('application_name', 'it''s', true);")
