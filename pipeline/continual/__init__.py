"""Continual learning: protocols (task streams), methods (learners under test) and metrics.

``biograd continual`` (pipeline/commands/continual.py) and ``bench/continual.py`` run them;
docs/continual.md records the figures. Layering: this package sits in the pipeline because a
protocol reads data through the sources and a method drives the learner and the deploy stage.
"""
