"""Batch scoring on one machine: `ml.batch.scoring` and `python -m ml.predict` (chunks, row numbers, formats, cells)."""

from __future__ import annotations

import errno
import gzip
import io
import os
import resource
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest

from ml import predict as predict_cli
from ml.batch import command as batch_command
from ml.batch import results as batch_results
from ml.batch.results import result_columns
from ml.batch.scoring import score_file
from ml.batch.signals import Stopped
from ml.batch.sinks import OutputError, atomic_output
from ml.batch.sources import open_input
from ml.contract import CARE_GAPS, RESULT_COLUMNS, PredictionResponse, Screening
from ml.inference.predictor import Predictions, Predictor
from ml.schema import FEATURE_NAMES, TARGET
from ml.training.data import DataValidationError, features_matrix
from ml.training.synthetic_data import make_synthetic

CHUNK = 100


@pytest.fixture(scope="module")
def predictor(trained_model_dir: Path) -> Predictor:
    return Predictor.load(trained_model_dir)


def _frame(rows: int, seed: int = 4) -> pd.DataFrame:
    """Synthetic rows with an id first; the label and every feature written as whole numbers (`0`, `22`)."""
    frame = make_synthetic(rows, seed=seed)
    frame.insert(0, "member_id", [f"m{i:07d}" for i in range(rows)])
    return frame


def _write(frame: pd.DataFrame, path: Path) -> Path:
    if path.suffix == ".parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)  # pandas gzips a .gz name
    return path


def _expected(predictor: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """What the whole-file Predictor answers for these rows, as result columns."""
    features = features_matrix(frame)
    return pd.DataFrame(result_columns(features, predictor.predict(features), predictor.manifest))


def _predict(model: Path, data: Path, output: Path, *extra: str) -> int:
    return predict_cli.main(["--model", str(model), "--data", str(data), "--output", str(output), *extra])


# ------------------------------------------------------------------------------------------ chunk boundaries


class _CountingPredictor(Predictor):
    """A Predictor that remembers how many rows each call to `predict` had."""

    calls: list[int]

    def predict(self, rows: object, *, explain: bool = False) -> Predictions:
        answers = super().predict(rows, explain=explain)  # type: ignore[arg-type]
        self.calls.append(len(answers.classes))
        return answers


@pytest.mark.parametrize("rows", [1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7])
def test_chunks_of_any_size_give_every_row_in_order(
    trained_model_dir: Path, predictor: Predictor, tmp_path: Path, rows: int
) -> None:
    """A file of exactly one chunk, one row over, several: every row once, in order, no chunk larger than asked."""
    frame = _frame(rows)
    counting = _CountingPredictor.load(trained_model_dir)
    counting.calls = []
    output = tmp_path / "out.csv"
    summary = score_file(counting, _write(frame, tmp_path / "in.csv"), output, chunk_rows=CHUNK)
    assert summary.rows == rows
    assert max(counting.calls) <= CHUNK  # the old command predicted the whole file at once
    assert sum(counting.calls) == rows
    written = pd.read_csv(output, dtype={"member_id": str})
    assert written["member_id"].tolist() == frame["member_id"].tolist()
    expected = _expected(predictor, frame)
    np.testing.assert_array_equal(written["prediction"], expected["prediction"])
    np.testing.assert_allclose(written[["proba_0", "proba_1", "proba_2", "risk"]], expected.iloc[:, 1:5], atol=5e-7)
    assert written["risk_level"].tolist() == expected["risk_level"].tolist()


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"BMI,Age\n", "missing column")])
def test_an_empty_file_is_refused_and_nothing_is_written(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, message: str
) -> None:
    data = tmp_path / "in.csv"
    data.write_bytes(content)
    assert _predict(trained_model_dir, data, tmp_path / "out.csv") == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [data]


