"""Synthetic card transactions, landed as raw JSON lines: the data faker behind every Tributary run.

Plain Python (no Spark). The same arguments give the same files, byte for byte. Run by hand::

    python -m spark_jobs.generate --profile local                       # 20000 rows, 14 days from 2026-11-01
    python -m spark_jobs.generate --rows 2000 --seed 7 --batch-id small  # -> landing_batch/small/part-00000.jsonl
    # -> landing_stream/stream-001-part-00000.jsonl ... part-00003.jsonl
    python -m spark_jobs.generate --target landing_stream --start 2026-11-15 --days 1 --rows 2000 \\
        --files 4 --batch-id stream-001

What it makes:

- **A world** that depends on ``--seed`` only, so card histories continue across batches: cards with a home
  country, city and location, and merchants with a category in every city.
- **Legitimate spending**: log-normal amounts by category, a day/night rhythm in the card's local time, POS/ATM
  at merchants near the card, online from the card's location, and some cards on a trip abroad.
- **Fraud** (``--fraud-rate`` of clean rows, default 2%), in three learnable patterns: ``card_testing`` (a burst of
  tiny online payments within minutes from a foreign location, sometimes followed by a large cash-out),
  ``account_takeover`` (large electronics/jewelry/travel purchases at the card's local night, far from home) and
  ``impossible_travel`` (a cloned card used on another continent within an hour or two of a purchase at home).
- **Dirty records** (``--dirty-fraction`` of all rows), every kind present in the default output:
  ``malformed_json``, ``invalid_type``, ``missing_field``, ``duplicate`` (exact re-sends of earlier lines),
  ``negative_amount`` and ``future_timestamp``.

Transactions depend on the seed, the batch id and the time window. Batch output goes to
``landing_batch/<batch-id>/part-NNNNN.jsonl``; stream output to ``landing_stream/<batch-id>-part-NNNNN.jsonl``
(flat, so a file stream source sees every file). Files are written atomically (hidden temp file, then rename).
``--target kafka`` publishes the lines instead, in order, one record each, to the profile's ``streaming.kafka``
topic through Spark's Kafka sink (the pinned spark-sql-kafka jar; the only target that starts Spark)::

    python -m spark_jobs.generate --profile local-kafka --target kafka --rows 2000 --batch-id stream-001
"""

from __future__ import annotations

import json
import math
import os
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence
from urllib.parse import urlparse

from spark_jobs.transforms.schema import BATCH_ID, RAW_FIELDS

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_ROWS = 20_000
DEFAULT_DAYS = 14
DEFAULT_START = date(2026, 11, 1)
DEFAULT_SEED = 42
DEFAULT_DIRTY_FRACTION = 0.02
DEFAULT_FRAUD_RATE = 0.02
ROWS_PER_CARD = 50  # default card count: rows // 50 (400 cards for the default 20000 rows)

DIRTY_KINDS: tuple[str, ...] = (
    "malformed_json",
    "invalid_type",
    "missing_field",
    "duplicate",
    "negative_amount",
    "future_timestamp",
)
FRAUD_PATTERNS: tuple[str, ...] = ("card_testing", "account_takeover", "impossible_travel")
_PATTERN_WEIGHTS = (0.15, 0.45, 0.40)  # share of incidents; card testing has the most rows per incident
TARGETS = ("landing_batch", "landing_stream")  # catalog datasets: files
KAFKA_TARGET = "kafka"  # the profile's streaming.kafka topic: one record per line


# --- the world -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class City:
    """A place transactions happen: name, country, coordinates and UTC offset (hours, November)."""

    name: str
    country: str
    lat: float
    lon: float
    utc_offset: int


