"""The country of an event, from a MaxMind-format GeoIP file read by `maxminddb`.

MaxMind's databases need an account to download, so the test writes a tiny database of its own in
the same binary format (MaxMind DB 2.0: a search tree of 24-bit records, a data section, metadata),
small enough to write here without a writer package; the real `maxminddb` reader opens it.
"""

from __future__ import annotations

import ipaddress
import struct
import time

import pytest
from django.test import RequestFactory

from onboarding.models import AnalyticsEvent
from onboarding.services.analytics import analytics_event_build, country_of

pytestmark = pytest.mark.django_db

METADATA_MARKER = b"\xab\xcd\xefMaxMind.com"


def _control(type_number: int, size: int) -> bytes:
    assert size < 29
    if type_number <= 7:
        return bytes([(type_number << 5) | size])
    return bytes([size, type_number - 7])  # extended type: 0 in the control byte, then type - 7


def _encode(value: object, *, unsigned: int = 6) -> bytes:
    if isinstance(value, str):
        raw = value.encode()
        return _control(2, len(raw)) + raw
    if isinstance(value, dict):
        return _control(7, len(value)) + b"".join(_encode(key) + _encode(item) for key, item in value.items())
    if isinstance(value, list):
        return _control(11, len(value)) + b"".join(_encode(item) for item in value)
    if isinstance(value, tuple):  # (type number, int): uint16 = 5, uint32 = 6, uint64 = 9
        type_number, number = value
        raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
        return _control(type_number, len(raw)) + raw
    raise TypeError(value)


def mmdb_bytes(countries: dict[str, str]) -> bytes:
    """An IPv4 country database: CIDR -> ISO code, the record GeoLite2-Country has (`country.iso_code`)."""
    data, root = b"", {}
    for cidr, code in countries.items():
        network = ipaddress.ip_network(cidr)
        offset, data = len(data), data + _encode({"country": {"iso_code": code}})
        bits = format(int(network.network_address), "032b")[:network.prefixlen]
        node = root
        for bit in bits[:-1]:
            node = node.setdefault(bit, {})
        node[bits[-1]] = offset
    nodes: list[dict] = []

    def number(node: dict) -> None:
        nodes.append(node)
        for bit in "01":
            if isinstance(node.get(bit), dict):
                number(node[bit])

    number(root)
    index = {id(node): position for position, node in enumerate(nodes)}
    count = len(nodes)

    def record(child: object) -> int:
        if child is None:
            return count  # no data
        if isinstance(child, dict):
            return index[id(child)]
        return count + 16 + child  # a pointer into the data section

    tree = b"".join(struct.pack(">I", record(node.get(bit)))[1:] for node in nodes for bit in "01")
    metadata = _encode({
        "node_count": (6, count), "record_size": (5, 24), "ip_version": (5, 4),
        "database_type": "Parley-Test-Country", "languages": ["en"],
        "binary_format_major_version": (5, 2), "binary_format_minor_version": (5, 0),
        "build_epoch": (9, int(time.time())), "description": {"en": "Test countries"},
    })
    return tree + b"\x00" * 16 + data + METADATA_MARKER + metadata


@pytest.fixture
def geoip(tmp_path, settings):
    path = tmp_path / "countries.mmdb"
    path.write_bytes(mmdb_bytes({"81.2.69.0/24": "GB", "89.160.20.0/24": "SE", "2.125.160.0/20": "GB"}))
    settings.PARLEY_ANALYTICS_GEOIP_PATH = str(path)
    return path


@pytest.mark.parametrize("ip, country", [
    ("81.2.69.160", "GB"),
    ("89.160.20.128", "SE"),
    ("2.125.175.1", "GB"),  # inside the /20
    ("2.125.176.1", ""),  # just past it
    ("10.0.0.1", ""),  # not in the file
    ("::1", ""),  # IPv6 against an IPv4-only file
    ("not-an-address", ""),
])
def test_the_country_comes_from_the_file(geoip, ip, country):
    assert country_of(ip) == country


def test_an_event_records_the_country_but_not_the_address(geoip):
    request = RequestFactory().get("/", REMOTE_ADDR="89.160.20.128", HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux)")

    event = analytics_event_build(name="pageview", source=AnalyticsEvent.Source.BROWSER, request=request, plan="")
    event.save()

    stored = AnalyticsEvent.objects.get(pk=event.pk)
    assert stored.country == "SE"
    assert "89.160" not in str([getattr(stored, field.attname) for field in AnalyticsEvent._meta.fields])


def test_no_file_or_an_unreadable_one_means_no_country(settings, tmp_path, caplog):
    settings.PARLEY_ANALYTICS_GEOIP_PATH = ""
    assert country_of("81.2.69.160") == ""

    broken = tmp_path / "broken.mmdb"
    broken.write_bytes(b"not a database")
    settings.PARLEY_ANALYTICS_GEOIP_PATH = str(broken)
    assert country_of("81.2.69.160") == ""
    assert "cannot open the GeoIP file" in caplog.text
