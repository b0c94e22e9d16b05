"""Loading plugins by path, module name and entry point; broken plugins named before training."""

import sys

import pytest

from odyssey import plugins
from odyssey.cells import build_layer, cell_names, get_cell
from odyssey.plugins import PluginError, load_plugins
from odyssey.tasks import load_task, task_names
from tests.plugin_files import MY_CELL, write_plugin

TASK_PLUGIN = '''
from odyssey.tasks import register_task


def load(**options):
    from tests.toy import load as toy
    return toy(**options)


register_task("toy2", load)
'''


def test_a_file_plugin_registers_its_cell_once(tmp_path):
    path = write_plugin(tmp_path)
    (plugin,) = load_plugins([str(path)], entry_points_too=False)
    assert plugin.cells == ("MyCell",) and plugin.tasks == ()
    assert get_cell("mycell").origin == str(path) and get_cell("MyCell").group == "plugin"
    assert build_layer("MyCell", 3, 4)(plugins_x()).shape == (2, 1, 4)
    assert load_plugins([str(path)], entry_points_too=False) == [plugin]  # loaded once


def plugins_x():
    import torch
    return torch.randn(2, 1, 3)


def test_a_relative_path_is_resolved_against_the_working_directory(tmp_path, monkeypatch):
    write_plugin(tmp_path / "lab")
    monkeypatch.chdir(tmp_path)
    (plugin,) = load_plugins(["lab/my_cells.py"], entry_points_too=False)
    assert plugin.ref == str(tmp_path / "lab" / "my_cells.py")


def test_a_module_plugin_and_a_task(tmp_path, monkeypatch):
    write_plugin(tmp_path, MY_CELL + TASK_PLUGIN, "lab_plugin.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    (plugin,) = load_plugins(["lab_plugin"], entry_points_too=False)
    assert plugin.cells == ("MyCell",) and plugin.tasks == ("toy2",)
    assert "toy2" in task_names()
    assert load_task("toy2", n_train=4, n_valid=2, n_test=2).input_size == 4
    sys.modules.pop("lab_plugin", None)


@pytest.mark.parametrize("function", [False, True])
def test_entry_points_are_loaded(tmp_path, monkeypatch, function):
    """`module` (registers when imported) or `module:function` (called to register)."""
    source = ("def register():\n" + "".join(f"    {line}\n" for line in MY_CELL.splitlines())
              if function else MY_CELL)
    write_plugin(tmp_path, source, "ep_cells.py")
    dist = tmp_path / "ep_cells-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-cells\nVersion: 1.0\n")
    target = "ep_cells:register" if function else "ep_cells"
    (dist / "entry_points.txt").write_text(f"[odyssey.plugins]\nmy_cells = {target}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_plugins()
    assert any(p.cells == ("MyCell",) for p in loaded)
    assert get_cell("MyCell").origin.startswith("entry point my_cells")
    sys.modules.pop("ep_cells", None)


@pytest.mark.parametrize(("source", "message"), [
    ("import no_such_package_here\n", r"failed to import: ModuleNotFoundError: No module named "
                                      r"'no_such_package_here' \(.*broken.py:1\)"),
    ("def f(:\n", "failed to import: SyntaxError"),
    ("x = 1\n", "registered no cells or tasks"),
    (MY_CELL.replace('"MyCell"', '"GRU"'), "cell name 'GRU' is already taken by a built-in "
                                           r"cell \(GRU\).*broken.py:\d+\)"),
    (MY_CELL.replace("step=step,", ""), "give exactly one of step"),
    (MY_CELL.replace("2 * (I * H + H * H + H)", "I * H"), r"cell MyCell \(plugin .*broken.py\) "
                                                          "is broken.*parameter_count"),
    (MY_CELL.replace("return (1 - f) * h + f * cand", "return h[:, :1]"), "state 0 of shape"),
])
def test_a_broken_plugin_is_named_with_what_is_wrong(tmp_path, source, message):
    path = write_plugin(tmp_path, source, "broken.py")
    with pytest.raises(PluginError, match=f"plugin '{path}'.*{message}"):
        load_plugins([str(path)], entry_points_too=False)
    assert "MyCell" not in cell_names()  # nothing of a failed plugin stays registered
    assert str(path) not in plugins.loaded()


def test_a_clash_between_two_plugins_names_the_first(tmp_path):
    first = write_plugin(tmp_path / "a")
    second = write_plugin(tmp_path / "b")
    load_plugins([str(first)], entry_points_too=False)
    with pytest.raises(PluginError, match=f"plugin '{second}': cell name 'MyCell' is already "
                                          f"taken by plugin '{first}'"):
        load_plugins([str(second)], entry_points_too=False)


def test_missing_file_and_module(tmp_path):
    with pytest.raises(PluginError, match="no such file"):
        load_plugins([str(tmp_path / "nope.py")], entry_points_too=False)
    with pytest.raises(PluginError, match="plugin 'no_such_plugin_mod': no module named "
                                          "'no_such_plugin_mod'"):
        load_plugins(["no_such_plugin_mod"], entry_points_too=False)
