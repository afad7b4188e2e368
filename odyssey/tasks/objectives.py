"""The objectives' old import path, `odyssey.tasks.objectives`, which the README taught for a task
of your own: kept so factories written against it still import. They live in core/objectives.py;
new code imports them from `odyssey.tasks`.
"""

from .core.objectives import *  # noqa: F403 - the same public names, no more
from .core.objectives import __all__  # noqa: F401
