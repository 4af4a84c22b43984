"""Personal data in DataFrames: which columns hold it, and the keys that keep it out of the log.

``scan_frame(df)`` looks at each column's name and at a bounded, deterministic sample of its
non-null values (at most ``sample`` of them, evenly spaced: a 1M-row frame costs the same as a
1,000-row one) and returns one ``Finding`` per column that holds personal data:

- by name: email, phone/mobile/fax, card number, IBAN, SSN and national identifiers, IP
  address, date of birth, street address, and person names (``name``, ``first_name``,
  ``surname``, ``customer_name``...; ``product_name`` is not one);
- by value, when at least ``MIN_SHARE`` (30%) of the sampled values match: emails (anywhere
  in the text), card numbers (13-19 digits, spaces or dashes allowed, a 2-6 first digit and a
  valid Luhn check digit), IBANs (mod-97 checksum), IPv4/IPv6 addresses (``ipaddress``), US
  SSNs written ``AAA-GG-SSSS`` (python-stdnum's rules: no 000/666/9xx area, no 00 group, no
  0000 serial), phone numbers that start with ``+``/``00`` or are written with separators
  (parsed and validated by ``phonenumbers``; numbers without a country code are read in
  ``MLOPS_NB_PHONE_REGION``, default US).

What is deliberately not matched by value, because random identifiers would match too: bare
digit runs as phones or SSNs (most 9- and 10-digit numbers are valid ones), and floats (a card
number in a float has lost digits already). Integer columns are only checked for card numbers.
A column named after one of these kinds is flagged by its name whatever its values, unless it
holds only 0/1 (a one-hot ``payment_method_credit-card`` names a kind of data it does not hold).

``declared`` (column -> kind) adds columns no scan can recognise (free text, names under odd
column names); ``allowed`` marks false positives: they are still reported, with status
``allowed``, and nothing else treats them as personal data.

The keys: ``keyed_hash(value, key)`` stands for a value in the log (HMAC-SHA256, so equal
values give equal hashes and nobody without the key can test a guess), and ``encrypt`` /
``decrypt`` protect checkpoints (AES-256-GCM). Both keys derive from one secret per log folder
that is never stored in the log: ``MLOPS_NB_KEY`` when set, else the file ``mlops-nb.key``
beside the log (created on first use, mode 0600). Losing it makes encrypted checkpoints
unreadable and hashes unmatchable; that is the point. A team log (``team=True``) has one
secret for the whole team: ``MLOPS_NB_KEY``, the same on every machine, and no key file (one
per machine would hash the same value differently on each and lock out the others' checkpoints).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import numbers
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlops_nb.errors import MlopsError

MIN_SHARE = 0.3  # a column is flagged when at least this share of its sampled values match
SAMPLE = 1000  # values looked at per column, at most
KEY_ENV = "MLOPS_NB_KEY"
KEY_FILE_NAME = "mlops-nb.key"
PHONE_REGION_ENV = "MLOPS_NB_PHONE_REGION"
HASH_PREFIX = "h:"
_ENCRYPTED_MAGIC = b"MLNBAES1"  # the first bytes of every file ``encrypt`` writes
_TEXT_CHARS = 2000  # longer cells: only this much is searched for an email
TEAM_KEY_MISSING = (
    f"a team log needs the team's personal-data key: set {KEY_ENV} (the same secret on every "
    "machine of the team)"
)
_HASH_LABEL = b"mlops-nb/keyed-hash/1"  # one secret, two keys derived with these labels
_CHECKPOINT_LABEL = b"mlops-nb/checkpoints/1"


class PersonalDataKeyError(MlopsError):
    """The key that protects personal data is missing or wrong (one line saying where)."""


@dataclass(frozen=True)
class Finding:
    """A column that holds personal data: what kind, how we know, and what was decided."""

    column: str
    kind: str  # email, phone, card, iban, ip, ssn, national_id, birth_date, address, name...
    method: str  # 'name', 'pattern' or 'declared'
    share: float | None  # of the sampled non-null values that matched (None: not tested)
    n_sampled: int
    status: str = "flagged"  # 'flagged', 'allowed' or 'declared'

    @property
    def is_private(self) -> bool:
        """Kept out of the log: flagged or declared, not allowed."""
        return self.status != "allowed"

    def to_row(
        self,
        *,
        dataset_id: str | None,
        run_id: str | None,
        cell_seq: int | None,
        dataset_name: str | None,
        created_at: float,
    ) -> dict[str, Any]:
        """A ``pii_findings`` row."""
        row = asdict(self)
        row["column_name"] = row.pop("column")
        return {"dataset_id": dataset_id, "run_id": run_id, "cell_seq": cell_seq,
                "dataset_name": dataset_name, **row, "created_at": created_at}  # fmt: skip


def scan_frame(
    frame: Any,
    *,
    sample: int = SAMPLE,
    declared: Mapping[str, str] | Iterable[str] = (),
    allowed: Iterable[str] = (),
) -> list[Finding]:
    """The personal-data columns of a pandas DataFrame or Series or a polars DataFrame, in
    column order (see the module docstring); anything else has none."""
    found = [f for f in (_scan_column(n, s, sample) for n, s in _columns(frame)) if f]
    return apply_decisions(found, _column_names(frame), declared, allowed)


def apply_decisions(
    findings: list[Finding],
    columns: Iterable[str],
    declared: Mapping[str, str] | Iterable[str] = (),
    allowed: Iterable[str] = (),
) -> list[Finding]:
    """``findings`` (of a frame with ``columns``) with the user's decisions applied: declared
    columns become ``declared`` findings (kind as declared, ``personal`` when not said),
    allowed ones keep their finding with status ``allowed``. Declared wins over allowed."""
    declared = _declared_kinds(declared)
    allowed = {str(name) for name in allowed}
    by_column = {f.column: f for f in findings}
    result = []
    for column in columns:
        finding = by_column.get(column)
        if column in declared:
            share = finding.share if finding is not None else None
            n = finding.n_sampled if finding is not None else 0
            result.append(Finding(column, declared[column], "declared", share, n, "declared"))
        elif finding is not None:
            status = "allowed" if column in allowed else "flagged"
            result.append(Finding(finding.column, finding.kind, finding.method, finding.share,
                                  finding.n_sampled, status))  # fmt: skip
    return result


def private_columns(findings: Iterable[Finding]) -> dict[str, str]:
    """Column -> kind for the findings that keep a column out of the log."""
    return {f.column: f.kind for f in findings if f.is_private}


def describe(findings: Iterable[Finding]) -> str:
    """``personal data: email (email), phone (phone)`` for the cell summary; '' when none."""
    shown = [f"{f.column} ({f.kind})" for f in findings if f.is_private]
    return "personal data: " + ", ".join(dict.fromkeys(shown)) if shown else ""


def pii_summary(log: Any, run_id: str) -> list[dict[str, Any]]:
    """For the datasheet: the latest finding per dataset version and column of a run, as
    ``{dataset, column, kind, method, share, status}`` (dataset: ``name@vN`` or the name)."""
    frame = log.pii_findings(run_id=run_id)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for row in frame.itertuples(index=False):
        dataset = _dataset_label(row.dataset_id, row.dataset_name)
        share = None if pd.isna(row.share) else round(float(row.share), 3)
        rows[(dataset, row.column_name)] = {
            "dataset": dataset, "column": row.column_name, "kind": row.kind,
            "method": row.method, "share": share, "status": row.status,
        }  # fmt: skip
    return list(rows.values())


def checkpoint_protection(log: Any, run_id: str) -> list[dict[str, Any]]:
    """For the datasheet: how a run's values holding personal data were kept, as
    ``{name, cell_seq, stored}`` with stored ``encrypted`` (AES-256-GCM, key outside the log)
    or ``not written`` (``MLOPS_NB_PII_CHECKPOINTS=skip``)."""
    rows = []
    saved = log.checkpoints(run_id)
    for row in saved.itertuples(index=False):
        if str(row.format).endswith(".enc"):
            rows.append({"name": row.name, "cell_seq": int(row.cell_seq), "stored": "encrypted"})
    notes = log.notes(run_id)
    for row in notes[notes["kind"] == "personal-data"].itertuples(index=False):
        name = str(row.message).split(" ", 1)[0]
        rows.append({"name": name, "cell_seq": int(row.cell_seq), "stored": "not written"})
    return sorted(rows, key=lambda r: (r["cell_seq"], r["name"]))


# ---------------------------------------------------------------------- by name
_PERSON_WORDS = {
    "first", "last", "given", "family", "full", "middle", "maiden", "sur", "fore", "customer",
    "client", "patient", "user", "contact", "person", "employee", "holder", "owner", "member",
    "student", "parent", "guardian", "account", "cardholder", "beneficiary", "recipient",
    "sender", "applicant", "buyer", "seller", "passenger", "guest", "driver", "display",
}  # fmt: skip
_NAME_WORDS = {"name", "firstname", "lastname", "surname", "fullname", "givenname",
               "familyname", "middlename", "maidenname", "forename"}  # fmt: skip


def kind_from_name(name: Any) -> str | None:
    """The kind of personal data a column's name says it holds, or None."""
    tokens = _tokens(str(name))
    if not tokens:
        return None
    joined = "".join(tokens)
    words = set(tokens)
    if "email" in joined or "mail" in words:
        return "email"
    if words & {"ip", "ipv4", "ipv6", "ipaddr", "ipaddress"}:
        return "ip"
    if "iban" in words:
        return "iban"
    if words & {"ssn", "ssns"} or "socialsecurity" in joined:
        return "ssn"
    if (
        any(w in joined for w in ("creditcard", "debitcard", "cardnumber", "cardno", "cardnum"))
        or words & {"ccn", "ccnum", "pan"}
        or ("cc" in words and words & {"number", "no", "num", "nr"})
    ):
        return "card"
    national = ("nationalid", "passport", "taxid", "nino", "driverlicense", "driverslicense")
    if any(w in joined for w in national):
        return "national_id"
    if "phone" in joined or words & {"mobile", "tel", "telephone", "fax", "msisdn"}:
        return "phone"
    if words & {"dob", "birthday", "birthdate", "born"} or "birth" in joined:
        return "birth_date"
    if words & {"address", "addr", "street", "streetaddress"}:
        return "address"
    if joined in _NAME_WORDS or words & (_NAME_WORDS - {"name"}):
        return "name"
    if tokens[-1] == "name" and len(tokens) > 1 and tokens[-2] in _PERSON_WORDS:
        return "name"
    return None