_CITIES: tuple[City, ...] = (
    City("New York", "US", 40.7128, -74.0060, -5),
    City("Chicago", "US", 41.8781, -87.6298, -6),
    City("Los Angeles", "US", 34.0522, -118.2437, -8),
    City("Houston", "US", 29.7604, -95.3698, -6),
    City("London", "GB", 51.5074, -0.1278, 0),
    City("Manchester", "GB", 53.4808, -2.2426, 0),
    City("Berlin", "DE", 52.5200, 13.4050, 1),
    City("Munich", "DE", 48.1351, 11.5820, 1),
    City("Hamburg", "DE", 53.5511, 9.9937, 1),
    City("Paris", "FR", 48.8566, 2.3522, 1),
    City("Lyon", "FR", 45.7640, 4.8357, 1),
    City("Madrid", "ES", 40.4168, -3.7038, 1),
    City("Barcelona", "ES", 41.3874, 2.1686, 1),
    City("Rome", "IT", 41.9028, 12.4964, 1),
    City("Milan", "IT", 45.4642, 9.1900, 1),
    City("Amsterdam", "NL", 52.3676, 4.9041, 1),
    City("Rotterdam", "NL", 51.9244, 4.4777, 1),
    City("Toronto", "CA", 43.6532, -79.3832, -5),
    City("Vancouver", "CA", 49.2827, -123.1207, -8),
    City("Lisbon", "PT", 38.7223, -9.1393, 0),
    City("Athens", "GR", 37.9838, 23.7275, 2),
    City("Tokyo", "JP", 35.6762, 139.6503, 9),
    City("Sao Paulo", "BR", -23.5505, -46.6333, -3),
    City("Mexico City", "MX", 19.4326, -99.1332, -6),
    City("Bangkok", "TH", 13.7563, 100.5018, 7),
    City("Bucharest", "RO", 44.4268, 26.1025, 2),
    City("Johannesburg", "ZA", -26.2041, 28.0473, 2),
    City("Manila", "PH", 14.5995, 120.9842, 8),
    City("Istanbul", "TR", 41.0082, 28.9784, 3),
)
# Card-issuing countries: share of cards and billing currency (amounts are in the card's billing currency).
_HOME_COUNTRIES: dict[str, tuple[float, str]] = {
    "US": (0.30, "USD"),
    "GB": (0.15, "GBP"),
    "DE": (0.14, "EUR"),
    "FR": (0.12, "EUR"),
    "ES": (0.08, "EUR"),
    "IT": (0.08, "EUR"),
    "NL": (0.07, "EUR"),
    "CA": (0.06, "CAD"),
}
_TRIP_COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "PT", "GR", "JP", "MX")
_FRAUD_COUNTRIES = ("BR", "MX", "TH", "RO", "ZA", "PH", "TR")


@dataclass(frozen=True)
class Category:
    """Spending category: share of legitimate transactions, log-normal amount and channel mix."""

    weight: float
    mu: float
    sigma: float
    channels: tuple[tuple[str, float], ...]


CATEGORIES: dict[str, Category] = {
    "grocery": Category(0.24, 3.4, 0.6, (("pos", 0.95), ("online", 0.05))),
    "restaurant": Category(0.17, 3.1, 0.6, (("pos", 0.9), ("online", 0.1))),
    "fuel": Category(0.09, 3.8, 0.35, (("pos", 1.0),)),
    "pharmacy": Category(0.05, 3.0, 0.6, (("pos", 0.9), ("online", 0.1))),
    "clothing": Category(0.08, 4.1, 0.7, (("pos", 0.6), ("online", 0.4))),
    "electronics": Category(0.04, 5.2, 0.9, (("pos", 0.5), ("online", 0.5))),
    "travel": Category(0.02, 5.8, 0.8, (("pos", 0.2), ("online", 0.8))),
    "jewelry": Category(0.005, 5.5, 0.9, (("pos", 0.9), ("online", 0.1))),
    "digital_goods": Category(0.10, 2.4, 0.9, (("online", 1.0),)),
    "entertainment": Category(0.07, 3.3, 0.7, (("pos", 0.5), ("online", 0.5))),
    "cash_withdrawal": Category(0.06, 4.6, 0.6, (("atm", 1.0),)),
}
_CATEGORY_NAMES = tuple(CATEGORIES)
_CATEGORY_CUM = tuple(accumulate(c.weight for c in CATEGORIES.values()))
# Relative activity by local hour of day: quiet nights, lunch and evening peaks.
_HOUR_CUM = tuple(
    accumulate([0.5, 0.3, 0.2, 0.2, 0.2, 0.4, 1, 2, 3, 4, 4.5, 5, 6, 5, 4.5, 4.5, 5, 6, 6.5, 6, 5, 4, 2.5, 1.2])
)
_MERCHANTS_PER_CITY_CATEGORY = 3


