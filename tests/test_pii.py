"""Personal data kept out of the log: detection, decisions, encrypted checkpoints, hashed
requests and redacted secrets, checked on real tracked cells, a real ``mlops-nb run`` and a real
``mlops-nb serve``, by reading every byte the log, its journal and its artifacts hold."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import httpx
import nbformat
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli, subprocess_env
from nbformat.v4 import new_code_cell, new_notebook

import mlops_nb as mn
from mlops_nb.capture import checkpoint, pii
from mlops_nb.capture.data import describe_change, diff, snapshot

# every value below passes its check: Luhn, mod-97, phonenumbers, stdnum's SSN rules
PLANTED = {
    "email": ["alice.smith@example.com", "bob.jones@example.org", "carol.wu@example.net",
              "dan.ruiz@example.com", "erin.cole@example.org", "frank.oduya@example.net"],
    "phone": ["+1 415-555-2671", "+44 20 7946 0958", "+33 1 42 68 53 00", "+61 2 9374 4000",
              "(212) 555-0147", "+1 646-555-0199"],
    "card": ["4111 1111 1111 1111", "5500-0000-0000-0004", "3782 822463 10005",
             "6011 1111 1111 1117", "4012-8888-8888-1881", "5105 1051 0510 5100"],
    "iban": ["DE89 3704 0044 0532 0130 00", "GB82 WEST 1234 5698 7654 32",
             "FR14 2004 1010 0505 0001 3M02 606", "NL91 ABNA 0417 1643 00",
             "ES91 2100 0418 4502 0005 1332", "IT60 X054 2811 1010 0000 0123 456"],
    "ip": ["203.0.113.77", "198.51.100.23", "2001:db8::7334", "192.0.2.146", "203.0.113.201",
           "2001:db8:85a3::8a2e:370"],
    "ssn": ["536-90-4399", "219-09-9991", "372-84-1936", "601-24-8857", "772-10-4410",
            "123-45-6789"],
}  # fmt: skip
COLUMNS = {"email": "email", "phone": "mobile", "card": "card", "iban": "account",
           "ip": "client_host", "ssn": "tax_code"}  # fmt: skip
SECRET = "s3cr3t-Tok3n-4417"


def customers(n: int = 36) -> pd.DataFrame:
    """A customer table whose personal columns hold the planted values (cycled), most under
    names that do not say what they hold: the values give them away."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        COLUMNS[kind]: [values[i % len(values)] for i in range(n)]
        for kind, values in PLANTED.items()
    })  # fmt: skip
    frame["notes"] = [f"visit {i % 5}" for i in range(n)]
    frame["age"] = rng.integers(18, 80, n)
    frame["income"] = rng.normal(50, 10, n).round(1)
    frame["churned"] = (frame["age"] < 40).astype(int)
    return frame


def leaked_values() -> list[bytes]:
    """Each planted value as text, and cards/IBANs without their spaces or dashes too."""
    found = []
    for kind, values in PLANTED.items():
        for value in values:
            found.append(value.encode())
            if kind in ("card", "iban"):
                found.append(value.replace(" ", "").replace("-", "").encode())
    return found


def planted_in(folder: Path, skip: set[Path] = frozenset()) -> list[str]:
    """Every planted value found in the bytes of every file under ``folder`` (but ``skip``),
    and in every row of every table of the DuckDB files there (compressed pages would hide a
    value from the byte scan)."""
    hits = []
    wanted = leaked_values()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p not in skip):
        data = path.read_bytes()
        hits += [f"{path.relative_to(folder)}: {v.decode()}" for v in wanted if v in data]
        if path.suffix == ".duckdb":
            with duckdb.connect(str(path), read_only=True) as con:
                tables = con.execute(
                    "SELECT schema_name, table_name FROM duckdb_tables()"
                ).fetchall()
                for schema, table in tables:
                    text = con.execute(f'SELECT * FROM "{schema}"."{table}"').df().to_csv()
                    hits += [f"{path.name}:{schema}.{table}: {v.decode()}" for v in wanted
                             if v.decode() in text]  # fmt: skip
    return hits