def _tokens(name: str) -> list[str]:
    """``customerEmail_2`` -> ['customer', 'email', '2']."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return [t for t in re.split(r"[^a-z0-9]+", spaced.lower()) if t]


# ---------------------------------------------------------------------- by value
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
_CARD = re.compile(r"\d(?:[ -]?\d){12,18}")
_IBAN = re.compile(r"[A-Z]{2}\d{2}[A-Z0-9]{11,30}")
_SSN = re.compile(r"\d{3}-\d{2}-\d{4}")
_PHONE = re.compile(r"\+?[\d\s().\-/]{7,24}")
_PHONE_SEPARATED = re.compile(r"\d[\s().\-/]+\d")


def is_card_number(text: str) -> bool:
    """13-19 digits (spaces or dashes between them), a first digit 2-6 (the card networks'
    range: Visa 4, Mastercard 2/5, Amex 3, Discover 6) and a valid Luhn check digit."""
    if not _CARD.fullmatch(text):
        return False
    digits = text.replace(" ", "").replace("-", "")
    return digits[0] in "23456" and _luhn_ok(digits)


def is_iban(text: str) -> bool:
    """Country code, check digits and account, spaces allowed; the ISO 13616 mod-97 check."""
    compact = text.replace(" ", "").upper()
    if not _IBAN.fullmatch(compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in moved)) % 97 == 1


def is_ip_address(text: str) -> bool:
    if "." not in text and ":" not in text:
        return False
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_ssn(text: str) -> bool:
    """``AAA-GG-SSSS`` passing the US rules (python-stdnum: area, group, serial, known fakes)."""
    if not _SSN.fullmatch(text):
        return False
    from stdnum.us import ssn

    return bool(ssn.is_valid(text))


def is_phone_number(text: str, region: str | None = None) -> bool:
    """A valid number for ``phonenumbers``: international (``+``/``00``) or written with
    separators and read in ``region`` (default ``MLOPS_NB_PHONE_REGION`` or US)."""
    if not _PHONE.fullmatch(text) or sum(ch.isdigit() for ch in text) < 7:
        return False
    import phonenumbers

    if text.startswith("00"):
        text = "+" + text[2:]
    if not text.startswith("+"):
        if not _PHONE_SEPARATED.search(text):
            return False  # a bare digit run: an identifier as often as a phone
        region = region or os.environ.get(PHONE_REGION_ENV) or "US"
    try:
        number = phonenumbers.parse(text, None if text.startswith("+") else region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def is_email(text: str) -> bool:
    """An email address anywhere in the text (free text that quotes one counts)."""
    return "@" in text and _EMAIL.search(text[:_TEXT_CHARS]) is not None


def _luhn_ok(digits: str) -> bool:
    total = 0
    for position, ch in enumerate(reversed(digits)):
        n = ord(ch) - 48
        if position % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


_TEXT_CHECKS = (
    ("email", is_email),
    ("card", is_card_number),
    ("iban", is_iban),
    ("ip", is_ip_address),
    ("ssn", is_ssn),
    ("phone", is_phone_number),
)


def _scan_column(name: str, series: pd.Series, sample: int) -> Finding | None:
    """One column's finding: by value when enough sampled values match, else by name."""
    by_name = kind_from_name(name)
    kind_of_values = _value_kind(series)
    if kind_of_values is None:
        if by_name is None or _is_indicator(series, _sample_values(series, sample)):
            return None
        return Finding(name, by_name, "name", None, 0)
    values = _sample_values(series, sample)
    n = len(values)
    if by_name is not None and kind_of_values == "integer" and _is_indicator(series, values):
        by_name = None
    matches = _matches(values, kind_of_values) if n else {}
    if matches:
        best = max(matches, key=lambda k: matches[k])
        share = matches[best] / n
        if share >= MIN_SHARE:
            return Finding(name, best, "pattern", round(share, 4), n)
    if by_name is None:
        return None
    tested = {"card"} if kind_of_values == "integer" else dict(_TEXT_CHECKS)
    share = matches.get(by_name, 0) / n if n and by_name in tested else None
    return Finding(name, by_name, "name", None if share is None else round(share, 4), n)