@dataclass(frozen=True)
class Card:
    """A payment card: its id, home (country, city, location) and how much it is used."""

    card_id: str
    country: str
    currency: str
    city: City
    lat: float
    lon: float
    activity: float


@dataclass(frozen=True)
class Merchant:
    """A merchant: id, category and where it is."""

    merchant_id: str
    category: str
    city: City
    lat: float
    lon: float


@dataclass(frozen=True)
class World:
    """Cards and merchants; depends on the seed and the card count only."""

    cards: tuple[Card, ...]
    merchants: Mapping[tuple[str, str], tuple[Merchant, ...]]  # (city name, category) -> merchants
    by_country: Mapping[tuple[str, str], tuple[Merchant, ...]]  # (country, category) -> merchants

    def in_city(self, city: City, category: str) -> tuple[Merchant, ...]:
        return self.merchants[(city.name, category)]

    def in_country(self, country: str, category: str) -> tuple[Merchant, ...]:
        return self.by_country[(country, category)]


def _hex_id(rng: random.Random, prefix: str, bits: int, taken: set[str]) -> str:
    while True:
        ident = f"{prefix}{rng.getrandbits(bits):0{bits // 4}x}"
        if ident not in taken:
            taken.add(ident)
            return ident


def _jitter(rng: random.Random, value: float, spread: float) -> float:
    return round(value + rng.uniform(-spread, spread), 5)


def build_world(seed: int, n_cards: int) -> World:
    """Cards and merchants for ``seed``: the same seed gives the same cards, whatever the batch."""
    rng = random.Random(f"tributary:{seed}:world")
    taken: set[str] = set()
    merchants: dict[tuple[str, str], tuple[Merchant, ...]] = {}
    for city in _CITIES:
        for category in _CATEGORY_NAMES:
            merchants[(city.name, category)] = tuple(
                Merchant(_hex_id(rng, "m_", 32, taken), category, city, _jitter(rng, city.lat, 0.08),
                         _jitter(rng, city.lon, 0.08))
                for _ in range(_MERCHANTS_PER_CITY_CATEGORY)
            )
    homes = tuple(_HOME_COUNTRIES)
    home_cum = tuple(accumulate(w for w, _ in _HOME_COUNTRIES.values()))
    cards = []
    for _ in range(n_cards):
        country = rng.choices(homes, cum_weights=home_cum)[0]
        city = rng.choice([c for c in _CITIES if c.country == country])
        cards.append(
            Card(
                card_id=_hex_id(rng, "card_", 40, taken),
                country=country,
                currency=_HOME_COUNTRIES[country][1],
                city=city,
                lat=_jitter(rng, city.lat, 0.1),
                lon=_jitter(rng, city.lon, 0.1),
                activity=rng.lognormvariate(0.0, 0.6),
            )
        )
    by_country: dict[tuple[str, str], tuple[Merchant, ...]] = {}
    for (_, category), found in merchants.items():
        key = (found[0].city.country, category)
        by_country[key] = by_country.get(key, ()) + found
    return World(cards=tuple(cards), merchants=merchants, by_country=by_country)


