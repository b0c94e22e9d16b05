"""Odyssey's Hydra launcher plugins (found by Hydra's scan of the `hydra_plugins` namespace).

`hydra/launcher=processes` (processes_launcher.py) starts each multirun job in its own
process and keeps going when one dies; the submitit launchers (keep_going_submitit.py) are
Hydra's own with the same keep-going rule. Hydra only instantiates launcher classes defined
under `hydra_plugins`, which is why this code is not in the `odyssey` package.
"""