def _is_indicator(series: pd.Series, values: list[Any]) -> bool:
    """A 0/1 column (a one-hot ``payment_method_credit-card``): named after a kind of
    personal data, holding none."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return True
    if not pd.api.types.is_numeric_dtype(series.dtype):
        return False
    return bool(values) and set(values) <= {0, 1}


def _value_kind(series: pd.Series) -> str | None:
    """'text' (strings, categories, objects), 'integer', or None (floats, bools, dates: not
    looked at by value)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return "text"
    if pd.api.types.is_bool_dtype(dtype):
        return None
    if pd.api.types.is_integer_dtype(dtype):
        return "integer"
    if pd.api.types.is_string_dtype(dtype) or pd.api.types.is_object_dtype(dtype):
        return "text"
    return None


def _matches(values: list[Any], kind: str) -> dict[str, int]:
    """How many of ``values`` pass each check."""
    counts: dict[str, int] = {}
    if kind == "integer":
        counts["card"] = sum(1 for v in values if abs(int(v)) >= 10**12
                             and is_card_number(str(abs(int(v)))))  # fmt: skip
        return {k: n for k, n in counts.items() if n}
    for value in values:
        if isinstance(value, str):
            text = value.strip()
        elif isinstance(value, numbers.Integral) and not isinstance(value, bool):
            text = str(value)
        else:
            continue
        if not text:
            continue
        short = len(text) <= 64
        for check_kind, check in _TEXT_CHECKS:
            if (short or check_kind == "email") and check(text):
                counts[check_kind] = counts.get(check_kind, 0) + 1
    return counts