def test_a_header_without_rows_is_refused(trained_model_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_text(",".join(FEATURE_NAMES) + "\n\n\n")
    with pytest.raises(DataValidationError, match="header but no data rows"):
        score_file(Predictor.load(trained_model_dir), data, tmp_path / "out.csv", chunk_rows=CHUNK)
    assert list(tmp_path.iterdir()) == [data]


# ---------------------------------------------------------------------------------------------- bad rows


def test_a_bad_row_far_into_the_file_is_named_by_its_row_and_nothing_is_written(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _frame(2_500).astype({"Age": object})
    frame.loc[2_344, "Age"] = "14"  # row 2,345 of the file, in chunk 24 of 100 rows
    data = _write(frame, tmp_path / "in.csv")
    output = tmp_path / "out.csv"
    assert _predict(trained_model_dir, data, output, "--chunk-rows", str(CHUNK)) == 2
    err = capsys.readouterr().err
    assert "Age: out of range: allowed whole numbers from 1 to 13" in err
    assert "1 row: row 2,345 = '14'" in err
    assert "Nothing was written" in err
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == [data]  # no output, no temporary file


def test_problems_in_many_chunks_are_all_counted_and_the_first_rows_shown(predictor: Predictor, tmp_path: Path) -> None:
    """Every chunk is checked: each (column, reason) keeps its first 10 rows and counts them all."""
    frame = _frame(1_000).astype({"BMI": object, "Sex": object})
    bad_bmi = list(range(5, 1_000, 40))  # 25 rows, in every chunk
    frame.loc[bad_bmi, "BMI"] = "heavy"
    frame.loc[[950], "Sex"] = ""
    data = _write(frame, tmp_path / "in.csv")
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, data, tmp_path / "out.csv", chunk_rows=CHUNK)
    problems = {(p.column, p.reason): p for p in caught.value.problems}
    bmi = problems["BMI", "not a number"]
    assert bmi.count == 25
    assert bmi.rows == tuple(r + 1 for r in bad_bmi[:10])
    assert bmi.values == ("heavy",) * 10
    assert problems["Sex", "missing value"].rows == (951,)
    assert "(first 10 of 25)" in str(caught.value)
    assert not (tmp_path / "out.csv").exists()


def test_a_row_with_the_wrong_number_of_values_keeps_the_numbers_of_the_rows_after_it(
    predictor: Predictor, tmp_path: Path
) -> None:
    lines = _frame(300).to_csv(index=False).splitlines()
    lines[41] += ",extra"  # data row 41
    lines[250] = lines[250].replace("m0000249,", "m0000249,,,,")  # data row 250: two values too many
    age = lines[0].split(",").index("Age")
    cells = lines[280].split(",")
    cells[age] = "0"
    lines[280] = ",".join(cells)  # data row 280: Age out of range
    data = tmp_path / "in.csv"
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, data, tmp_path / "out.csv", chunk_rows=CHUNK)
    problems = {p.column: p for p in caught.value.problems}
    assert problems["(whole row)"].rows == (41, 250)
    assert problems["(whole row)"].reason == f"wrong number of values (the header has {len(cells)} columns)"
    assert problems["Age"].rows == (280,)


def test_empty_lines_inside_are_rows_with_missing_values_and_at_the_end_are_ignored(
    predictor: Predictor, tmp_path: Path
) -> None:
    text = _frame(250).to_csv(index=False)
    data = tmp_path / "in.csv"
    data.write_text(text + "\n\n\n")
    assert score_file(predictor, data, tmp_path / "out.csv", chunk_rows=CHUNK).rows == 250
    lines = text.splitlines()
    lines.insert(121, "")  # data row 121 is empty
    data.write_text("\n".join(lines) + "\n\n")
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, data, tmp_path / "again.csv", chunk_rows=CHUNK)
    assert {p.rows for p in caught.value.problems} == {(121,)}
    assert {p.reason for p in caught.value.problems} == {"missing value"}