# ---------------------------------------------------------------------- detection
def test_each_kind_is_found_by_its_values_under_names_that_do_not_say_so():
    found = {f.column: f for f in pii.scan_frame(customers())}
    assert {c: found[c].kind for c in COLUMNS.values()} == {v: k for k, v in COLUMNS.items()}
    for column in ["email", "card", "account", "client_host", "tax_code"]:
        assert found[column].method == "pattern" and found[column].share == 1.0
    assert found["mobile"].kind == "phone"  # by value (share 1.0) or its name: both say phone
    assert {"notes", "age", "income", "churned"}.isdisjoint(found)


def test_card_numbers_and_ibans_need_a_valid_checksum():
    for card in PLANTED["card"]:
        assert pii.is_card_number(card)
        digits = card.replace(" ", "").replace("-", "")
        broken = digits[:-1] + str((int(digits[-1]) + 1) % 10)
        assert not pii.is_card_number(broken), broken
    for iban in PLANTED["iban"]:
        assert pii.is_iban(iban)
        assert not pii.is_iban(iban[:4] + iban[4:].replace("1", "2", 1)), iban
    assert not pii.is_card_number("4111 1111 1111 11")  # 12 digits: too short


def test_near_misses_are_not_flagged():
    rng = np.random.default_rng(1)
    random_16 = [str(n) for n in rng.integers(10**15, 10**16 - 1, 500)]
    assert sum(pii.is_card_number(v) for v in random_16) < 0.3 * 500  # about 10% pass Luhn
    frame = pd.DataFrame({
        "account_code": random_16,  # random 16-digit numbers: some pass Luhn, few enough
        "order_id": rng.integers(10**15, 10**16 - 1, 500),
        "product": [f"SKU-{n:06d}-{n % 97:02d}" for n in range(500)],
        "part": [f"{n % 1000:03d}-{n % 100:02d}-{n % 9000 + 1000:04d}" for n in range(500)],
        "reference": [str(n) for n in rng.integers(2 * 10**9, 9 * 10**9, 500)],  # bare digits
        "version": [f"1.{n % 9}.{n % 7}" for n in range(500)],
        "product_name": [f"widget {n}" for n in range(500)],
        "ratio": rng.random(500),
    })  # fmt: skip
    found = pii.scan_frame(frame)
    assert [f.column for f in found] == ["part"]  # AAA-GG-SSSS codes: read as SSNs by value
    assert pii.scan_frame(frame, allowed=["part"])[0].status == "allowed"
    assert not pii.private_columns(pii.scan_frame(frame, allowed=["part"]))


def test_ssn_rules_and_phone_numbers():
    assert all(pii.is_ssn(v) for v in PLANTED["ssn"])
    for invalid in ["000-12-3456", "666-12-3456", "912-12-3456", "123-00-4567", "123-45-0000"]:
        assert not pii.is_ssn(invalid), invalid
    assert not pii.is_ssn("536904399")  # bare digits: not read as an SSN by value
    assert all(pii.is_phone_number(v) for v in PLANTED["phone"])
    assert not pii.is_phone_number("4155552671")  # a bare digit run could be any identifier
    assert not pii.is_phone_number("+1 000-000-0000")


@pytest.mark.parametrize(("name", "kind"), [
    ("email", "email"), ("customerEmail", "email"), ("ip_address", "ip"), ("IBAN", "iban"),
    ("ssn", "ssn"), ("credit_card_number", "card"), ("phone", "phone"), ("mobile", "phone"),
    ("date_of_birth", "birth_date"), ("dob", "birth_date"), ("street", "address"),
    ("first_name", "name"), ("surname", "name"), ("name", "name"), ("customer_name", "name"),
    ("passport_no", "national_id"), ("product_name", None), ("file_name", None),
    ("cell_id", None), ("card_type", None), ("zip", None), ("notes", None),
])  # fmt: skip
def test_column_names(name, kind):
    assert pii.kind_from_name(name) == kind


def test_a_named_column_is_flagged_whatever_its_values_and_floats_are_not_read():
    frame = pd.DataFrame({"phone": [4155552671, 4155550199], "surname": ["x", "y"],
                          "amount": [4111111111111111.0, 1.0]})  # fmt: skip
    frame["payment_method_credit-card"] = [0.0, 1.0]  # a one-hot column: named, holds none
    frame["has_phone"] = [True, False]
    found = {f.column: f for f in pii.scan_frame(frame)}
    assert found["phone"].method == "name" and found["surname"].kind == "name"
    assert set(found) == {"phone", "surname"}


