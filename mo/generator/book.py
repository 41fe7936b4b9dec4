"""How one customer's book comes to be: the person, their policies over the years, claims, recordings, consents.

Every entity is simulated as a timeline (quote, acceptance, payment, renewal, claim transitions, recording
review, QC) and then cut at the world's *horizon*: what happened before it is written, with the state it had
at that instant; what would happen later is left for the daily simulation. The same code builds the initial
world (horizon = the first simulated day at 00:00) and each new day's new business (horizon = the end of that
day), so new rows of a day carry timestamps inside that day by construction.

Each customer draws from a random stream seeded by (seed, customer id) only, so a customer's book does not
depend on the batch size or on the customers before it; ids of child rows come from counters in customer
order, so they are deterministic too.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
from bisect import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import TypeVar

from mo import pricing
from mo.generator import reference as ref

Item = TypeVar("Item")

KIND_CUSTOMER = 1
KIND_AGENT = 2
KIND_DAY = 3
KIND_EXTRA = 4

ANNUAL_RENEWAL = {"auto": 0.7, "property": 0.5, "accident": 0.45, "health": 0.6, "life": 0.5}
HOLDINGS_CUM = [0.62, 0.9, 0.98, 1.0]  # 1..4 product lines per customer
RECENT_QUOTE_SHARE = 0.07
COMPLAINT_SHARE = 0.035
AGENT_CHANNELS = frozenset({"agent", "bancassurance", "telesales"})
CONSENT_SOURCE = {"agent": "agent", "bancassurance": "agent", "telesales": "call_center", "app": "app",
                  "wechat": "wechat", "web": "web"}  # fmt: skip
ONE_DAY = timedelta(days=1)
ORG_BASE = 1 + len(ref.PROVINCES)  # head office, then one branch per province, then one sub-branch per city
BRANCH_ID = {name: 2 + i for i, (name, _, _, _) in enumerate(ref.PROVINCES)}
CITY_INDEX = {(c.province, c.name): i for i, c in enumerate(ref.CITIES)}


def stream(seed: int, kind: int, key: int) -> random.Random:
    """An independent random stream for one entity: same (seed, kind, key), same draws, on any machine."""
    return random.Random(((seed % (1 << 61)) * 16 + kind) * (1 << 44) + key)


def choose(rng: random.Random, weighted: Sequence[tuple[Item, float]]) -> Item:
    """One item of [(item, weight), ...], drawn with a single random number."""
    pick = rng.random() * sum(w for _, w in weighted)
    for item, w in weighted:
        pick -= w
        if pick < 0:
            return item
    return weighted[-1][0]


def add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    day = min(d.day, 28 if month == 2 else 30 if month in (4, 6, 9, 11) else 31)
    if month == 2 and day == 28 and d.day > 28 and (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)):
        day = 29
    return date(year, month, day)


def midnight(d: date) -> datetime:
    return datetime.combine(d, time())


def office_time(rng: random.Random, d: date) -> datetime:
    """A moment in office hours (08:30-20:30), when people buy insurance and staff process files."""
    return midnight(d) + timedelta(seconds=30_600 + rng.random() * 43_200)


def money(x: float) -> float:
    return round(x, 2)


@dataclass(slots=True)
class Customer:
    id: int
    city: int  # index into reference.CITIES
    birth_date: date
    gender: str
    channel: str
    created_at: datetime
    has_app: bool
    has_wechat: bool
    policies: list[tuple[int, str]] = field(default_factory=list)  # (policy id, line) of issued policies
    claims: int = 0


@dataclass
class Batch:
    """Rows of one batch, per table, in insertion (foreign-key) order."""

    customers: list[tuple] = field(default_factory=list)
    policies: list[tuple] = field(default_factory=list)
    claims: list[tuple] = field(default_factory=list)
    sales_recordings: list[tuple] = field(default_factory=list)
    consents: list[tuple] = field(default_factory=list)
    complaints: list[tuple] = field(default_factory=list)

    TABLES = ("customers", "policies", "claims", "sales_recordings", "consents", "complaints")

    def counts(self) -> dict[str, int]:
        return {t: len(getattr(self, t)) for t in self.TABLES}


class Layout:
    """Organisations and the agent force, derived from the world size alone (memory: one entry per city)."""

    def __init__(self, customers: int) -> None:
        cities = ref.CITIES
        self.agent_total = max(3 * len(cities), customers // 150)
        weights = [b - a for a, b in zip([0.0, *ref.CITY_CUM_WEIGHTS[:-1]], ref.CITY_CUM_WEIGHTS, strict=True)]
        spare = self.agent_total - 2 * len(cities)
        shares = [spare * w / sum(weights) for w in weights]
        counts = [2 + int(s) for s in shares]
        # Largest remainder, so the force adds up exactly whatever the world size.
        for i in sorted(range(len(cities)), key=lambda k: (int(shares[k]) - shares[k], k))[
            : self.agent_total - sum(counts)
        ]:
            counts[i] += 1
        self.agent_count = counts
        self.agent_first = []
        nxt = 1
        for c in counts:
            self.agent_first.append(nxt)
            nxt += c

    @staticmethod
    def city_org_id(city: int) -> int:
        return ORG_BASE + 1 + city

    def agent_city(self, agent_id: int) -> int:
        return bisect(self.agent_first, agent_id) - 1

    def pick_agent(self, rng: random.Random, city: int) -> int:
        return self.agent_first[city] + int(rng.random() * self.agent_count[city])


class BookMaker:
    """Builds customers and everything hanging off them, cut at ``horizon``, appending rows to a Batch."""

    def __init__(self, *, seed: int, horizon: datetime, layout: Layout, ids: dict[str, int]) -> None:
        self.seed = seed
        self.horizon = horizon
        self.horizon_date = horizon.date()
        self.layout = layout
        self.ids = ids
        self.batch = Batch()

    def take(self, table: str) -> int:
        value = self.ids[table]
        self.ids[table] = value + 1
        return value

    # --- the person ------------------------------------------------------------------------------------

    def new_customer(self, rng: random.Random, cid: int, created_at: datetime) -> Customer:
        r = rng.random
        gender = "M" if r() < 0.49 else "F"
        age = _draw_age(rng)
        birth = self.horizon_date - timedelta(days=int(age * 365.25 + r() * 365))
        city_idx = bisect(ref.CITY_CUM_WEIGHTS, r() * ref.CITY_CUM_WEIGHTS[-1])
        city = ref.CITIES[city_idx]
        # A quarter of city dwellers were born (and registered their ID) elsewhere.
        home = ref.CITIES[bisect(ref.CITY_CUM_WEIGHTS, r() * ref.CITY_CUM_WEIGHTS[-1])] if r() < 0.25 else city
        region6 = f"{home.code}{2 + int(r() * 10):02d}"
        id_number = ref.make_id_number(region6, birth, int(r() * 500), gender)
        name = _chinese_name(rng, gender, birth.year)
        phone = ref.PHONE_PREFIXES[int(r() * len(ref.PHONE_PREFIXES))] + f"{int(r() * 100_000_000):08d}"
        channel = ref.CUSTOMER_CHANNELS[bisect(ref.CUSTOMER_CHANNEL_CUM, r() * ref.CUSTOMER_CHANNEL_CUM[-1])]
        if age < 35 and channel == "agent" and r() < 0.35:
            channel = "app" if r() < 0.5 else "wechat"
        young = age < 50
        has_wechat = channel == "wechat" or r() < (0.55 if young else 0.3)
        has_app = channel == "app" or r() < (0.4 if young else 0.15)
        openid = (
            "o" + base64.urlsafe_b64encode(rng.getrandbits(168).to_bytes(21, "big")).decode()[:27]
            if has_wechat
            else None
        )
        app_user_id = f"U{cid:09d}{int(r() * 1000):03d}" if has_app else None
        risk = "R" + str(1 + bisect([0.22, 0.58, 0.84, 0.95], r() + (0.04 if 30 <= age < 50 else -0.04)))
        self.batch.customers.append(
            (cid, name, id_number, phone, gender, birth, city.province, city.name, channel, openid, app_user_id,
             risk, created_at, created_at, None)
        )  # fmt: skip
        return Customer(cid, city_idx, birth, gender, channel, created_at, has_app, has_wechat)

    def consents(self, rng: random.Random, cust: Customer) -> None:
        r = rng.random
        offered = [("sms", 0.8)]
        if cust.has_app:
            offered.append(("app_push", 0.66))
        if cust.has_wechat:
            offered.append(("wechat", 0.75))
        if r() < 0.35:
            offered.append(("email", 0.5))
        if r() < 0.55:
            offered.append(("phone", 0.35))
        for channel, p_in in offered:
            source = (
                "app" if channel == "app_push" else "wechat" if channel == "wechat" else CONSENT_SOURCE[cust.channel]
            )
            decided = cust.created_at + timedelta(seconds=5 + r() * 600)
            status = "opt_in" if r() < p_in else "opt_out"
            created = decided
            if r() < 0.2:  # changed their mind later
                later = decided + timedelta(seconds=r() * (self.horizon - decided).total_seconds())
                if later > decided:
                    decided, status = later, ("opt_out" if status == "opt_in" else "opt_in")
            if decided >= self.horizon:
                continue
            self.batch.consents.append(
                (self.take("consents"), cust.id, channel, status, decided, source, created, decided, None)
            )

    # --- policies ---------------------------------------------------------------------------------------

    def pick_line(self, rng: random.Random, cust: Customer, held: set[str]) -> str:
        age = (self.horizon_date - cust.birth_date).days // 365
        cum = next(c for limit, c in ref.LINE_CUM_BY_AGE if age < limit)
        for _ in range(4):  # prefer a line not yet held
            line = ref.LINES[bisect(cum, rng.random() * cum[-1])]
            if line not in held:
                return line
        return line

    def holding(
        self, rng: random.Random, cust: Customer, quote_at: datetime, line: str, *, abandon: bool = False
    ) -> None:
        """One product line of a customer: the first sale, then yearly renewals while the customer stays."""
        r = rng.random
        cum = ref.PRODUCT_CUM_WEIGHTS[line]
        spec_idx = ref.PRODUCTS_BY_LINE[line][bisect(cum, r() * cum[-1])]
        spec = ref.PRODUCTS[spec_idx]
        city = ref.CITIES[cust.city]
        org_id = self.layout.city_org_id(cust.city)
        agent_id = None
        if spec.dual_recording or cust.channel in AGENT_CHANNELS or r() < 0.15:
            agent_id = self.layout.pick_agent(rng, cust.city)
        payment = spec.payment_modes[int(r() * len(spec.payment_modes))]
        age = (quote_at.date() - cust.birth_date).days / 365.25
        subject = _subject(rng, spec, city, quote_at.date())
        insured_factor = (0.5, 1.0, 1.0, 1.5, 2.0)[int(r() * 5)]

        # First sale: quote -> accepted (pending payment) -> paid and issued; cover starts the next day or later.
        first_accepted = quote_at + timedelta(minutes=2 + r() * (90 if cust.channel in ref.ONLINE_CHANNELS else 2_880))
        accepted: datetime | None = first_accepted
        issued: datetime | None = first_accepted + timedelta(minutes=1 + r() * 600)
        if abandon:
            issued = None  # never paid; the daily sweep retires it
            if r() < 0.5 or first_accepted < self.horizon - timedelta(days=14):
                accepted = None  # unpaid acceptances lapse after 15 days, so open ones are younger
        start = (issued or quote_at).date() + timedelta(days=1 + int(r() * r() * 10))
        renewal_of = None
        year = 0
        while True:
            created = quote_at
            end = add_months(start, spec.term_months) - ONE_DAY
            pid = self.take("policies")
            value = _vehicle_value(subject, start) if subject[0] == "vehicle" else None
            sum_insured = value if (line == "auto" and spec.sum_insured == 0) else spec.sum_insured * insured_factor
            premium = _premium(spec, age + year, value, year, insured_factor)
            # State at the horizon.
            if issued is None or issued >= self.horizon:
                status = "pending_payment" if accepted is not None and accepted < self.horizon else "quoted"
                updated = accepted if status == "pending_payment" else created
                issued_at = None
                exposure_end = None
            else:
                issued_at = issued
                status, updated, exposure_end = self._issued_state(rng, spec, start, end, issued, payment)
            renewal_next = (
                status == "expired"
                and spec.term_months == 12
                and r() < ANNUAL_RENEWAL[line]
                and end < self.horizon_date
            )
            self.batch.policies.append(
                (pid, f"P{created.year}{city.code}{pid:010d}", cust.id, spec_idx + 1, agent_id, org_id, subject[0],
                 subject[1], subject[2], value, subject[4], subject[5], money(sum_insured or 0.0), premium, payment,
                 start, end, status, renewal_of, issued_at, created, updated, None)
            )  # fmt: skip
            if spec.dual_recording and accepted is not None and accepted < self.horizon and agent_id is not None:
                recorded = quote_at + (accepted - quote_at) * (0.2 + 0.6 * r())
                self.recordings(rng, cust, pid, spec_idx, agent_id, org_id, recorded, spec.line == "life")
            if exposure_end is not None:
                cust.policies.append((pid, line))
                self.claims(rng, cust, pid, line, spec_idx, start, exposure_end, sum_insured)
            if not renewal_next or exposure_end is None:
                return
            # Renewal: quoted a few weeks before the end, paid before the old cover runs out.
            year += 1
            renewal_of = pid
            quote_at = office_time(rng, end - timedelta(days=3 + int(r() * 27)))
            accepted = quote_at + timedelta(minutes=5 + r() * 1_440)
            issued = min(accepted + timedelta(minutes=1 + r() * 1_440), midnight(end) + timedelta(hours=22))
            accepted = min(accepted, issued)
            start = end + ONE_DAY
            if issued >= self.horizon:
                return

    def _issued_state(self, rng, spec, start: date, end: date, issued: datetime, payment: str):
        """(status, updated_at, last day of exposure) of an issued policy at the horizon."""
        r = rng.random
        horizon_date = self.horizon_date
        long_term = spec.term_months > 12
        # Early exits: surrender (cash value, car sold) or lapse (missed premiums on instalment plans).
        p_exit = 0.12 if long_term else 0.015
        if r() < p_exit:
            span = (end - start).days if not long_term else 365 * 6
            exit_day = start + timedelta(days=30 + int(r() * span))
            exit_at = office_time(rng, exit_day)
            if exit_day <= end and exit_at < self.horizon:
                lapse = long_term and payment != "single" and r() < 0.5
                return ("lapsed" if lapse else "surrendered"), exit_at, exit_day
        if end < horizon_date:
            # The nightly batch closes the cover late on its last day.
            expired_at = midnight(end) + timedelta(hours=23, seconds=r() * 3_000)
            return "expired", expired_at, end
        return "in_force", issued, min(end, horizon_date - ONE_DAY)

    # --- claims -----------------------------------------------------------------------------------------

    def claims(
        self, rng, cust: Customer, pid: int, line: str, spec_idx: int, start: date, until: date, insured
    ) -> None:
        r = rng.random
        days = (until - start).days + 1
        if days <= 0:
            return
        lam = ref.CLAIM_RATE[line] * days / 365.0
        n, p, limit = 0, r(), math.exp(-lam)
        while p > limit:
            n += 1
            p *= r()
        for _ in range(n):
            incident = midnight(start) + timedelta(seconds=r() * days * 86_400)
            self.claim(rng, cust, pid, line, incident, insured)

    def claim(self, rng, cust: Customer, pid: int, line: str, incident: datetime | None, insured, *,
              submitted_at: datetime | None = None) -> int | None:  # fmt: skip
        """One claim's path (submitted, review, documents, decision, payment), cut at the horizon.

        Either the incident is given (history) or the moment the claim is submitted (a new claim of the day).
        """
        r = rng.random
        if submitted_at is None:
            assert incident is not None
            reported = incident + timedelta(minutes=10 + rng.expovariate(1 / 600))
            submitted = reported + timedelta(minutes=r() * 60)
        else:
            submitted = submitted_at
            reported = submitted - timedelta(minutes=r() * 60)
            incident = reported - timedelta(minutes=10 + rng.expovariate(1 / 600))
        if submitted >= self.horizon:
            return None
        incident_type = choose(rng, ref.INCIDENT_TYPES[line])
        median = ref.CLAIM_MEDIAN[incident_type] or insured
        claimed = money(min(median * math.exp(rng.gauss(0, 0.7)), insured or median * 3))
        steps = [("submitted", submitted)]
        t = submitted + timedelta(hours=2 + r() * 40)
        steps.append(("under_review", t))
        if r() < 0.3:
            t += timedelta(hours=4 + r() * 68)
            steps.append(("docs_requested", t))
        t += timedelta(hours=20 + r() * 170)
        approved = r() < 0.88
        steps.append(("approved" if approved else "rejected", t))
        if approved:
            t += timedelta(hours=2 + r() * 46)
            steps.append(("paying", t))
            t += timedelta(hours=12 + r() * 60)
            steps.append(("paid", t))
        reached = {name: at for name, at in steps if at < self.horizon}
        status = [name for name, at in steps if at < self.horizon][-1]
        amount_approved = money(claimed * (0.6 + 0.4 * r())) if "approved" in reached else None
        amount_paid = amount_approved if "paid" in reached else None
        city = ref.CITIES[cust.city]
        if r() < 0.1 and line == "auto":
            city = ref.CITIES[bisect(ref.CITY_CUM_WEIGHTS, r() * ref.CITY_CUM_WEIGHTS[-1])]
        cid = self.take("claims")
        self.batch.claims.append(
            (cid, f"CL{submitted.year}{cid:012d}", pid, cust.id, incident, city.province, city.name, incident_type,
             reported, claimed, amount_approved, amount_paid, status, submitted, reached.get("under_review"),
             reached.get("docs_requested"), reached.get("approved"), reached.get("rejected"), reached.get("paying"),
             reached.get("paid"), submitted, reached[status], None)
        )  # fmt: skip
        cust.claims += 1
        return cid

    # --- dual recordings ----------------------------------------------------------------------------------

    def recordings(self, rng, cust: Customer, pid: int, spec_idx: int, agent_id: int, org_id: int,
                   recorded: datetime, long_talk: bool) -> None:  # fmt: skip
        """The recording of the sale; a rejected one is recorded again (the platform's rule), up to 3 times."""
        r = rng.random
        spec = ref.PRODUCTS[spec_idx]
        city = ref.CITIES[cust.city]
        for attempt in range(3):
            if recorded >= self.horizon:
                return
            rid = self.take("sales_recordings")
            ticket = f"SR{recorded:%Y%m%d}{rid:010d}"
            duration = int((900 if long_talk else 600) + r() * 1_500)
            uploaded = recorded + timedelta(seconds=duration + 60 + r() * 900)
            if uploaded >= self.horizon:  # still uploading at the horizon: stamp it just inside
                uploaded = recorded + (self.horizon - recorded) * 0.9
            size = int(min(5 * 1024 * 1024, 1_000_000 + duration * 1_800 * (0.6 + 0.4 * r())))
            checksum = hashlib.sha256(f"{self.seed}:{ticket}:{size}".encode()).hexdigest()
            reviewed = uploaded + timedelta(hours=1 + r() * 70)
            reviewer = f"QC{city.code}{1 + int(r() * 12):02d}"
            status, comment, reviewed_at, qc_sampled, qc_result = "pending", None, None, False, None
            updated = uploaded
            rejected = r() < (0.11, 0.05, 0.0)[attempt]  # the third recording is done with the reviewer's help
            if reviewed < self.horizon:
                reviewed_at, updated = reviewed, reviewed
                if rejected:
                    status = "rejected"
                    comment = ref.RECORDING_REJECT_REASONS[int(r() * len(ref.RECORDING_REJECT_REASONS))]
                else:
                    status = "completed"
                    comment = ref.RECORDING_PASS_COMMENTS[int(r() * len(ref.RECORDING_PASS_COMMENTS))]
                    qc_sampled = r() < spec.qc_sample_ratio
                    qc_at = reviewed + timedelta(hours=24 + r() * 200)
                    if qc_sampled and qc_at < self.horizon:
                        qc_result, updated = ("pass" if r() < 0.93 else "fail"), qc_at
            self.batch.sales_recordings.append(
                (rid, ticket, pid, agent_id, org_id, spec_idx + 1, cust.id, recorded, duration,
                 f"oss://dual-recording/{city.code}00/{recorded:%Y/%m/%d}/{ticket}.mp4", size, checksum,
                 r() < 0.997, status, reviewer if reviewed_at else None, comment, reviewed_at, qc_sampled,
                 qc_result, uploaded, updated, None)
            )  # fmt: skip
            if status != "rejected":
                return
            recorded = office_time(rng, reviewed.date() + timedelta(days=1 + int(r() * 4)))
            if recorded >= self.horizon:  # recorded again before the horizon, so no rejection is left hanging
                recorded = reviewed + (self.horizon - reviewed) * (0.3 + 0.6 * r())

    # --- complaints ---------------------------------------------------------------------------------------

    def complaint(self, rng, cust: Customer, opened: datetime) -> None:
        r = rng.random
        if opened >= self.horizon:
            return
        channel = ref.COMPLAINT_CHANNELS[bisect(ref.COMPLAINT_CHANNEL_CUM, r() * ref.COMPLAINT_CHANNEL_CUM[-1])]
        category = ref.COMPLAINT_CATEGORIES[bisect(ref.COMPLAINT_CATEGORY_CUM, r() * ref.COMPLAINT_CATEGORY_CUM[-1])]
        if cust.claims and r() < 0.5:
            category = "claim"
        policy_id = cust.policies[int(r() * len(cust.policies))][0] if cust.policies and r() < 0.85 else None
        in_progress = opened + timedelta(hours=2 + r() * 60)
        resolved = in_progress + timedelta(days=1 + r() * 20)
        closed = resolved + timedelta(days=1 + r() * 10)
        status, updated, resolved_at = "open", opened, None
        if in_progress < self.horizon:
            status, updated = "in_progress", in_progress
        if resolved < self.horizon:
            status, updated, resolved_at = "resolved", resolved, resolved
        if closed < self.horizon:
            status, updated = "closed", closed
        kid = self.take("complaints")
        self.batch.complaints.append(
            (kid, f"TS{opened:%Y%m%d}{kid:08d}", cust.id, policy_id, channel, category, status, opened, resolved_at,
             opened, updated, None)
        )  # fmt: skip

    # --- a whole customer ---------------------------------------------------------------------------------

    def customer_book(self, rng: random.Random, cid: int, created_at: datetime, *, recent_from: datetime) -> Customer:
        """A customer with 1-4 product lines, their renewals, claims, recordings, consents and complaints."""
        r = rng.random
        cust = self.new_customer(rng, cid, created_at)
        self.consents(rng, cust)
        n_lines = 1 + bisect(HOLDINGS_CUM, r())
        held: set[str] = set()
        span = max((self.horizon - created_at).total_seconds() - 3_600, 0.0)
        for k in range(n_lines):
            line = self.pick_line(rng, cust, held)
            held.add(line)
            if k == 0:
                quote_at = created_at + timedelta(minutes=1 + r() * 30)
            else:
                quote_at = created_at + timedelta(seconds=span * r())
            if quote_at < self.horizon:
                self.holding(rng, cust, quote_at, line)
        if r() < RECENT_QUOTE_SHARE and recent_from < self.horizon:
            quote_at = max(recent_from, created_at) + timedelta(
                seconds=r() * max((self.horizon - max(recent_from, created_at)).total_seconds() - 60, 0)
            )
            self.holding(rng, cust, quote_at, self.pick_line(rng, cust, held), abandon=r() < 0.5)
        if r() < COMPLAINT_SHARE:
            self.complaint(rng, cust, created_at + timedelta(seconds=span * (0.2 + 0.8 * r())))
        return cust


def customer_from_row(row) -> Customer:
    """Rebuild the generator's view of an existing customer from its source row."""
    (cid, province, city, birth, gender, channel, created_at, openid, app_user_id) = row
    return Customer(
        id=cid,
        city=CITY_INDEX.get((province, city), 0),
        birth_date=birth,
        gender=gender,
        channel=channel,
        created_at=created_at,
        has_app=app_user_id is not None,
        has_wechat=openid is not None,
    )


# --- small draws ------------------------------------------------------------------------------------------

_AGE_BANDS = [(18, 25, 8), (25, 30, 12), (30, 35, 14), (35, 40, 13), (40, 45, 12), (45, 50, 11), (50, 55, 10),
              (55, 60, 8), (60, 65, 6), (65, 75, 5), (75, 86, 1)]  # fmt: skip
_AGE_CUM = []
_acc = 0
for _lo, _hi, _w in _AGE_BANDS:
    _acc += _w
    _AGE_CUM.append(_acc)


def _draw_age(rng: random.Random) -> int:
    lo, hi, _ = _AGE_BANDS[bisect(_AGE_CUM, rng.random() * _AGE_CUM[-1])]
    return lo + int(rng.random() * (hi - lo))


def _chinese_name(rng: random.Random, gender: str, birth_year: int) -> str:
    r = rng.random
    surname = ref.SURNAMES[bisect(ref.SURNAME_CUM_WEIGHTS, r() * ref.SURNAME_CUM_WEIGHTS[-1])]
    older = birth_year < 1980 if r() < 0.85 else birth_year >= 1980
    if gender == "M":
        pool = ref.GIVEN_MALE_OLDER if older else ref.GIVEN_MALE_YOUNGER
    else:
        pool = ref.GIVEN_FEMALE_OLDER if older else ref.GIVEN_FEMALE_YOUNGER
    single = r() < (0.3 if birth_year < 1985 else 0.12)
    first = pool[int(r() * len(pool))]
    if single:
        return surname + first
    return surname + first + pool[int(r() * len(pool))]


def _subject(rng: random.Random, spec: ref.ProductSpec, city: ref.City, sold: date) -> tuple:
    """(subject_type, plate, model, new price, first registered, address) of what a product insures."""
    r = rng.random
    if spec.line == "auto":
        model, price, nev = ref.VEHICLE_MODELS[bisect(ref.VEHICLE_CUM_WEIGHTS, r() * ref.VEHICLE_CUM_WEIGHTS[-1])]
        if spec.code == "AU-NEV" and not nev:
            model, price, nev = ref.VEHICLE_MODELS[int(r() * 12)]  # the first twelve models are new-energy
        letters = ref.PLATE_LETTERS
        if nev:
            tail = ("D" if r() < 0.7 else "F") + "".join(str(int(r() * 10)) for _ in range(5))
        else:
            first = letters[int(r() * len(letters))] if r() < 0.3 else str(int(r() * 10))
            tail = first + "".join(ref.PLATE_CHARS[int(r() * len(ref.PLATE_CHARS))] for _ in range(4))
        new_car = r() < 0.4
        registered = sold - timedelta(days=int(r() * 30) if new_car else int(30 + r() * 365 * 8))
        return ("vehicle", city.plate + tail, model, price * (0.9 + 0.2 * r()), registered, None)
    if spec.line == "property":
        road = ref.ROADS[int(r() * len(ref.ROADS))]
        community = ref.COMMUNITIES[int(r() * len(ref.COMMUNITIES))]
        address = (
            f"{city.province}{city.name if city.name != city.province else ''}{road}{1 + int(r() * 800)}号"
            f"{community}{1 + int(r() * 30)}栋{1 + int(r() * 4)}单元{1 + int(r() * 32)}{1 + int(r() * 4):02d}室"
        )
        return ("property", None, None, None, None, address)
    return ("person", None, None, None, None, None)


def _vehicle_value(subject: tuple, start: date) -> float:
    years = max((start - subject[4]).days / 365.25, 0.0)
    return money(subject[3] * max(1.0 - 0.12 * years, 0.2))


def _premium(spec: ref.ProductSpec, age: float, vehicle_value: float | None, renewal_year: int, factor: float) -> float:
    """The shared pricing rule (mo.pricing), which the serving API's quotes use too."""
    return pricing.premium(
        line=spec.line,
        base_premium=spec.base_premium,
        vehicle_valued=spec.sum_insured == 0,
        age=age,
        vehicle_value=vehicle_value,
        renewal_year=renewal_year,
        cover_level=factor,
    )
