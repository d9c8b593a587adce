"""Identifier checks, ROC dates, the log filter and field encryption."""

import datetime
import json
import logging
import sys

import pytest
from cryptography.fernet import Fernet

from app.lib import fieldcrypt
from app.lib.identifiers import is_business_number, is_national_id, is_person_id, is_resident_id, mask_id
from app.lib.logging import JsonFormatter, PersonalDataFilter, install_log_format
from app.lib.rocdate import format_roc, format_roc_datetime, parse_roc


@pytest.mark.parametrize("value", ["A123456789", "F131104093"])
def test_valid_national_ids_pass(value):
    assert is_national_id(value) and is_person_id(value)


@pytest.mark.parametrize("value", ["A123456788", "a123456789", "A323456789", "A12345678", "", None, "1234567890"])
def test_malformed_or_wrong_checksum_national_ids_fail(value):
    assert not is_national_id(value)


def test_resident_certificates_new_and_old_format():
    assert is_resident_id("A800000014")
    assert is_resident_id("AA00000009")
    assert not is_resident_id("A800000015")
    assert not is_resident_id("AA00000008")


@pytest.mark.parametrize("value,ok", [("04595257", True), ("10458575", True), ("04595258", False), ("1234567", False)])
def test_business_numbers(value, ok):
    assert is_business_number(value) is ok


def test_business_number_with_seven_in_the_seventh_place_accepts_either_sum():
    # Weighted digit sums: 1+0+... with the 7th digit 7 -> sum or sum+1 must divide by 5.
    candidates = [f"{n:08d}" for n in range(10000070, 10000080)] + [f"{n:08d}" for n in range(20000070, 20000080)]
    sevens = [c for c in candidates if c[6] == "7" and is_business_number(c)]
    assert sevens, "some numbers with 7 in the 7th place must pass through the +1 rule"


def test_masking_keeps_the_last_four_characters():
    assert mask_id("A123456789") == "******6789"


def test_roc_dates_in_the_forms_clerks_read():
    d = datetime.date(2026, 11, 26)
    assert format_roc(d) == "115/11/26"
    assert format_roc(d, "long") == "民國115年11月26日"
    assert format_roc(d, "compact") == "1151126"
    assert parse_roc("115/11/26") == d
    assert parse_roc("民國115年11月26日") == d
    assert parse_roc("1151126") == d
    assert parse_roc("99/01/05") == datetime.date(2010, 1, 5)


def test_roc_datetimes_show_taipei_time():
    utc = datetime.datetime(2026, 11, 26, 17, 30, 0)  # stored naive UTC
    assert format_roc_datetime(utc) == "115/11/27 01:30:00"


@pytest.mark.parametrize("bad", ["115/13/01", "115/02/30", "abc", "", "0/01/01"])
def test_impossible_roc_dates_are_refused(bad):
    with pytest.raises(ValueError):
        parse_roc(bad)


def test_log_lines_lose_id_numbers_emails_and_sql_parameters():
    record = logging.LogRecord(
        "x",
        logging.INFO,
        __file__,
        1,
        "lookup %s for %s [parameters: ('A123456789',)]",
        ("A123456789", "wang@example.tw"),
        None,
    )
    PersonalDataFilter().filter(record)
    text = record.getMessage()
    assert "A123456789" not in text and "wang@example.tw" not in text
    assert "[ID]" in text and "[EMAIL]" in text


def test_field_encryption_rotates_keys():
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    fieldcrypt.configure(old)
    try:
        token = fieldcrypt.encrypt("秘密")
        fieldcrypt.configure(f"{new},{old}")
        assert fieldcrypt.decrypt(token) == "秘密"
        rotated = fieldcrypt.rotate(token)
        fieldcrypt.configure(new)
        assert fieldcrypt.decrypt(rotated) == "秘密"
        with pytest.raises(ValueError):
            fieldcrypt.decrypt(token)
    finally:
        from config import Config

        fieldcrypt.configure(Config.FIELD_ENCRYPTION_KEYS)


def test_verification_codes_carry_80_random_bits_and_their_check_character_catches_typos():
    from app.lib import verifycode

    codes = [verifycode.new_code() for _ in range(2000)]
    assert len(set(codes)) == len(codes)
    assert all(verifycode.normalise(c) == c for c in codes)
    bodies = [c.replace("-", "")[:16] for c in codes]
    # Every position takes every one of the 32 symbols (all 80 bits are used).
    for position in range(16):
        assert {b[position] for b in bodies} == set(verifycode.ALPHABET)
    # Read aloud: O for 0, I or L for 1; typed in lower case with spaces.
    code = codes[0]
    assert verifycode.normalise(code.lower().replace("-", " ")) == code
    typo = code[:2] + ("0" if code[2] != "0" else "1") + code[3:]
    assert verifycode.normalise(typo) is None


def test_a_kept_answer_holds_for_its_time_none_is_asked_again_and_forgetting_reads_anew():
    from app.lib.ttlcache import TTLCache

    clock, asked = [100.0], []

    def answer(value):
        def compute():
            asked.append(value)
            return value

        return compute

    cache = TTLCache(max_entries=3, clock=lambda: clock[0])
    assert cache.get("a", 5, answer(1)) == 1
    clock[0] += 4.9
    assert cache.get("a", 5, answer(2)) == 1  # still fresh
    clock[0] += 0.1
    assert cache.get("a", 5, answer(3)) == 3  # five seconds old: asked again
    assert cache.get("a", 0, answer(4)) == 4  # no time to keep: always asked
    assert cache.get("gone", 5, answer(None)) is None
    assert cache.get("gone", 5, answer(5)) == 5  # "not found" was not kept
    cache.forget("a", "never-there")
    assert cache.get("a", 5, answer(6)) == 6
    cache.clear()
    assert cache.get("gone", 5, answer(7)) == 7
    for key in ("x", "y", "z"):  # full at three: emptied, not grown
        cache.get(key, 5, answer(key))
    assert cache.get("gone", 5, answer(8)) == 8
    assert asked == [1, 3, 4, None, 5, 6, 7, "x", "y", "z", 8]


def test_many_threads_share_one_cache_and_each_gets_a_fresh_answer():
    import threading

    from app.lib.ttlcache import TTLCache

    cache, failures = TTLCache(max_entries=50), []
    start = threading.Barrier(8)

    def work(n):
        start.wait()
        for i in range(2000):
            key = (n + i) % 80
            value = cache.get(key, 60, lambda key=key: ("v", key))
            if value != ("v", key):
                failures.append((key, value))
            if i % 7 == 0:
                cache.forget(key)
            if i % 500 == 0:
                cache.clear()

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_json_log_lines_mask_personal_data_and_name_only_the_exception_type():
    try:
        raise ValueError("row A123456789 someone@example.org")
    except ValueError:
        record = logging.LogRecord("app.x", logging.ERROR, __file__, 1, "lookup of %s failed", ("A123456789",), None)
        record.exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "lookup of [ID] failed" and entry["error"] == "ValueError"
    assert entry["level"] == "ERROR" and entry["logger"] == "app.x" and entry["time"].endswith("+00:00")
    assert "A123456789" not in json.dumps(entry) and "someone" not in json.dumps(entry)
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        install_log_format("xml")