def _sample_values(series: pd.Series, size: int) -> list[Any]:
    """At most ``size`` non-null values, evenly spaced over the column (deterministic); a
    mostly-null column is sampled among its non-null values instead."""
    n = len(series)
    if n <= size:
        return series.dropna().tolist()
    positions = np.unique(np.linspace(0, n - 1, size).astype(np.int64))
    values = series.iloc[positions].dropna()
    if len(values) < size // 2:
        present = series.dropna()
        if len(present) > size:
            present = present.iloc[np.unique(np.linspace(0, len(present) - 1, size).astype(int))]
        values = present
    return values.tolist()


def _columns(frame: Any):
    """(name, pandas Series) per column; a polars frame through a sample of 4 x ``SAMPLE``
    evenly spaced rows, converted to pandas column by column."""
    if isinstance(frame, pd.DataFrame):
        for name, (_, series) in zip(_flat_names(frame.columns), frame.items(), strict=True):
            yield name, series
    elif isinstance(frame, pd.Series):
        yield ("0" if frame.name is None else str(frame.name)), frame
    elif _is_polars(frame):
        n = frame.height
        positions = np.unique(np.linspace(0, max(n - 1, 0), min(n, SAMPLE * 4)).astype(np.int64))
        rows = frame[positions.tolist()] if n else frame
        for name in frame.columns:
            yield str(name), rows.get_column(name).to_pandas()


