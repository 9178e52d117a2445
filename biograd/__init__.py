"""BioGrad streaming learner: online learning for event cameras.

The repository keeps one folder per stage at its root (``pipeline/``, ``sources/``,
``learner/``, ``sinks/``, ``deploy/``); they install as subpackages of this one
import name: ``biograd.pipeline``, ``biograd.sources``, ``biograd.learner``,
``biograd.sinks`` and ``biograd.deploy``.
"""

__version__ = "0.1.0"