def test_a_large_frame_is_scanned_on_a_bounded_sample():
    n = 1_000_000
    frame = pd.DataFrame({
        "contact": [PLANTED["email"][i % 6] if i % 4 else None for i in range(n)],
        "value": np.arange(n),
    })  # fmt: skip
    found = pii.scan_frame(frame)
    assert [(f.column, f.kind, f.n_sampled) for f in found] == [("contact", "email", 750)]
    sparse = pd.DataFrame({"contact": [PLANTED["email"][0] if i % 1000 == 0 else None
                                       for i in range(n)]})  # fmt: skip
    assert pii.scan_frame(sparse)[0].n_sampled == 1000  # sampled among its non-null values


def test_polars_frames_and_series_are_scanned_too():
    import polars  # a test dependency: never skipped, a missing install fails

    frame = polars.DataFrame({"contact": PLANTED["email"] * 1000, "n": list(range(6000))})
    assert [(f.column, f.kind, f.n_sampled) for f in pii.scan_frame(frame)] == [
        ("contact", "email", 1000)]  # fmt: skip
    series = pd.Series(PLANTED["iban"], name="account")
    assert [(f.column, f.kind) for f in pii.scan_frame(series)] == [("account", "iban")]


def test_declared_and_allowed_columns():
    frame = customers()
    found = pii.scan_frame(frame, declared={"notes": "free_text"}, allowed=["email"])
    by_column = {f.column: f for f in found}
    assert by_column["notes"].status == "declared" and by_column["notes"].kind == "free_text"
    assert by_column["email"].status == "allowed"
    private = pii.private_columns(found)
    assert "email" not in private and private["notes"] == "free_text"
    assert pii.describe(found).startswith("personal data: mobile (phone), card (card)")


# ---------------------------------------------------------------------- keys, stats, diffs
def test_keyed_hashes_and_the_key_file(tmp_path):
    log_path = tmp_path / ".mlops" / "log.duckdb"
    key = pii.hash_key(log_path)
    key_file = tmp_path / ".mlops" / pii.KEY_FILE_NAME
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert pii.hash_key(log_path) == key  # created once, then read
    assert pii.encryption_key(log_path) != key  # two keys derived from one secret
    digest = pii.keyed_hash("alice.smith@example.com", key)
    assert digest.startswith("h:") and len(digest) == 34
    assert pii.keyed_hash(" alice.smith@example.com ", key) == digest
    assert pii.keyed_hash(4155552671, key) == pii.keyed_hash(4155552671.0, key)
    assert pii.keyed_hash("alice.smith@example.com", b"another key") != digest
    os.environ[pii.KEY_ENV] = "a key from the environment"
    try:
        assert pii.hash_key(tmp_path / "elsewhere" / "log.duckdb") != key
        assert not (tmp_path / "elsewhere").exists()  # nothing written with MLOPS_NB_KEY
    finally:
        del os.environ[pii.KEY_ENV]


def test_recorded_stats_and_diffs_of_personal_columns_hold_no_value():
    before = snapshot(customers())
    after_frame = customers().drop(index=[0, 1])
    after_frame.loc[5, "email"] = None
    after = snapshot(after_frame)
    private = pii.private_columns(pii.scan_frame(after_frame))
    record = after.to_record(private=private)
    assert record["stats"]["email"] == {"nulls": 1, "distinct": 6, "private": True}
    assert record["stats"]["tax_code"] == {"nulls": 0, "distinct": 6, "private": True}
    assert "top" in record["stats"]["notes"] and "max" in record["stats"]["age"]
    text = json.dumps(record) + json.dumps(diff(before, after))
    text += describe_change("customers", before, "customers", after, None)
    assert not [v for v in leaked_values() if v.decode() in text]