def _column_names(frame: Any) -> list[str]:
    if isinstance(frame, pd.DataFrame):
        return _flat_names(frame.columns)
    if isinstance(frame, pd.Series):
        return ["0" if frame.name is None else str(frame.name)]
    return [str(name) for name in frame.columns] if _is_polars(frame) else []


def _flat_names(columns: Any) -> list[str]:
    """Column labels as the snapshots name them (MultiIndex tuples joined with dots)."""
    return [
        ".".join(str(p) for p in name if str(p) != "") if isinstance(name, tuple) else str(name)
        for name in columns
    ]


def _is_polars(value: Any) -> bool:
    import sys

    polars = sys.modules.get("polars")
    return polars is not None and isinstance(value, polars.DataFrame)


def _declared_kinds(declared: Mapping[str, str] | Iterable[str]) -> dict[str, str]:
    if isinstance(declared, Mapping):
        return {str(k): str(v or "personal") for k, v in declared.items()}
    return {str(name): "personal" for name in declared}


def _dataset_label(dataset_id: Any, name: Any) -> str:
    """``clean@v2`` from a dataset id ``1a2b3c4d:clean@v2``; the name when there is no id."""
    if isinstance(dataset_id, str) and ":" in dataset_id:
        return dataset_id.split(":", 1)[1]
    return str(name if isinstance(name, str) else dataset_id)


# ---------------------------------------------------------------------- keys
def keyed_hash(value: Any, key: bytes) -> str:
    """``h:`` + 32 hex digits of HMAC-SHA256(key, the value as text): equal values, equal
    hashes (so a value can be found again, e.g. to erase it), and no guessing without the key.

    The text is the value as given, stripped of surrounding spaces; integers and integral
    floats in decimal (``4155550123`` and ``4155550123.0`` hash alike), other values ``str``.
    Letter case is kept: ``Alice@x.org`` and ``alice@x.org`` differ."""
    digest = hmac.new(key, canonical_text(value).encode("utf-8"), hashlib.sha256)
    return HASH_PREFIX + digest.hexdigest()[:32]


def canonical_text(value: Any) -> str:
    """The text ``keyed_hash`` hashes (see there)."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool | np.bool_):
        return str(bool(value))
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real) and float(value).is_integer():
        return str(int(value))
    return str(value)


def hash_key(log_path: str | os.PathLike[str], create: bool = True, *, team: bool = False) -> bytes:
    """The key of ``keyed_hash`` for the log at ``log_path`` (see the module docstring);
    ``team``: the log is a team log, whose key is only ``MLOPS_NB_KEY``."""
    return _derived(_master_key(Path(log_path).parent, create, team), _HASH_LABEL)


def encryption_key(
    log_path: str | os.PathLike[str], create: bool = True, *, team: bool = False
) -> bytes:
    """The AES-256 key that encrypts this log's checkpoints of personal data."""
    return _derived(_master_key(Path(log_path).parent, create, team), _CHECKPOINT_LABEL)


