"""The import shim and the example script work with both torchreid layouts.

PyPI torchreid 0.2.x keeps everything under ``torchreid.reid``; a source install of
deep-person-reid has ``torchreid.data`` etc. at the top level. The second layout is simulated
in a fresh interpreter by a ``torchreid`` module whose sub-packages are the real ones and
where ``import torchreid.reid`` fails.
"""
import os
import subprocess
import sys

import pytest

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "tools", "example_existing_script.py")

SOURCE_LAYOUT = """
import sys, types, runpy
import torchreid.reid as real
fake = types.ModuleType("torchreid")
for name in ("data", "models", "engine", "metrics", "utils", "optim", "losses"):
    setattr(fake, name, getattr(real, name))
    sys.modules["torchreid." + name] = getattr(real, name)
sys.modules["torchreid"] = fake
sys.modules["torchreid.reid"] = None  # import torchreid.reid -> ImportError
from torchreid_pixelfade._torchreid import tr
assert tr is fake, tr
"""


def run_example(prelude, root, tmp_path):
    code = prelude + f"""
sys.argv = ["example", "--root", {root!r}, "--save-dir", {str(tmp_path)!r}, "--epochs", "1",
            "--height", "64", "--width", "32", "--steps", "2"]
runpy.run_path({EXAMPLE!r}, run_name="__main__")
print("EXAMPLE-OK")
"""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "EXAMPLE-OK" in done.stdout
    return done.stdout + done.stderr


@pytest.mark.slow
def test_example_script_with_pypi_layout(tiny_market, tmp_path):
    out = run_example("import sys, runpy\n", tiny_market, tmp_path)
    assert "| P2P |" in out


@pytest.mark.slow
def test_example_script_with_source_layout(tiny_market, tmp_path):
    out = run_example(SOURCE_LAYOUT, tiny_market, tmp_path)
    assert "| P2P |" in out


def test_the_hooked_private_evaluate_has_the_expected_signature(monkeypatch):
    """The hook overrides torchreid's private ``Engine._evaluate``: fail loudly if an upgrade of
    torchreid changes its parameters."""
    from torchreid_pixelfade import _torchreid

    _torchreid.check_evaluate_signature()  # the installed torchreid

    def changed(self, dataset_name="", query_loader=None, gallery_loader=None, metric="x"):
        pass

    monkeypatch.setattr(_torchreid.tr.engine.Engine, "_evaluate", changed)
    with pytest.raises(RuntimeError, match="_evaluate takes"):
        _torchreid.check_evaluate_signature()


def test_private_registries_are_reached_through_the_shim():
    from torchreid_pixelfade import _torchreid

    assert "osnet_x0_25" in _torchreid.model_names()
    assert "market1501" in _torchreid.image_datasets()