def test_a_file_that_is_not_utf8_text_is_refused_cleanly(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(_frame(300), tmp_path / "in.csv")
    data.write_bytes(data.read_bytes().replace(b"m0000250", b"m\xff\xfe00250"))
    assert _predict(trained_model_dir, data, tmp_path / "out.csv", "--chunk-rows", str(CHUNK)) == 2
    err = capsys.readouterr().err
    assert "member_id: not UTF-8 text: re-save the file as UTF-8" in err
    assert "1 row: row 251 = 'm\ufffd\ufffd00250'" in err
    assert "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_an_interrupted_run_leaves_no_output_and_keeps_an_earlier_one(predictor: Predictor, tmp_path: Path) -> None:
    data = _write(_frame(500), tmp_path / "in.csv")
    output = tmp_path / "out.csv"
    output.write_text("an earlier result\n")

    def stop(rows: int, expected: int | None) -> None:
        if rows >= 2 * CHUNK:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        score_file(predictor, data, output, chunk_rows=CHUNK, progress=stop)
    assert output.read_text() == "an earlier result\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_a_stopped_command_removes_its_temporary_file(trained_model_dir: Path, tmp_path: Path) -> None:
    """SIGTERM (a scheduler stopping the job) unwinds like Ctrl-C: exit 143, no output, no temporary file."""
    data = _write(_frame(30_000), tmp_path / "in.csv")
    command = [sys.executable, "-m", "ml.predict", "--model", str(trained_model_dir), "--data", str(data)]
    process = subprocess.Popen([*command, "--output", str(tmp_path / "out.csv"), "--chunk-rows", "50"])
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.csv.*.partial")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 128 + signal.SIGTERM
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


# ------------------------------------------------------------------------------------- cells and formats


def test_the_users_cells_are_written_exactly_as_given(trained_model_dir: Path, tmp_path: Path) -> None:
    """BMI `22` stays `22`, the label `0` stays `0`, an id `007` and a quoted cell stay what they were."""
    frame = _frame(5)
    header = ",".join(frame.columns)
    lines = [",".join(str(v) for v in row) for row in frame.itertuples(index=False)]
    cells = lines[0].split(",")
    cells[0] = "007"
    cells[list(frame.columns).index("BMI")] = "22"
    cells[list(frame.columns).index(TARGET)] = "0"
    lines[0] = ",".join(cells)
    lines[1] = lines[1].replace("m0000001", '"Smith, J."', 1)
    lines[3] = lines[3].replace("m0000003", '"said ""hi""\nthen left"', 1)
    data = tmp_path / "in.csv"
    data.write_text("\n".join([header, *lines]) + "\n")
    out = tmp_path / "out.csv"
    assert _predict(trained_model_dir, data, out) == 0
    written = out.read_text().splitlines()
    assert written[0] == f"{header},{','.join(RESULT_COLUMNS)}"
    assert written[1].startswith(lines[0] + ",")  # the old command wrote 22.000000 and 0.0
    assert pd.read_csv(out, dtype=str)["member_id"].tolist()[:4] == [
        "007",
        "Smith, J.",
        "m0000002",
        'said "hi"\nthen left',
    ]
    text = out.read_text()
    for given in lines[1:]:
        assert f"\n{given}," in text


def test_cells_the_checks_accept_are_kept_too(predictor: Predictor, tmp_path: Path) -> None:
    """`ml.training.data` accepts a number with spaces around it: it is scored as the number and written as given."""
    frame = _frame(3)
    text = frame.to_csv(index=False).replace(",1,", ", 1 ,", 1)
    data = tmp_path / "in.csv"
    data.write_text(text)
    score_file(predictor, data, tmp_path / "out.csv")
    assert ", 1 ," in (tmp_path / "out.csv").read_text()
    expected = _expected(predictor, frame)
    np.testing.assert_allclose(pd.read_csv(tmp_path / "out.csv")["proba_2"], expected["proba_2"], atol=5e-7)


def test_parquet_in_and_out_keeps_the_columns_and_their_types(
    trained_model_dir: Path, predictor: Predictor, tmp_path: Path
) -> None:
    frame = _frame(350)
    data = _write(frame, tmp_path / "in.parquet")
    out = tmp_path / "out.parquet"
    assert _predict(trained_model_dir, data, out, "--chunk-rows", str(CHUNK)) == 0  # the old command read CSV only
    table = pq.read_table(out)
    assert table.schema.names == [*frame.columns, *RESULT_COLUMNS]
    given = pq.read_schema(data)
    assert all(table.schema.field(name).type == given.field(name).type for name in frame.columns)
    written = table.to_pandas()
    pd.testing.assert_frame_equal(written[list(frame.columns)], frame)
    expected = _expected(predictor, frame)
    np.testing.assert_allclose(written[["proba_0", "proba_1", "proba_2", "risk"]], expected.iloc[:, 1:5], atol=1e-12)
    assert written["risk_level"].tolist() == expected["risk_level"].tolist()


def test_a_bad_value_in_parquet_is_named_by_its_row(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(450)
    frame["HighBP"] = frame["HighBP"].astype(float)
    frame.loc[401, "HighBP"] = np.nan
    frame.loc[17, "HighBP"] = 0.5
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, _write(frame, tmp_path / "in.parquet"), tmp_path / "out.parquet", chunk_rows=CHUNK)
    assert {(p.reason, p.rows) for p in caught.value.problems} == {
        ("missing value", (402,)),
        ("not a whole number", (18,)),
    }
    assert not (tmp_path / "out.parquet").exists()


def test_gzip_in_and_out(trained_model_dir: Path, tmp_path: Path) -> None:
    frame = _frame(240)
    data = _write(frame, tmp_path / "in.csv.gz")
    out = tmp_path / "out.csv.gz"
    assert _predict(trained_model_dir, data, out, "--chunk-rows", str(CHUNK)) == 0
    with gzip.open(out, "rt") as handle:
        lines = handle.read().splitlines()
    assert lines[1:]
    assert [line.split(",")[0] for line in lines[1:]] == frame["member_id"].tolist()
    plain = tmp_path / "out.csv"
    assert _predict(trained_model_dir, data, plain) == 0
    assert plain.read_text().splitlines() == lines


def test_parquet_text_is_quoted_in_csv_only_where_it_must_be(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(6)
    frame["member_id"] = ["plain", "a,b", 'say "x"', "two\nlines", "", "end"]
    score_file(predictor, _write(frame, tmp_path / "in.parquet"), tmp_path / "out.csv")
    text = (tmp_path / "out.csv").read_text()
    assert [line.split(",")[0] for line in text.splitlines()[1:3]] == ["plain", '"a']
    assert '\n"say ""x""",' in text
    assert '\n"two\nlines",' in text
    assert pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)["member_id"].tolist() == [
        "plain",
        "a,b",
        'say "x"',
        "two\nlines",
        "",
        "end",
    ]


def test_csv_in_parquet_out_keeps_the_cells_as_text(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(10)
    score_file(predictor, _write(frame, tmp_path / "in.csv"), tmp_path / "out.parquet")
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.schema.field("BMI").type == pa.string()
    assert table.column("BMI").to_pylist() == [str(v) for v in frame["BMI"]]


# -------------------------------------------------------------------------------------- result columns


def test_result_columns_equal_the_contracts_row_for_every_answer(predictor: Predictor) -> None:
    """The vectorised columns are exactly `PredictionResponse.result_row`, thresholds, ties and the unchecked's own
    threshold included."""
    manifest = predictor.manifest
    rule = manifest.screening
    features = features_matrix(make_synthetic(500, seed=9))
    answers = predictor.predict(features)
    edge = np.array(
        [
            [1 - rule.raised, 0.0, rule.raised],
            [1 - rule.raised_not_checked, 0.0, rule.raised_not_checked],
            [1 - rule.high, rule.high, 0.0],
            [1.0, 0.0, 0.0],
        ]
    )
    edge_rows = np.repeat(features[:1], len(edge) * 2, axis=0)
    edge_rows[:, FEATURE_NAMES.index("CholCheck")] = [1, 0] * len(edge)
    edge = np.repeat(edge, 2, axis=0)
    features = np.concatenate([features, edge_rows])
    answers = Predictions(
        np.concatenate([answers.classes, np.zeros(len(edge), dtype=np.int64)]),
        np.concatenate([answers.probabilities, edge]),
        np.concatenate([answers.screening_probabilities, edge]),
    )
    columns = result_columns(features, answers, manifest)
    assert list(columns) == list(RESULT_COLUMNS)
    levels = set()
    for i, (k, p, screened, row) in enumerate(
        zip(answers.classes, answers.probabilities, answers.screening_probabilities, features, strict=True)
    ):
        expected = PredictionResponse.of(
            int(k),
            p,
            Screening.of(screened, rule, row),
            model_version=manifest.model_version,
            synthetic=manifest.data.synthetic,
        ).result_row()
        assert tuple(columns[name][i] for name in RESULT_COLUMNS) == expected
        levels.add(expected[RESULT_COLUMNS.index("risk_level")])
    assert levels == {"lower", "raised", "high"}
    assert {gap.words for gap in CARE_GAPS.values()} <= set(columns["care_access"])  # each gap alone, at least


def test_a_result_column_without_a_vectorised_rule_comes_from_the_contract(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    features = features_matrix(make_synthetic(50, seed=2))
    features[::2, FEATURE_NAMES.index("CholCheck")] = 0
    answers = predictor.predict(features)
    expected = result_columns(features, answers, predictor.manifest)
    monkeypatch.delitem(batch_results._RULES, "risk_level")
    monkeypatch.delitem(batch_results._RULES, "risk")
    fallback = result_columns(features, answers, predictor.manifest)
    assert fallback["risk_level"].tolist() == expected["risk_level"].tolist()
    assert fallback["risk"].tolist() == expected["risk"].tolist()


def test_the_command_line_names_who_is_outside_the_care_system(trained_model_dir: Path, tmp_path: Path) -> None:
    """The batch file carries the card's care-access advice: the reasons, empty for a person in care."""
    frame = _frame(4)
    frame[["CholCheck", "AnyHealthcare", "NoDocbcCost"]] = [[1, 1, 0], [0, 0, 0], [1, 1, 1], [0, 0, 1]]
    out = tmp_path / "out.csv"
    assert _predict(trained_model_dir, _write(frame, tmp_path / "in.csv"), out) == 0
    written = pd.read_csv(out, dtype=str, keep_default_na=False)
    assert written.columns[-1] == "care_access"
    assert written["care_access"].tolist() == [
        "",
        "not checked in 5 years; no coverage",
        "cost kept from a doctor",
        "not checked in 5 years; no coverage; cost kept from a doctor",
    ]


def test_batch_threads_give_the_same_answers(trained_model_dir: Path, predictor: Predictor) -> None:
    rows = features_matrix(make_synthetic(3_000, seed=8))
    two = Predictor.load(trained_model_dir, batch_threads=2).predict(rows)
    np.testing.assert_array_equal(two.probabilities, predictor.predict(rows).probabilities)
    with pytest.raises(ValueError, match="at least 1"):
        Predictor.load(trained_model_dir, batch_threads=0)


# -------------------------------------------------------------------------------------- the command line


def test_the_command_line_warns_when_the_model_is_synthetic_and_sums_up(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(_frame(30), tmp_path / "in.csv")
    assert _predict(trained_model_dir, data, tmp_path / "out.csv") == 0
    out, err = capsys.readouterr()
    assert "WARNING" in err
    assert "SYNTHETIC" in err
    assert out.count("\n") == 1
    assert out.startswith(f"wrote 30 predictions to {tmp_path / 'out.csv'} in ")
    assert "rows/s" in out
    assert "SYNTHETIC" in out


def test_a_model_that_cannot_be_loaded_exits_cleanly(
    model_copy: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _write(_frame(5), tmp_path / "in.csv")
    assert _predict(tmp_path / "nowhere", data, tmp_path / "out.csv") == 2
    (model_copy / "model.txt").write_text("tree\nnot a model\n")
    assert _predict(model_copy, data, tmp_path / "out.csv") == 2
    err = capsys.readouterr().err
    assert err.count("error: ") == 2
    assert "Traceback" not in err
    assert not (tmp_path / "out.csv").exists()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_progress_bar_shows_rows_rate_and_time_left_on_a_terminal_only() -> None:
    terminal = _Terminal()
    with batch_command.progress_bar(terminal) as progress:
        progress(50_000, None)
        progress(100_000, 400_000)
    shown = terminal.getvalue()
    assert "100k/400k" in shown
    assert "rows/s" in shown
    assert "<" in shown
    pipe = io.StringIO()
    with batch_command.progress_bar(pipe) as progress:
        progress(100_000, 400_000)
    assert pipe.getvalue() == ""


# ------------------------------------------------------------------ hostile and first-time-user inputs (review 2)


def _csv_text(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False)


def test_gzip_output_is_compressed_at_the_fast_level(trained_model_dir: Path, tmp_path: Path) -> None:
    """Arrow's gzip stream compresses at level 9, 8x slower than level 6 and some 40x slower than level 1."""
    data = _write(_frame(200), tmp_path / "in.csv")
    assert _predict(trained_model_dir, data, tmp_path / "out.csv.gz") == 0
    packed = (tmp_path / "out.csv.gz").read_bytes()
    assert packed[:2] == b"\x1f\x8b"
    assert packed[8] == 4  # the gzip header's XFL: 4 = the fastest level (2 = the slowest, level 9)
    assert _predict(trained_model_dir, data, tmp_path / "out.csv") == 0
    assert gzip.decompress(packed) == (tmp_path / "out.csv").read_bytes()


def test_a_long_cell_is_scored_up_to_the_row_limit_and_beyond_it_the_row_is_named(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    frame = _frame(5)
    frame.insert(1, "note", "short")
    frame.loc[0, "note"] = "x" * 200_000  # row 1: over the csv module's 131,072-character field limit
    data = _write(frame, tmp_path / "in.csv")
    assert _predict(trained_model_dir, data, tmp_path / "out.csv") == 0  # was a traceback (_csv.Error)
    assert pd.read_csv(tmp_path / "out.csv")["note"].str.len().tolist() == [200_000, 5, 5, 5, 5]
    frame.loc[0, "note"] = "short"
    frame.loc[2, "note"] = "x" * 3_000_000  # row 3: longer than a block
    _write(frame, data)
    assert _predict(trained_model_dir, data, tmp_path / "out2.csv") == 2
    err = capsys.readouterr().err
    assert "data row 3 is longer than 1 MiB, the most one CSV row may hold" in err
    assert "a quote" in err
    assert "Traceback" not in err
    assert not (tmp_path / "out2.csv").exists()
    packed = tmp_path / "in.csv.gz"  # the limit counts the text after decompression
    packed.write_bytes(gzip.compress(data.read_bytes()))
    assert _predict(trained_model_dir, packed, tmp_path / "out3.csv") == 2
    assert "data row 3 is longer than 1 MiB" in capsys.readouterr().err


def test_an_unclosed_quote_is_named_by_its_row(predictor: Predictor, tmp_path: Path) -> None:
    lines = _csv_text(_frame(30_000)).splitlines()
    lines[12_001] = lines[12_001].replace("m0012000", '"m0012000', 1)  # data row 12,001 opens a quote
    data = tmp_path / "in.csv"
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=r"row 12,001 = '\"m0012000,"):  # the cell runs to the end
        score_file(predictor, data, tmp_path / "out.csv", chunk_rows=CHUNK)
    lines.append("x" * 1_500_000)  # the open cell now runs over 1 MiB before the file ends
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match=r"data row 12,001 is longer than 1 MiB.*a quote"):
        score_file(predictor, data, tmp_path / "out.csv", chunk_rows=CHUNK)


def test_a_header_longer_than_a_block_is_refused_cleanly(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(3)
    frame.columns = ["x" * 3_000_000, *frame.columns[1:]]
    with pytest.raises(DataValidationError, match="the header is longer than 1 MiB"):
        score_file(predictor, _write(frame, tmp_path / "in.csv"), tmp_path / "out.csv")


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_the_output_may_not_be_the_input(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], link: str
) -> None:
    data = _write(_frame(20), tmp_path / "in.csv")
    given = data.read_bytes()
    output = data
    if link == "symlink":
        output = tmp_path / "link.csv"
        output.symlink_to(data)
    elif link == "hardlink":
        output = tmp_path / "hard.csv"
        output.hardlink_to(data)
    assert _predict(trained_model_dir, data, output) == 2  # was 0, with the input replaced by the results
    assert "is the input file" in capsys.readouterr().err
    assert data.read_bytes() == given
    assert not list(tmp_path.glob(".*partial"))


def test_a_cell_that_is_not_utf8_is_named_by_row_and_column_with_the_fix(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(300)
    frame.insert(1, "name", "Ann")
    text = _csv_text(frame).encode()
    lines = text.split(b"\n")
    lines[1] = lines[1].replace(b",Ann,", b",Jos\xe9,", 1)  # data row 1 (the old message gave a byte position)
    lines[270] = lines[270].replace(b",Ann,", b",Ren\xe9e,", 1)  # data row 270, in the third chunk
    data = tmp_path / "in.csv"
    data.write_bytes(b"\n".join(lines))
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, data, tmp_path / "out.csv", chunk_rows=CHUNK)
    problems = {p.column: p for p in caught.value.problems}
    assert list(problems) == ["name"]
    assert problems["name"].rows == (1, 270)
    assert problems["name"].values == ("Jos\ufffd", "Ren\ufffde")
    assert "re-save the file as UTF-8" in str(caught.value)
    assert "in 300 data rows" in str(caught.value)


def test_a_header_that_is_not_utf8_says_so(predictor: Predictor, tmp_path: Path) -> None:
    data = tmp_path / "in.csv"
    data.write_bytes(_csv_text(_frame(3)).replace("member_id", "num\xe9ro", 1).encode("latin-1"))
    with pytest.raises(DataValidationError, match=r"the header is not UTF-8 text .*'num\ufffdro'.*re-save"):
        score_file(predictor, data, tmp_path / "out.csv")
    data.write_text(_csv_text(_frame(3)), encoding="utf-16")
    with pytest.raises(DataValidationError, match=r"is UTF-16 text; save it as UTF-8 CSV"):
        score_file(predictor, data, tmp_path / "out.csv")


@pytest.mark.parametrize("name", ["OUT.CSV.GZ", "out.Csv.Gz", "out.PARQUET", "out.CSV"])
def test_output_suffixes_are_read_in_any_case(trained_model_dir: Path, tmp_path: Path, name: str) -> None:
    data = _write(_frame(20), tmp_path / "in.csv")
    assert _predict(trained_model_dir, data, tmp_path / name) == 0
    written = (tmp_path / name).read_bytes()
    expected_magic = {".gz": b"\x1f\x8b", ".parquet": b"PAR1", ".csv": b"member_id"}[Path(name.lower()).suffix]
    assert written.startswith(expected_magic)


def test_the_input_format_is_its_content_not_its_name(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(20)
    upper = tmp_path / "IN.CSV.GZ"
    upper.write_bytes(gzip.compress(_csv_text(frame).encode()))  # was refused: "can't decode byte 0x8b"
    assert score_file(predictor, upper, tmp_path / "a.csv").rows == 20
    parquet_named_csv = tmp_path / "in.csv"
    frame.to_parquet(parquet_named_csv, index=False)
    assert score_file(predictor, parquet_named_csv, tmp_path / "b.csv").rows == 20


@pytest.mark.parametrize("name", ["out.xlsx", "out.txt", "out.gz", "out"])
def test_an_output_name_of_no_known_format_is_refused_before_any_work(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    data = _write(_frame(20), tmp_path / "in.csv")
    assert _predict(trained_model_dir, data, tmp_path / name) == 2  # was written as CSV
    assert "the name must end in .csv (CSV), .csv.gz (gzip-compressed CSV), .parquet" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def _no_scoring(rows: int, expected: int | None) -> None:
    raise AssertionError("a chunk was scored before the output was checked")


def test_an_output_that_is_a_folder_is_refused_before_any_work(predictor: Predictor, tmp_path: Path) -> None:
    data = _write(_frame(20), tmp_path / "in.csv")
    (tmp_path / "adir.csv").mkdir()
    with pytest.raises(OutputError, match=r"adir.csv is a folder; give a file name"):
        score_file(predictor, data, tmp_path / "adir.csv", progress=_no_scoring)  # was found at the very end


def test_a_missing_output_folder_is_refused_not_created(predictor: Predictor, tmp_path: Path) -> None:
    data = _write(_frame(20), tmp_path / "in.csv")
    with pytest.raises(OutputError, match=r"the folder .*new/deep does not exist; create it first"):
        score_file(predictor, data, tmp_path / "new" / "deep" / "out.csv", progress=_no_scoring)
    assert not (tmp_path / "new").exists()


def test_an_unwritable_folder_is_named_not_the_temporary_file(
    predictor: Predictor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Root may write anywhere, so the refusal of the folder (EACCES) is simulated at the one call that meets it."""
    data = _write(_frame(20), tmp_path / "in.csv")
    real_open = os.open

    def refuse(path: object, *args: object, **kwargs: object) -> int:
        if str(path).endswith(".partial"):
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", refuse)
    with pytest.raises(OutputError) as caught:
        score_file(predictor, data, tmp_path / "out.csv", progress=_no_scoring)
    assert (
        str(caught.value)
        == f"cannot write in {tmp_path} (Permission denied): nothing was written to {tmp_path}/out.csv"
    )


def test_a_full_disk_says_what_failed_and_that_nothing_was_written(trained_model_dir: Path, tmp_path: Path) -> None:
    """A file size limit (ulimit -f) fails the writes as a full disk does (EFBIG; Python ignores SIGXFSZ)."""
    data = _write(_frame(3_000), tmp_path / "in.csv")
    output = tmp_path / "out.csv"
    command = [sys.executable, "-m", "ml.predict", "--model", str(trained_model_dir), "--data", str(data)]
    limit = data.stat().st_size  # the output is larger than the input

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [*command, "--output", str(output), "--chunk-rows", "500"],
        capture_output=True,
        text=True,
        preexec_fn=small_files,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert f"error: could not write {output} (File too large): nothing was written" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stop_signal_removes_the_temporary_file(trained_model_dir: Path, tmp_path: Path, signum: int) -> None:
    """SIGTERM (a scheduler) and SIGHUP (a closed terminal, a dropped ssh session) unwind like Ctrl-C."""
    data = _write(_frame(30_000), tmp_path / "in.csv")
    # -X faulthandler: the command ended by SIGABRT (-6) once in about 12 runs beside a CI run: stderr names where.
    # Chunks of 10 rows: scoring takes ~20 s, not 1.6 s, so that a loaded machine pausing this test cannot make the
    # signal arrive after the command has finished (it would end by the signal's default action instead).
    command = [sys.executable, "-X", "faulthandler", "-m", "ml.predict", "--model", str(trained_model_dir)]
    process = subprocess.Popen(
        [*command, "--data", str(data), "--output", str(tmp_path / "out.csv"), "--chunk-rows", "10"],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".out.csv.*.partial")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 128 + signum, err
    assert f"interrupted: nothing was written to {tmp_path / 'out.csv'}" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_stop_just_after_the_temporary_file_is_created_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A signal's handler runs at the next call after the one it arrived in: arriving while the temporary output
    was created, it raised before the `finally` that removes it was in reach, and the file stayed (1 of 40 stops
    beside a busy machine). Here `os.close` of the new file plays the arrival."""
    closed = os.close

    def close_then_stopped(descriptor: int) -> None:
        closed(descriptor)
        raise Stopped(signal.SIGTERM)

    monkeypatch.setattr(os, "close", close_then_stopped)
    with pytest.raises(Stopped), atomic_output(tmp_path / "out.csv"):
        pass
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("gzipped", [False, True])
def test_pyarrow_reads_the_csv_through_a_native_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gzipped: bool
) -> None:
    """pyarrow's CSV reader reads ahead on its own I/O thread; given a Python file, that thread takes the GIL, and a
    stop signal ending the command while a read was pending made it do so during the interpreter's exit: SIGABRT
    (`terminate called without an active exception`) instead of 128 + the signal, about 1 stop in 12 beside a
    CI run. A native file (pyarrow's own) never needs the GIL."""
    path = _write(_frame(50), tmp_path / ("in.csv.gz" if gzipped else "in.csv"))
    given: list[object] = []  # what the CSV reader and the gzip stream were each given to read
    open_csv, gzip_stream = pa_csv.open_csv, pa.CompressedInputStream

    def reader(source: object, **options: object) -> pa_csv.CSVStreamingReader:
        given.append(source)
        return open_csv(source, **options)

    def decompressed(stream: object, compression: str) -> pa.CompressedInputStream:
        given.append(stream)
        return gzip_stream(stream, compression)

    monkeypatch.setattr(pa_csv, "open_csv", reader)
    monkeypatch.setattr(pa, "CompressedInputStream", decompressed)
    source = open_input(path)
    assert sum(chunk.table.num_rows for chunk in source.chunks(20)) == 50
    assert len(given) == (4 if gzipped else 2)  # the header's pass and the rows'
    assert all(isinstance(each, pa.NativeFile) for each in given), given


def _wait_until_it_catches(pid: int, signum: int, timeout: float = 60) -> None:
    """Until process `pid` has a handler for `signum` (Linux: the SigCgt mask of /proc/PID/status)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{pid}/status").read_text()
        caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
        if int(caught, 16) & (1 << (signum - 1)):
            return
        time.sleep(0.002)
    raise AssertionError(f"process {pid} never caught signal {signum}")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_stop_during_start_up_gives_a_line_not_a_traceback(
    trained_model_dir: Path, tmp_path: Path, signum: int
) -> None:
    """The imports take seconds (pandas, pyarrow, LightGBM); Ctrl-C then printed a KeyboardInterrupt traceback.

    The signal goes as soon as the command catches stop signals, which it does before those imports: a fixed
    half-second sleep was past the whole run once start-up got faster (the command had finished: exit -2). SIGINT
    as a terminal sends it: a test run in the background of a shell (`cmd &`) has SIGINT ignored, the command
    inherited that, and the run went on to exit 0."""
    data = _write(_frame(20), tmp_path / "in.csv")
    command = [sys.executable, "-m", "ml.predict", "--model", str(trained_model_dir), "--data", str(data)]
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # caught here: the default in the command
    try:
        process = subprocess.Popen([*command, "--output", str(tmp_path / "out.csv")], stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)
    _wait_until_it_catches(process.pid, signal.SIGTERM)  # `ml.batch.signals.stop_signals_raise`: in the imports
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert "Traceback" not in err
    assert process.returncode == 128 + signum, err
    assert "nothing was written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_a_row_of_empty_cells_at_the_end_is_a_row_with_missing_values(predictor: Predictor, tmp_path: Path) -> None:
    """A line of commas is a row, wherever it is; only empty lines at the end are ignored."""
    frame = _frame(10)
    commas = "," * (len(frame.columns) - 1)
    data = tmp_path / "in.csv"
    data.write_text(_csv_text(frame) + commas + "\n\n\n")
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, data, tmp_path / "out.csv")  # was 10 predictions and exit 0
    assert {p.rows for p in caught.value.problems} == {(11,)}
    assert {p.reason for p in caught.value.problems} == {"missing value"}
    assert len(caught.value.problems) == len(FEATURE_NAMES)
    data.write_text(_csv_text(frame) + commas)  # no line break at the very end
    with pytest.raises(DataValidationError, match="in 11 data rows"):
        score_file(predictor, data, tmp_path / "out.csv")
    data.write_bytes(_csv_text(frame).replace("\n", "\r\n").encode() + b"\r\n\r\n")
    assert score_file(predictor, data, tmp_path / "out.csv").rows == 10


def test_a_gzip_file_ending_in_a_row_of_empty_cells_is_refused_too(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(10)
    data = tmp_path / "in.csv.gz"
    data.write_bytes(gzip.compress((_csv_text(frame) + "," * (len(frame.columns) - 1) + "\n\n").encode()))
    with pytest.raises(DataValidationError, match="in 11 data rows"):
        score_file(predictor, data, tmp_path / "out.csv")
    data.write_bytes(gzip.compress((_csv_text(frame) + "\n\n").encode()))
    assert score_file(predictor, data, tmp_path / "out.csv").rows == 10


def test_a_quoted_line_break_in_a_header_name_is_one_name(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(12)
    data = tmp_path / "in.csv"
    data.write_text(_csv_text(frame).replace("member_id", '"member\nid"', 1))  # was 21 problems 'row 1 = HighBP'
    assert score_file(predictor, data, tmp_path / "out.csv").rows == 12
    assert pd.read_csv(tmp_path / "out.csv").columns[0] == "member\nid"


def test_the_row_count_includes_the_rows_with_the_wrong_number_of_values(predictor: Predictor, tmp_path: Path) -> None:
    lines = _csv_text(_frame(10)).splitlines()
    lines[4] = lines[4].rsplit(",", 1)[0]  # data row 4: one value short
    data = tmp_path / "in.csv"
    data.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataValidationError, match="in 10 data rows"):  # was "in 9 data rows"
        score_file(predictor, data, tmp_path / "out.csv")


@pytest.mark.parametrize(("delimiter", "named"), [(";", "semicolons"), ("\t", "tabs")])
def test_a_file_separated_by_another_character_says_so(
    predictor: Predictor, tmp_path: Path, delimiter: str, named: str
) -> None:
    data = tmp_path / "in.csv"
    _frame(5).to_csv(data, index=False, sep=delimiter)
    with pytest.raises(DataValidationError) as caught:
        score_file(predictor, data, tmp_path / "out.csv")
    assert f"the columns are separated by {named}, not commas" in str(caught.value)
    assert "missing column" not in str(caught.value)


def test_columns_without_a_name_are_visible_in_the_message(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(3)
    frame.insert(0, "a", 1)
    frame.insert(0, "b", 2)
    data = tmp_path / "in.csv"
    data.write_text(_csv_text(frame).replace("b,a,", ",,", 1))
    with pytest.raises(DataValidationError, match=r"\(a column with no name\): duplicate column"):
        score_file(predictor, data, tmp_path / "out.csv")


def test_a_column_that_cannot_be_csv_text_is_named(predictor: Predictor, tmp_path: Path) -> None:
    table = pa.Table.from_pandas(_frame(4), preserve_index=False).append_column("meta", pa.array([{"a": 1}] * 4))
    pq.write_table(table, tmp_path / "in.parquet")
    with pytest.raises(OutputError, match=r"the column 'meta' \(struct<a: int64>\) cannot be written as CSV text"):
        score_file(predictor, tmp_path / "in.parquet", tmp_path / "out.csv")
    assert score_file(predictor, tmp_path / "in.parquet", tmp_path / "out.parquet").rows == 4


def test_a_folder_or_a_pipe_as_input_is_not_called_missing(predictor: Predictor, tmp_path: Path) -> None:
    with pytest.raises(DataValidationError, match=r"is a folder; .* python -m ml.predict_spark"):
        score_file(predictor, tmp_path, tmp_path / "out.csv")
    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    with pytest.raises(DataValidationError, match=r"is not a regular file \(a pipe or a device\)"):
        score_file(predictor, pipe, tmp_path / "out.csv")
    with pytest.raises(FileNotFoundError, match="data file not found"):
        score_file(predictor, tmp_path / "nowhere.csv", tmp_path / "out.csv")


def test_boolean_parquet_features_are_refused_with_a_cast_hint(predictor: Predictor, tmp_path: Path) -> None:
    frame = _frame(5)
    frame["HighBP"] = frame["HighBP"].astype(bool)
    with pytest.raises(DataValidationError, match=r"HighBP is true/false \(boolean\).*Cast them to integers"):
        score_file(predictor, _write(frame, tmp_path / "in.parquet"), tmp_path / "out.csv")


def test_chunk_rows_has_a_ceiling(trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _write(_frame(5), tmp_path / "in.csv")
    with pytest.raises(SystemExit) as stopped:
        _predict(trained_model_dir, data, tmp_path / "out.csv", "--chunk-rows", "100000000000")
    assert stopped.value.code == 2
    assert "at most 1,048,576" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()
    with pytest.raises(ValueError, match="chunk_rows must be from 1 to 1,048,576"):  # the library call too
        score_file(Predictor.load(trained_model_dir), data, tmp_path / "out.csv", chunk_rows=1_048_577)


def test_the_summary_counts_the_start_up(
    trained_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Loading a model from a registry takes seconds; the summary's time and rows/s include it."""
    load = Predictor.load

    def slow_load(*args: object, **kwargs: object) -> Predictor:
        time.sleep(1.5)
        return load(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Predictor, "load", slow_load)
    data = _write(_frame(30), tmp_path / "in.csv")
    assert _predict(trained_model_dir, data, tmp_path / "out.csv") == 0
    seconds = float(capsys.readouterr().out.split(" in ")[1].split(" s ")[0])
    assert seconds >= 1.5  # was the scoring's time alone: "in 0.0 s"


def test_an_existing_outputs_permissions_are_kept(trained_model_dir: Path, tmp_path: Path) -> None:
    """A results file of health data set to 0600 must not become world-readable on the next run."""
    data = _write(_frame(5), tmp_path / "in.csv")
    output = tmp_path / "out.csv"
    output.write_text("earlier results\n")
    output.chmod(0o600)
    assert _predict(trained_model_dir, data, output) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600  # was 0644, from the umask
    assert output.read_text().startswith("member_id,")
