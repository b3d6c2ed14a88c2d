"""Batch scoring on one machine: `ml.batch.scoring` and `python -m ml.predict` (chunks, row numbers, formats, cells)."""

from __future__ import annotations

import gzip
import io
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ml import predict as predict_cli
from ml.batch import results as batch_results
from ml.batch.results import result_columns
from ml.batch.scoring import score_file
from ml.contract import RESULT_COLUMNS, PredictionResponse, Screening
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
    assert "cannot be read as a UTF-8 CSV file" in err
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
    with predict_cli.progress_bar(terminal) as progress:
        progress(50_000, None)
        progress(100_000, 400_000)
    shown = terminal.getvalue()
    assert "100k/400k" in shown
    assert "rows/s" in shown
    assert "<" in shown
    pipe = io.StringIO()
    with predict_cli.progress_bar(pipe) as progress:
        progress(100_000, 400_000)
    assert pipe.getvalue() == ""