# --- configuration and result ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class GeneratorConfig:
    """What to generate; every field has the default ``make run`` uses."""

    rows: int = DEFAULT_ROWS
    seed: int = DEFAULT_SEED
    start: date = DEFAULT_START
    days: int = DEFAULT_DAYS
    dirty_fraction: float = DEFAULT_DIRTY_FRACTION
    fraud_rate: float = DEFAULT_FRAUD_RATE
    cards: int | None = None
    batch_id: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.rows < 1:
            problems.append("rows must be >= 1")
        if self.days < 1:
            problems.append("days must be >= 1")
        if not 0.0 <= self.dirty_fraction < 1.0:
            problems.append("dirty_fraction must be in [0, 1)")
        if not 0.0 <= self.fraud_rate <= 0.5:
            problems.append("fraud_rate must be in [0, 0.5]")
        if self.cards is not None and self.cards < 1:
            problems.append("cards must be >= 1")
        if self.batch_id is not None and not BATCH_ID.match(self.batch_id):
            problems.append("batch_id must be letters, digits, '.', '_' or '-' (at most 100, no leading dot)")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def n_cards(self) -> int:
        return self.cards or max(20, self.rows // ROWS_PER_CARD)

    @property
    def resolved_batch_id(self) -> str:
        return self.batch_id or f"{self.start.isoformat()}-seed{self.seed}"

    @property
    def window(self) -> tuple[datetime, datetime]:
        begin = datetime(self.start.year, self.start.month, self.start.day, tzinfo=timezone.utc)
        return begin, begin + timedelta(days=self.days)


@dataclass(frozen=True)
class LandedLine:
    """One generated line and what it is: ``kind`` is ``clean`` or a dirty kind; ``pattern`` is ``legit``,
    a fraud pattern, or empty for dirty lines."""

    line: str
    kind: str
    pattern: str


@dataclass(frozen=True)
class Batch:
    """A generated batch, in landing order."""

    config: GeneratorConfig
    landed: tuple[LandedLine, ...]
    records: tuple[dict, ...] = field(repr=False)  # the clean records, in landing order

    @property
    def lines(self) -> list[str]:
        return [entry.line for entry in self.landed]

    def counts(self) -> dict:
        """Rows by kind and fraud pattern, as ``generate`` reports them."""
        kinds = Counter(entry.kind for entry in self.landed)
        patterns = Counter(entry.pattern for entry in self.landed if entry.kind == "clean")
        fraud = sum(n for p, n in patterns.items() if p != "legit")
        clean = kinds["clean"]
        return {
            "rows": len(self.landed),
            "rows_clean": clean,
            "rows_fraud": fraud,
            "fraud_rate": round(fraud / clean, 4) if clean else 0.0,
            "dirty": {kind: kinds[kind] for kind in DIRTY_KINDS},
            "fraud_patterns": {p: patterns[p] for p in FRAUD_PATTERNS},
        }


# --- transactions ----------------------------------------------------------------------------------------------


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


class _Maker:
    """Draws transactions for one batch from one seeded random stream."""

    def __init__(self, config: GeneratorConfig, world: World) -> None:
        self.config = config
        self.world = world
        self.rng = random.Random(
            f"tributary:{config.seed}:{config.resolved_batch_id}:{config.start.isoformat()}:{config.days}:tx"
        )
        self.begin, self.end = config.window
        self.taken: set[str] = set()
        self.card_cum = tuple(accumulate(c.activity for c in world.cards))
        self.trips = self._trips()

    def _trips(self) -> dict[str, tuple[City, datetime, datetime]]:
        """About one card in eight spends a few days abroad during the window."""
        trips = {}
        for card in self.world.cards:
            if self.rng.random() < 0.12:
                country = self.rng.choice([c for c in _TRIP_COUNTRIES if c != card.country])
                city = self.rng.choice([c for c in _CITIES if c.country == country])
                start = self.begin + timedelta(hours=self.rng.uniform(0, self.config.days * 24))
                trips[card.card_id] = (city, start, start + timedelta(days=self.rng.uniform(2, 6)))
        return trips

    def record(
        self, card: Card, merchant: Merchant, amount: float, when: datetime, place: City, lat: float, lon: float,
        channel: str, fraud: bool,
    ) -> dict:
        values = {
            "transaction_id": _hex_id(self.rng, "tx_", 80, self.taken),
            "card_id": card.card_id,
            "merchant_id": merchant.merchant_id,
            "merchant_category": merchant.category,
            "amount": round(max(amount, 0.01), 2),
            "currency": card.currency,
            "event_time": _iso(when),
            "country": place.country,
            "lat": round(lat, 5),
            "lon": round(lon, 5),
            "channel": channel,
            "is_fraud": int(fraud),
        }
        return {name: values[name] for name in RAW_FIELDS}

    def amount(self, category: str, shift: float = 0.0, sigma_scale: float = 1.0) -> float:
        cat = CATEGORIES[category]
        value = self.rng.lognormvariate(cat.mu + shift, cat.sigma * sigma_scale)
        if category == "cash_withdrawal":
            return float(max(20, round(value / 20) * 20))
        return max(value, 0.5)

    def local_time(self, offset: int, hour: int | None = None, day: int | None = None) -> datetime:
        """A UTC moment in the window at local ``hour`` (drawn from the daily rhythm when None)."""
        rng = self.rng
        day = rng.randrange(self.config.days) if day is None else day
        hour = rng.choices(range(24), cum_weights=_HOUR_CUM)[0] if hour is None else hour
        local = self.begin + timedelta(days=day, hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))
        moment = local - timedelta(hours=offset)
        if moment >= self.end:
            moment -= timedelta(days=1)
        if moment < self.begin:
            moment += timedelta(days=1)
        return moment

    def where(self, card: Card, moment: datetime) -> tuple[City, float, float]:
        """Where the card's holder is at ``moment``: on a trip, or at home."""
        trip = self.trips.get(card.card_id)
        if trip and trip[1] <= moment < trip[2]:
            city = trip[0]
            return city, city.lat, city.lon
        return card.city, card.lat, card.lon

    def legit(self, card: Card, category: str | None = None, moment: datetime | None = None) -> dict:
        rng = self.rng
        category = category or rng.choices(_CATEGORY_NAMES, cum_weights=_CATEGORY_CUM)[0]
        channels, weights = zip(*CATEGORIES[category].channels)
        channel = rng.choices(channels, weights=weights)[0]
        moment = moment or self.local_time(card.city.utc_offset)
        city, lat, lon = self.where(card, moment)
        if channel == "online":
            domestic = rng.random() < 0.85
            merchant = rng.choice(self.world.in_country(card.country if domestic else rng.choice(_TRIP_COUNTRIES),
                                                        category))
            lat, lon = _jitter(rng, lat, 0.05), _jitter(rng, lon, 0.05)  # the device's location
        else:
            merchant = rng.choice(self.world.in_city(city, category))
            lat, lon = _jitter(rng, merchant.lat, 0.002), _jitter(rng, merchant.lon, 0.002)
        return self.record(card, merchant, self.amount(category), moment, city, lat, lon, channel, False)

    def incident_start(self, hours_needed: float = 4.0) -> datetime:
        span = max(self.config.days * 24 - hours_needed, 1.0)
        return self.begin + timedelta(seconds=int(self.rng.uniform(0, span) * 3600))

    def fraud_city(self, exclude_country: str) -> City:
        country = self.rng.choice([c for c in _FRAUD_COUNTRIES if c != exclude_country])
        return self.rng.choice([c for c in _CITIES if c.country == country])

    def card_testing(self, card: Card) -> list[dict]:
        """A burst of tiny online payments within minutes, sometimes followed by a large cash-out."""
        rng = self.rng
        city = self.fraud_city(card.country)
        merchants = self.world.in_country(city.country, "digital_goods")
        moment = self.incident_start()
        rows = []
        for _ in range(rng.randint(6, 16)):
            moment += timedelta(seconds=rng.randint(5, 60))
            amount = 1.0 if rng.random() < 0.3 else rng.uniform(0.5, 5.0)
            rows.append(self.record(card, rng.choice(merchants), amount, moment, city, _jitter(rng, city.lat, 0.02),
                                    _jitter(rng, city.lon, 0.02), "online", True))
        if rng.random() < 0.5:
            for _ in range(rng.randint(1, 2)):
                moment += timedelta(minutes=rng.uniform(5, 60))
                merchant = rng.choice(self.world.in_country(city.country, "electronics"))
                rows.append(self.record(card, merchant, self.amount("electronics", 1.1, 0.5), moment, city,
                                        _jitter(rng, city.lat, 0.02), _jitter(rng, city.lon, 0.02), "online", True))
        return rows

    def account_takeover(self, card: Card) -> list[dict]:
        """Large electronics/jewelry/travel purchases at the card's local night, far from home."""
        rng = self.rng
        if rng.random() < 0.8:
            city = self.fraud_city(card.country)
        else:
            city = max((c for c in _CITIES if c.country == card.country),
                       key=lambda c: _distance_km(card.lat, card.lon, c.lat, c.lon))
        moment = self.local_time(card.city.utc_offset, hour=rng.randint(0, 4),
                                 day=rng.randrange(max(self.config.days - 1, 1)))
        rows = []
        for _ in range(rng.randint(2, 6)):
            moment += timedelta(minutes=rng.uniform(3, 40))
            category = rng.choice(("electronics", "electronics", "jewelry", "travel"))
            channel = "online" if rng.random() < 0.75 else "pos"
            merchant = rng.choice(self.world.in_city(city, category))
            rows.append(self.record(card, merchant, self.amount(category, 1.2, 0.5), moment, city,
                                    _jitter(rng, city.lat, 0.03), _jitter(rng, city.lon, 0.03), channel, True))
        return rows

    def impossible_travel(self, card: Card) -> list[dict]:
        """A genuine purchase at home, then a cloned card used thousands of km away shortly after."""
        rng = self.rng
        moment = self.local_time(card.city.utc_offset, hour=rng.randint(9, 19),
                                 day=rng.randrange(max(self.config.days - 1, 1)))
        anchor = self.legit(card, rng.choice(("grocery", "restaurant", "fuel")), moment)
        far = [c for c in _CITIES if _distance_km(anchor["lat"], anchor["lon"], c.lat, c.lon) > 3000]
        city = rng.choice(far)
        rows = [anchor]
        moment += timedelta(minutes=rng.uniform(10, 120))
        for _ in range(rng.randint(1, 3)):
            category = rng.choice(("electronics", "jewelry", "cash_withdrawal"))
            channel = "atm" if category == "cash_withdrawal" else "pos"
            merchant = rng.choice(self.world.in_city(city, category))
            rows.append(self.record(card, merchant, self.amount(category, 0.6, 0.7), moment, city,
                                    _jitter(rng, merchant.lat, 0.002), _jitter(rng, merchant.lon, 0.002), channel,
                                    True))
            moment += timedelta(minutes=rng.uniform(5, 30))
        return rows

    def clean_records(self, n_clean: int) -> list[tuple[dict, str]]:
        """``n_clean`` valid records with their pattern, sorted by event time."""
        rng, cards = self.rng, self.world.cards
        target_fraud = round(n_clean * self.config.fraud_rate)
        labelled: list[tuple[dict, str]] = []
        fraud = incidents = 0
        makers = {p: getattr(self, p) for p in FRAUD_PATTERNS}
        while fraud < target_fraud:
            # the first incidents cycle through the patterns, so every pattern shows up in any sizeable batch
            if incidents < len(FRAUD_PATTERNS):
                pattern = FRAUD_PATTERNS[incidents]
            else:
                pattern = rng.choices(FRAUD_PATTERNS, weights=_PATTERN_WEIGHTS)[0]
            incidents += 1
            rows = makers[pattern](rng.choice(cards))
            if len(labelled) + len(rows) > n_clean:
                break
            labelled.extend((row, pattern if row["is_fraud"] else "legit") for row in rows)
            fraud += sum(row["is_fraud"] for row in rows)
        for card in rng.choices(cards, cum_weights=self.card_cum, k=n_clean - len(labelled)):
            labelled.append((self.legit(card), "legit"))
        labelled.sort(key=lambda item: (item[0]["event_time"], item[0]["transaction_id"]))
        return labelled

    def dirty(self, kind: str, base: dict) -> str:
        """A dirty line of ``kind`` made from a clean record (with a fresh id, except duplicates)."""
        rng = self.rng
        if kind == "duplicate":
            return _dumps(base)
        record = dict(base, transaction_id=_hex_id(rng, "tx_", 80, self.taken))
        if kind == "malformed_json":
            text = _dumps(record)
            style = rng.random()
            if style < 0.6:
                return text[: rng.randint(10, len(text) - 2)]  # truncated in transit
            if style < 0.8:
                return "[" + text + "]"  # an array, not an object
            return re.sub(r'"(\w+)":', r"\1:", text)  # unquoted keys
        if kind == "invalid_type":
            name, bad = rng.choice(
                [("amount", "abc"), ("amount", "N/A"), ("amount", "12,50 EUR"), ("event_time", "yesterday"),
                 ("lat", "north"), ("is_fraud", "unknown")]
            )
            record[name] = bad
        elif kind == "missing_field":
            name = rng.choice(("card_id", "amount", "event_time", "merchant_id", "transaction_id", "channel"))
            if rng.random() < 0.5:
                record[name] = None
            else:
                del record[name]
        elif kind == "negative_amount":
            record["amount"] = -abs(record["amount"])
        elif kind == "future_timestamp":  # a device clock decades ahead
            moment = datetime.strptime(record["event_time"], "%Y-%m-%dT%H:%M:%SZ")
            record["event_time"] = _iso(moment + timedelta(days=rng.randint(60 * 365, 80 * 365)))
        else:
            raise ValueError(f"unknown dirty kind {kind!r}")
        return _dumps(record)