def artifact_encryption_key(
    path: str | os.PathLike[str], *, team: bool = False, name: str | None = None
) -> bytes:
    """The key that decrypts ``path``, a file stored under a log's ``artifacts/`` folder
    (``MLOPS_NB_KEY``, else that log's key file, never for a ``team`` log); never creates
    one. ``name`` is what the errors call the file (default: its name)."""
    shown = name or Path(path).name
    folder = log_folder_of_artifact(path)
    if folder is None and not team and not os.environ.get(KEY_ENV):
        raise PersonalDataKeyError(f"{shown} is encrypted: set {KEY_ENV} to read it")
    try:
        master = _master_key(folder or Path("."), create=False, team=team)
    except PersonalDataKeyError as error:
        raise PersonalDataKeyError(f"{shown} is encrypted and {error}") from None
    return _derived(master, _CHECKPOINT_LABEL)


def key_file(log_folder: str | os.PathLike[str]) -> Path:
    """Where the secret of the logs in ``log_folder`` lives (unless ``MLOPS_NB_KEY`` is set)."""
    return Path(log_folder) / KEY_FILE_NAME


def encrypt(data: bytes, key: bytes) -> bytes:
    """AES-256-GCM: magic, a random 96-bit nonce, then the ciphertext with its tag."""
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    nonce = secrets.token_bytes(12)
    return _ENCRYPTED_MAGIC + nonce + AESGCM(key).encrypt(nonce, data, _ENCRYPTED_MAGIC)


def decrypt(blob: bytes, key: bytes, what: str = "the file") -> bytes:
    """The plaintext of ``encrypt``; PersonalDataKeyError when the key is not the one used."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    if not is_encrypted(blob):
        raise PersonalDataKeyError(f"{what} is not encrypted by mlops-nb")
    size = len(_ENCRYPTED_MAGIC)
    nonce, body = blob[size : size + 12], blob[size + 12 :]
    try:
        return AESGCM(key).decrypt(nonce, body, _ENCRYPTED_MAGIC)
    except InvalidTag:
        raise PersonalDataKeyError(
            f"{what} cannot be decrypted with this key: it was encrypted with another "
            f"{KEY_ENV} or {KEY_FILE_NAME}"
        ) from None


def is_encrypted(blob: bytes) -> bool:
    return blob[: len(_ENCRYPTED_MAGIC)] == _ENCRYPTED_MAGIC


def log_folder_of_artifact(path: str | os.PathLike[str]) -> Path | None:
    """The log's folder for a file stored under its ``artifacts/`` folder, else None."""
    for parent in Path(path).absolute().parents:
        if parent.name == "artifacts":
            return parent.parent
    return None


def _master_key(folder: Path, create: bool, team: bool = False) -> bytes:
    from_env = os.environ.get(KEY_ENV)
    if from_env:
        return from_env.encode("utf-8")
    if team:
        raise PersonalDataKeyError(TEAM_KEY_MISSING)
    path = key_file(folder)
    try:
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        if not create:
            raise PersonalDataKeyError(
                f"the personal-data key is missing (set {KEY_ENV} or put back {path})"
            ) from None
    except ValueError:
        raise PersonalDataKeyError(f"{path} is not an mlops-nb key (64 hex digits)") from None
    return _create_key_file(path)


def _create_key_file(path: Path) -> bytes:
    """A new random secret, written 0600 and linked into place: a process that races us
    either wins or reads the winner's whole file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secret.hex() + "\n")
        try:
            os.link(temporary, path)
        except FileExistsError:
            return bytes.fromhex(path.read_text().strip())
    finally:
        temporary.unlink(missing_ok=True)
    return secret


def _derived(master: bytes, label: bytes) -> bytes:
    return hmac.new(master, label, hashlib.sha256).digest()
