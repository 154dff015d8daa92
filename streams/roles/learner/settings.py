"""The learner's settings: the ``learner`` section of :class:`~streams.config.Settings`
(``[learner]`` in lastmile.toml, ``LASTMILE_LEARNER_*`` variables), read where every
setting is read, :mod:`streams.config`; a role takes ``settings.learner``.

>>> from streams.config import load_settings
>>> load_settings(env={"LASTMILE_LEARNER_ROUTE": "false"}, toml_path=None).learner.route
False
"""

from streams.config.learner import POLICIES, LearnerSettings

__all__ = ["POLICIES", "LearnerSettings"]