def _dumps(record: Mapping[str, object]) -> str:
    return json.dumps(record, separators=(",", ":"))


def dirty_counts(n_dirty: int) -> dict[str, int]:
    """How many rows of each dirty kind make up ``n_dirty``: as even as possible, in ``DIRTY_KINDS`` order."""
    base, extra = divmod(n_dirty, len(DIRTY_KINDS))
    return {kind: base + (1 if i < extra else 0) for i, kind in enumerate(DIRTY_KINDS)}


def generate(config: GeneratorConfig = GeneratorConfig()) -> Batch:
    """Generate one batch: clean records (legit and fraud) in time order with dirty lines mixed in.

    Deterministic: the same ``config`` returns the same lines.
    """
    world = build_world(config.seed, config.n_cards)
    maker = _Maker(config, world)
    n_dirty = round(config.rows * config.dirty_fraction)
    clean = maker.clean_records(config.rows - n_dirty)
    entries: list[tuple[float, int, LandedLine]] = [
        (float(i), 0, LandedLine(_dumps(record), "clean", pattern)) for i, (record, pattern) in enumerate(clean)
    ]
    rng = maker.rng
    seq = 1
    for kind, count in dirty_counts(n_dirty).items():
        for _ in range(count):
            if not clean:
                break
            j = rng.randrange(len(clean))
            # a re-send lands after the original, within the next few hundred lines; others sit next to their base
            position = j + (rng.uniform(1, 200) if kind == "duplicate" else rng.random())
            entries.append((position, seq, LandedLine(maker.dirty(kind, clean[j][0]), kind, "")))
            seq += 1
    entries.sort(key=lambda e: (e[0], e[1]))
    return Batch(config=config, landed=tuple(e[2] for e in entries), records=tuple(r for r, _ in clean))


