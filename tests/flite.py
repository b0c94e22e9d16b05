"""Skip marker for the tests that synthesise speech with Debian's flite."""

import shutil
from pathlib import Path

import pytest

HAVE_FLITE = shutil.which("flite") is not None and Path("/usr/share/dict/words").exists()
needs_flite = pytest.mark.skipif(not HAVE_FLITE, reason="flite/wamerican not installed "
                                 "(`make system-deps` as root)")
