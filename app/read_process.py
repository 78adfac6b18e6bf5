"""Starting and keeping the worker's read process (``app.reader``).

The worker owns it: the read process's stdin is a pipe from the worker, one
byte per store write tells it to catch up, and the pipe closing (the worker
exiting, even by ``kill -9``) ends it.  If it dies, the worker starts another."""
from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass
class ReadProcess:
    data_dir: Path
    host: str
    port: int  # the worker's public port: the read process listens there
    internal_port: int  # the worker's own web server, on the loopback
    features: str | None
    # The count the worker maps keys by (it may have adopted the topics'): the
    # read process routes by the same one, whatever its environment says.
    partitions: int
    process: subprocess.Popen | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "app.reader", "--data-dir", str(self.data_dir), "--host", self.host,
                   "--port", str(self.port), "--internal-port", str(self.internal_port)]
        if self.features:
            command += ["--features", self.features]
        env = {**os.environ, "FS_PARTITIONS": str(self.partitions)}
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, env=env)
        assert self.process.stdin is not None
        os.set_blocking(self.process.stdin.fileno(), False)

    def signal(self) -> None:
        """The store was written: wake the read process (never blocks the worker)."""
        process = self.process
        if process is None or process.stdin is None:
            return
        try:
            os.write(process.stdin.fileno(), b".")
        except BlockingIOError:
            pass  # it has signals it has not read yet: it will catch up
        except (BrokenPipeError, OSError):
            pass  # it died: ``check`` starts another

    def check(self) -> None:
        """Start the read process again if it died."""
        process = self.process
        if process is not None and process.poll() is not None:
            log.error("the read process exited with %s; starting it again", process.returncode)
            if process.stdin is not None:
                process.stdin.close()
            self.start()