# --- landing ---------------------------------------------------------------------------------------------------


def split_files(lines: Sequence[str], n_files: int, prefix: str = "") -> dict[str, list[str]]:
    """Split ``lines`` into ``n_files`` contiguous parts named ``<prefix>part-NNNNN.jsonl`` (time order kept)."""
    if n_files < 1:
        raise ValueError("n_files must be >= 1")
    size, extra = divmod(len(lines), n_files)
    parts, at = {}, 0
    for i in range(n_files):
        take = size + (1 if i < extra else 0)
        parts[f"{prefix}part-{i:05d}.jsonl"] = list(lines[at : at + take])
        at += take
    return parts


def local_dir(uri: str) -> Path:
    """The local directory behind a landing URI (a plain path or ``file:``); other schemes are refused."""
    parsed = urlparse(uri)
    if parsed.scheme in ("", "file"):
        return Path(parsed.path if parsed.scheme else uri)
    raise ValueError(
        f"the generator writes to local file systems only, not {parsed.scheme}:// ({uri}); "
        "generate locally and copy the files to the landing zone"
    )


def write_jsonl(directory: str, files: Mapping[str, Sequence[str]], replace_glob: str | None = None) -> list[str]:
    """Write each ``name -> lines`` as a JSON-lines file under ``directory``; return the written paths.

    Each file is written to a hidden temp name and renamed, so readers (a file stream source) never see half a
    file. ``replace_glob`` removes earlier files matching it that this write does not produce, so regenerating a
    batch with fewer files leaves no stale parts.
    """
    target = local_dir(directory)
    target.mkdir(parents=True, exist_ok=True)
    if replace_glob:
        for stale in sorted(target.glob(replace_glob)):
            if stale.name not in files:
                stale.unlink()
    written = []
    for name, lines in files.items():
        tmp = target / f".{name}.tmp"
        tmp.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        os.replace(tmp, target / name)
        written.append(str(target / name))
    return written


