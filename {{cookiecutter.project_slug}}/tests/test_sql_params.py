"""asyncpg takes $n parameters; database/connection.py turns the %(name)s SQL the app writes into them."""

import pytest

from database.connection import _bind


def test_named_parameters_become_numbered_and_a_repeated_name_reuses_its_number() -> None:
    assert _bind("SELECT %(a)s, %(b)s, %(a)s", {"a": 1, "b": 2, "unused": 3}) == ("SELECT $1, $2, $1", [1, 2])


def test_quoted_text_and_comments_are_left_as_written() -> None:
    quoted = "'%(o)s', 'it''s %(o)s', E'\\'%(o)s', \"%(o)s\", $$%(o)s$$, $t$ %(o)s $t$ -- %(o)s\n/* %(o)s */"
    assert _bind(f"SELECT {quoted}, %(x)s", {"x": 1}) == (f"SELECT {quoted}, $1", [1])


def test_a_doubled_percent_is_a_percent_sign_when_there_are_parameters() -> None:
    assert _bind("SELECT 7 %% 3, %(a)s", {"a": 1}) == ("SELECT 7 % 3, $1", [1])


def test_without_parameters_the_sql_is_sent_as_written() -> None:
    assert _bind("SELECT 7 %% 3, '%(o)s'", None) == ("SELECT 7 %% 3, '%(o)s'", [])


def test_a_missing_parameter_is_named() -> None:
    with pytest.raises(ValueError, match="missing from params: title"):
        _bind("INSERT INTO items (owner, title) VALUES (%(owner)s, %(title)s)", {"owner": "a"})


def test_a_stray_percent_is_refused_with_a_hint() -> None:
    with pytest.raises(ValueError, match="stray %.*write %%"):
        _bind("SELECT 7 % 3, %(a)s", {"a": 1})
