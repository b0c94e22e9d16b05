"""A storage password never reaches a file the project writes (issue 12, item 4)."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from odyssey.search.spec import SweepSpec
from odyssey.search.storage import StorageURLError, mask_secrets, mask_url, open_storage, unmask_url
from odyssey.search.sweep import write_config
from tests.search.helpers import toy_config

URL = "postgresql+psycopg2://odyssey:Sup3r-s3cret@db.example:5432/study"


def test_mask_url_and_secrets():
    assert mask_url(URL) == "postgresql+psycopg2://odyssey:***@db.example:5432/study"
    assert mask_url("journal:///tmp/x.journal") == "journal:///tmp/x.journal"
    assert mask_url("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
    cfg = {"storage": {"url": URL}, "note": [f"storage.url={URL}", "user:pass but no url"]}
    masked = mask_secrets(cfg)
    assert "Sup3r-s3cret" not in str(masked)
    assert masked["note"][1] == "user:pass but no url"


def test_masked_url_takes_the_password_from_the_environment(monkeypatch):
    masked = mask_url(URL)
    monkeypatch.setenv("ODYSSEY_STORAGE_URL", URL)
    assert unmask_url(masked) == URL
    other = masked.replace("db.example", "elsewhere")
    # another database: no password given, libpq reads $PGPASSWORD / ~/.pgpass
    assert unmask_url(other) == "postgresql+psycopg2://odyssey@elsewhere:5432/study"
    monkeypatch.delenv("ODYSSEY_STORAGE_URL")
    assert unmask_url(masked) == "postgresql+psycopg2://odyssey@db.example:5432/study"


def test_sweep_config_and_trial_config_are_masked(tmp_path):
    cfg = toy_config(tmp_path, "storage=postgresql", f"storage.url={URL}")
    spec = SweepSpec.from_config(cfg)
    assert spec.storage_url == URL  # in memory only, to connect
    assert "Sup3r-s3cret" not in str(spec.config)  # what trials record as `config`
    write_config(spec)
    text = (spec.sweep_dir / "config.yaml").read_text()
    assert "Sup3r-s3cret" not in text
    assert OmegaConf.load(spec.sweep_dir / "config.yaml").storage.url == mask_url(URL)


def test_missing_driver_names_the_extra(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_psycopg2(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and name.split(".")[0] == "psycopg2":  # the driver, not SQLAlchemy's
            raise ModuleNotFoundError("No module named 'psycopg2'")
        return real_import(name, globals, locals, fromlist, level)

    monkeypatch.setattr(builtins, "__import__", no_psycopg2)
    with pytest.raises(StorageURLError) as exc:
        open_storage(URL)
    message = str(exc.value)
    assert "[cluster]" in message and "Sup3r-s3cret" not in message