def landing_location(landing_uri: str, target: str, batch_id: str) -> tuple[str, str]:
    """(directory, file-name prefix) for a batch: a sub-folder for ``landing_batch``, flat for ``landing_stream``."""
    if target == "landing_stream":
        return landing_uri, f"{batch_id}-"
    return f"{landing_uri.rstrip('/')}/{batch_id}", ""


def publish_kafka(spark: "SparkSession", kafka: Mapping[str, object], records: Sequence[str | bytes]) -> int:
    """Publish ``records`` (value only, text as UTF-8, bytes as they are) to ``kafka['topic']``, in order, with
    Spark's Kafka sink (one producer: acks=all and idempotence, Kafka's defaults), authenticated as the stream is
    (``config.kafka_client_options``). Returns how many were sent."""
    from tributary.config import kafka_client_options

    values = [(r.encode("utf-8") if isinstance(r, str) else bytes(r),) for r in records]
    frame = spark.createDataFrame(values, "value binary").coalesce(1)
    frame.write.format("kafka").options(**kafka_client_options(kafka)).option("topic", str(kafka["topic"])).save()
    return len(values)


def _parser():
    from spark_jobs.cli import job_parser

    parser = job_parser(__doc__)
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS, help="records to land, dirty ones included")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--start", type=date.fromisoformat, default=DEFAULT_START, help="first day (ISO date)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS)
    parser.add_argument("--dirty-fraction", type=float, default=DEFAULT_DIRTY_FRACTION)
    parser.add_argument("--fraud-rate", type=float, default=DEFAULT_FRAUD_RATE, help="fraud share of clean rows")
    parser.add_argument("--cards", type=int, default=None, help=f"default: rows // {ROWS_PER_CARD}, at least 20")
    parser.add_argument("--batch-id", default=None, help="default: <start>-seed<seed>")
    parser.add_argument("--target", choices=(*TARGETS, KAFKA_TARGET), default="landing_batch")
    parser.add_argument("--files", type=int, default=1, help="number of part files (>= 1)")
    return parser