def test_an_encrypted_checkpoint_reads_back_only_with_its_key(tmp_path):
    log_path = tmp_path / ".mlops" / "log.duckdb"
    folder = tmp_path / ".mlops" / "artifacts" / "checkpoints" / "run" / "1"
    frame = customers()
    fmt, path = checkpoint.save_value(frame, folder, "customers", pii.encryption_key(log_path))
    assert fmt == "parquet.enc" and path.name == "customers.parquet.enc"
    blob = path.read_bytes()
    assert not blob.startswith(b"PAR1") and not [v for v in leaked_values() if v in blob]
    plain = pii.decrypt(blob, pii.encryption_key(log_path))
    assert plain.startswith(b"PAR1")
    pd.testing.assert_frame_equal(checkpoint.load_value(fmt, path), frame)
    (tmp_path / ".mlops" / pii.KEY_FILE_NAME).rename(tmp_path / "moved.key")
    with pytest.raises(pii.PersonalDataKeyError) as missing:
        checkpoint.load_value(fmt, path)
    assert str(missing.value) == (
        f"customers.parquet.enc is encrypted and the personal-data key is missing (set "
        f"MLOPS_NB_KEY or put back {tmp_path / '.mlops' / pii.KEY_FILE_NAME})"
    )
    os.environ[pii.KEY_ENV] = "not the key it was encrypted with"
    try:
        with pytest.raises(pii.PersonalDataKeyError, match="cannot be decrypted with this key"):
            checkpoint.load_value(fmt, path)
    finally:
        del os.environ[pii.KEY_ENV]


# ---------------------------------------------------------------------- tracked cells
def run(ip, code: str):
    result = ip.run_cell(textwrap.dedent(code).strip("\n"), store_history=True)
    assert result.success, result.error_in_exec or result.error_before_exec
    return result


def test_tracked_cells_record_findings_and_keep_no_personal_value(shell, tmp_path, capsys):
    customers().to_csv(tmp_path / "customers.csv", index=False)
    run(shell, "%mlops track --experiment pii")
    run(
        shell,
        """
        %%mlops track ingest
        import pandas as pd
        raw = pd.read_csv("customers.csv")
        """,
    )
    assert "personal data: email (email), mobile (phone), card (card), account (iban), " \
        "client_host (ip), tax_code (ssn)" in capsys.readouterr().out  # fmt: skip
    bad = shell.run_cell("%mlops pii --kind free_text")
    assert str(bad.error_in_exec) == "%mlops pii: --kind goes with --declare COLUMN"
    run(shell, "%mlops pii --allow tax_code --declare notes --kind free_text")
    assert capsys.readouterr().out == (
        "tax_code: allowed (not personal data)\nnotes: declared personal data (free_text)\n"
    )
    run(
        shell,
        """
        %%mlops track clean
        clean = raw.drop_duplicates().reset_index(drop=True)
        clean.loc[3, "email"] = None
        """,
    )
    summary = capsys.readouterr().out
    assert "notes (free_text)" in summary and "tax_code" not in summary
    tracker = shell._mlops_tracker
    log, run_id = tracker.log, tracker.run.run_id
    run(shell, "%mlops stop")
    findings = log.pii_findings(run_id=run_id)
    by_version = findings.groupby("dataset_name").apply(
        lambda g: dict(zip(g["column_name"], zip(g["kind"], g["method"], g["status"],
                                                 strict=True), strict=True)))  # fmt: skip
    assert by_version["raw"]["tax_code"] == ("ssn", "pattern", "flagged")
    assert by_version["clean"]["tax_code"] == ("ssn", "pattern", "allowed")
    assert by_version["clean"]["notes"] == ("free_text", "declared", "declared")
    assert by_version["clean"]["card"] == ("card", "pattern", "flagged")
    assert (findings[findings["dataset_name"] == "raw"]["n_sampled"] == 36).all()
    summary = pii.pii_summary(log, run_id)
    assert {"dataset": "clean@v1", "column": "email", "kind": "email", "method": "pattern",
            "share": 1.0, "status": "flagged"} in summary  # fmt: skip
    notes = log.notes(run_id)
    assert "tax_code: allowed (not personal data)" in notes["message"].tolist()
    stats = json.loads(log.run(run_id).datasets.set_index("name").loc["clean", "stats"])
    assert stats["email"] == {"nulls": 1, "distinct": 6, "private": True}
    log.close()
    # the allowed column keeps its values (stats) as the user decided: its values aside,
    # nothing planted is anywhere under .mlops
    allowed = {v.encode() for v in PLANTED["ssn"]}
    hits = [h for h in planted_in(tmp_path / ".mlops")
            if h.rsplit(": ", 1)[1].encode() not in allowed]  # fmt: skip
    assert hits == []


