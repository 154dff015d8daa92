"""A command group that words the failures a user can act on as one line on stderr and
exit code 1, instead of a traceback.

>>> import click
>>> from click.testing import CliRunner
>>> class DemoGroup(OneLineErrors):
...     prefix = "lastmile demo"
...     expected = (ValueError,)
>>> @click.group(cls=DemoGroup)
... def demo() -> None: ...
>>> @demo.command()
... def fail() -> None:
...     raise ValueError("no such model 'fraud'")
>>> result = CliRunner().invoke(demo, ["fail"])
>>> result.exit_code, result.output.strip()
(1, "lastmile demo: no such model 'fraud'")
"""

from __future__ import annotations

from typing import Any, ClassVar

import click

__all__ = ["OneLineErrors"]


class OneLineErrors(click.Group):
    """Words ``expected`` errors, and the Kafka client's (an unreachable broker, a timed-out
    request), as ``<prefix>: <error>``; anything else is a bug and keeps its traceback."""

    prefix: ClassVar[str] = "lastmile"
    expected: ClassVar[tuple[type[BaseException], ...]] = ()
    # The top-level group leaves Kafka's errors to the groups that talk to Kafka: a
    # TimeoutError out of `lastmile up` is a process's, and must not be called Kafka's.
    kafka_errors: ClassVar[bool] = True

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except self.expected as err:
            click.echo(f"{self.prefix}: {err}", err=True)
            ctx.exit(1)
        except Exception as err:  # Kafka's errors are told apart here, the rest re-raised
            from confluent_kafka import KafkaException  # off the import path of --help

            if self.kafka_errors and isinstance(err, KafkaException | TimeoutError):
                click.echo(f"{self.prefix}: Kafka: {err}", err=True)
                ctx.exit(1)
            raise