def main(argv: Sequence[str] | None = None) -> dict:
    """Generate a batch and land it where the profile's catalog puts ``--target``."""
    from spark_jobs.cli import emit_result, parse_job_args

    parser = _parser()
    args, profile = parse_job_args(parser, argv)
    try:
        config = GeneratorConfig(rows=args.rows, seed=args.seed, start=args.start, days=args.days,
                                 dirty_fraction=args.dirty_fraction, fraud_rate=args.fraud_rate, cards=args.cards,
                                 batch_id=args.batch_id or None)
        if args.files < 1:
            raise ValueError("files must be >= 1")
    except ValueError as exc:
        parser.error(str(exc))
    kafka = profile.streaming.get("kafka")
    if args.target == KAFKA_TARGET and not isinstance(kafka, dict):
        parser.error(f"--target kafka needs the profile's streaming.kafka (bootstrap_servers, topic); profile "
                     f"'{profile.name}' has none: use --profile local-kafka, or add it")
    batch = generate(config)
    if args.target == KAFKA_TARGET:
        from spark_jobs.session import build_session

        published = publish_kafka(build_session(profile, "tributary-generate"), kafka, batch.lines)
        where = {"topic": kafka["topic"], "published": published}
    else:
        directory, prefix = landing_location(profile.catalog.uri(args.target), args.target, config.resolved_batch_id)
        where = {"files": write_jsonl(directory, split_files(batch.lines, args.files, prefix),
                                      replace_glob=f"{prefix}part-*.jsonl")}
    result = {"batch_id": config.resolved_batch_id, "target": args.target, "seed": config.seed,
              "start": config.start.isoformat(), "days": config.days, **batch.counts(), **where}
    emit_result("generate", result)
    return result


if __name__ == "__main__":
    main()