# ---------------------------------------------------------------------- a pipeline run
def _notebook(path: Path) -> Path:
    parameters = new_code_cell("api_token: str = ''\nrows: int = 36")
    parameters.metadata["tags"] = ["parameters"]
    nb = new_notebook(cells=[
        parameters,
        new_code_cell("%%mlops track ingest\nimport pandas as pd\n"
                      "customers = pd.read_csv('customers.csv').head(rows)"),
        new_code_cell("%%mlops track clean\nclean = customers.dropna().reset_index(drop=True)\n"
                      "features = clean[['age', 'income']]\nlabels = clean['churned']"),
        new_code_cell("%%mlops track train\nimport mlops_nb as mn\n"
                      "from sklearn.linear_model import LogisticRegression\n"
                      "model = LogisticRegression().fit(features, labels)\n"
                      "mn.log_metric('token_length', len(api_token))"),
    ])  # fmt: skip
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nbformat.write(nb, str(path))
    return path


def test_a_pipeline_run_encrypts_personal_checkpoints_and_hides_its_secret(tmp_path):
    customers().to_csv(tmp_path / "customers.csv", index=False)
    notebook = _notebook(tmp_path / "customers.ipynb")
    result = run_cli("run", notebook, "-p", "api_token", SECRET, "--cache", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    log_path = tmp_path / ".mlops" / "log.duckdb"
    log = mn.open_log(log_path)
    record = log.run("latest")
    assert record.metrics["token_length"] == len(SECRET)  # the kernel got the real value
    # a second run restores the encrypted values from the cache: the kernel decrypts them
    again = run_cli("run", notebook, "-p", "api_token", SECRET, "--cache", cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    cached = log.run("latest")
    assert cached.cells.set_index("stage")["status"].loc[["ingest", "clean"]].tolist() == [
        "cached", "cached"]  # fmt: skip
    assert cached.metrics == record.metrics
    assert record.params["api_token"] == "***"
    saved = log.checkpoints(record.run_id).set_index("name")
    assert saved.loc["customers", "format"] == "parquet.enc"
    assert saved.loc["clean", "format"] == "parquet.enc"
    assert saved.loc["features", "format"] == "parquet"  # no personal data: as before
    assert "api_token" not in saved.index  # a secret is never saved
    encrypted = {log.artifacts_dir / saved.loc[n, "path"] for n in ("customers", "clean")}
    key = pii.encryption_key(log_path)
    for path in encrypted:
        blob = path.read_bytes()
        assert pii.is_encrypted(blob) and not blob.startswith(b"PAR1")
        assert pii.decrypt(blob, key).startswith(b"PAR1")  # Parquet inside
    restored = checkpoint.load_value("parquet.enc", log.artifacts_dir / saved.loc["clean", "path"])
    assert restored["email"].tolist()[:6] == PLANTED["email"]
    assert pii.checkpoint_protection(log, record.run_id) == [
        {"name": "customers", "cell_seq": 3, "stored": "encrypted"},
        {"name": "clean", "cell_seq": 4, "stored": "encrypted"},
    ]
    output = Path(record.tags["mlops.output"]).read_text()
    assert "MLOPS_NB_SECRET_API_TOKEN" in output and SECRET not in output
    log.close()
    docs = run_cli("docs", notebook, "--out", tmp_path / "docs", cwd=tmp_path)
    assert docs.returncode == 0, docs.stderr
    for written in (tmp_path / "docs").rglob("*"):
        if written.is_file():
            assert SECRET.encode() not in written.read_bytes(), written
    everything = tmp_path / ".mlops"
    assert not [p for p in everything.rglob("*") if p.is_file()
                and SECRET.encode() in p.read_bytes()]  # fmt: skip
    assert planted_in(everything, skip=encrypted) == []


def test_personal_data_checkpoints_can_be_left_unwritten(tmp_path):
    customers().to_csv(tmp_path / "customers.csv", index=False)
    notebook = _notebook(tmp_path / "customers.ipynb")
    env = subprocess_env(MLOPS_NB_PII_CHECKPOINTS="skip", MLOPS_NB_SECRET_API_TOKEN=SECRET)
    result = run_cli("run", notebook, cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    log = mn.open_log(tmp_path / ".mlops" / "log.duckdb")
    record = log.run("latest")
    assert record.metrics["token_length"] == len(SECRET)  # as a scheduled run gets a secret
    assert set(log.checkpoints(record.run_id)["name"]) == {"rows", "features", "labels", "model"}
    notes = log.notes(record.run_id)
    skipped = notes[notes["kind"] == "personal-data"]["message"].tolist()
    assert [m.split(" ", 1)[0] for m in skipped] == ["customers", "clean"]
    assert pii.checkpoint_protection(log, record.run_id) == [
        {"name": "customers", "cell_seq": 3, "stored": "not written"},
        {"name": "clean", "cell_seq": 4, "stored": "not written"},
    ]
    log.close()
    assert planted_in(tmp_path / ".mlops") == []


def test_a_secret_parameter_is_refused_by_schedules(tmp_path):
    notebook = _notebook(tmp_path / "customers.ipynb")
    result = run_cli("schedule", notebook, "--cron", "0 3 * * *", "--target", "cron",
                     "--out", tmp_path / "schedule", "-p", "api_token", SECRET,
                     cwd=tmp_path)  # fmt: skip
    assert result.returncode != 0
    assert "MLOPS_NB_SECRET_API_TOKEN" in result.stderr and SECRET not in result.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".ipynb"
                and SECRET.encode() in p.read_bytes()]  # fmt: skip


# ---------------------------------------------------------------------- a served model
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_served_requests_keep_personal_columns_as_keyed_hashes(tmp_path):
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from mlops_nb.registry.register import register_pipeline

    frame = customers()[["age", "income", "email", "mobile"]]
    target = customers()["churned"]
    model = Pipeline([
        ("prepare", ColumnTransformer([("numbers", StandardScaler(), ["age", "income"])])),
        ("model", LogisticRegression()),
    ]).fit(frame, target)  # fmt: skip
    log_path = tmp_path / ".mlops" / "log.duckdb"
    log = mn.open_log(log_path)
    register_pipeline(log, "churn", model, training_frame=frame, alias="champion")
    log.flush()
    version = log.model_version("churn", 1)
    assert version["signature"]["personal_data"] == {"email": "email", "mobile": "phone"}
    email_spec = [c for c in version["signature"]["columns"] if c["name"] == "email"][0]
    assert email_spec["categories"] is None
    log.close()

    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlops_nb.cli", "--log", str(log_path), "serve", "churn@champion",
         "--port", str(port)],
        env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.2)
        rows = [[41, 52.5, PLANTED["email"][0], PLANTED["phone"][0], PLANTED["email"][1]],
                [23, 48.0, PLANTED["email"][2], PLANTED["phone"][1], None]]  # fmt: skip
        body = {"dataframe_split": {"columns": ["age", "income", "email", "mobile",
                                                "contact_email"], "data": rows}}  # fmt: skip
        answer = httpx.post(url + "/invocations", json=body, timeout=30)
        assert answer.status_code == 200, answer.text
        request_id = answer.headers["x-request-id"]
    finally:
        os.kill(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    log = mn.open_log(log_path)
    row = log.sql(f"SELECT inputs, outputs FROM requests WHERE request_id = '{request_id}'")
    inputs = json.loads(row["inputs"][0])
    key = pii.hash_key(log_path, create=False)
    hashed = [[*row[:2], *(pii.keyed_hash(v, key) if v else None for v in row[2:])]
              for row in rows]  # fmt: skip
    assert inputs == {"columns": body["dataframe_split"]["columns"], "data": hashed}
    assert json.loads(row["outputs"][0]) == answer.json()["predictions"]
    profile = json.loads(log.profiles(model_name="churn", kind="inputs")["profile"][0])
    assert profile["columns"]["email"]["private"] is True
    log.close()
    assert planted_in(tmp_path / ".mlops") == []
