"""Study files and overrides as a careless user writes them: each mistake is one error naming the file, key and
value (or, for a harmless byte-order mark, no error at all)."""

import pytest

from prunefair.config import ConfigError, load_config


def _study_file(tmp_path, text: str, name: str = "study.toml"):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_an_empty_output_dir_is_refused_not_the_current_folder(tmp_path, monkeypatch):
    """`--out "$OUT"` with OUT unset: the study's cells, tables and .lock used to land in the current folder."""
    from typer.testing import CliRunner

    from prunefair.cli import app

    monkeypatch.chdir(tmp_path)
    for args in (["--out", ""], ["--set", 'output_dir=""'], ["--config", str(_study_file(tmp_path, 'output_dir = " "'))]):
        res = CliRunner().invoke(app, ["study", "--seeds", "0", "--rates", "0.5", "--set", "train.epochs=1",
                                       "--set", "finetune.epochs=1", "--set", "diagnostics.enabled=false", "--quiet",
                                       *args])
        text = " ".join(res.output.split())
        assert res.exit_code == 2 and "output_dir = " in text and "an empty path; give the study folder" in text, text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["study.toml"]  # nothing written here


def test_a_stored_config_with_an_empty_output_dir_still_reads(tmp_path):
    p = _study_file(tmp_path, 'output_dir = ""', "config.toml")
    assert load_config(p, stored=True).output_dir == ""


def test_a_byte_order_mark_is_not_part_of_the_study_file(tmp_path):
    p = tmp_path / "study.toml"
    p.write_bytes(b'\xef\xbb\xbfname = "from notepad"\n[train]\nepochs = 2\n')
    cfg = load_config(p)
    assert cfg.name == "from notepad" and cfg.train.epochs == 2


def test_a_section_written_as_a_value_names_what_the_file_says_not_only_the_override(tmp_path):
    p = _study_file(tmp_path, "train = 5\n")
    with pytest.raises(ConfigError) as err:
        load_config(p, overrides=["train.epochs=2"])
    assert str(err.value) == ("override 'train.epochs=2': 'train' is not a section: the study file (or preset) sets "
                              "train = 5; write it as a [train] table")


def test_an_array_of_tables_is_shown_as_toml(tmp_path):
    p = _study_file(tmp_path, "[[data.resample]]\ngroup = \"0\"\nfactor = 2\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert 'data.resample = [{group = "0", factor = 2}]: expected a table' in str(err.value)


@pytest.mark.parametrize("seed", [-5, 2**64])
def test_a_diagnostics_seed_out_of_range_is_refused_naming_the_key(tmp_path, seed):
    """2**64 used to pass, then failed every dense model's diagnostics with torch's 'Overflow when unpacking long
    long', naming no key."""
    p = _study_file(tmp_path, f"[diagnostics]\nseed = {seed}\n")
    with pytest.raises(ConfigError, match=rf"diagnostics\.seed = {seed}: a seed in 0 \.\. 4294967295"):
        load_config(p)
    assert load_config(p, stored=True).diagnostics.seed == seed
