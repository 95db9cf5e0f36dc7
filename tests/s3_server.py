"""A real S3-compatible server on loopback for the shared-cache tests: moto's standalone server,
started as its own process (the client under test is s3fs over HTTP, nothing is mocked in it)."""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def s3_server(bucket: str = "edgepack-cache"):
    """Yields (endpoint_url, env) with the bucket created; env holds the credentials s3fs needs."""
    exe = Path(sys.executable).with_name("moto_server")
    if not exe.exists():
        exe = Path(shutil.which("moto_server") or "moto_server")
    port = _free_port()
    proc = subprocess.Popen([str(exe), "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(url + "/", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("moto_server exited at start")
                time.sleep(0.1)
        env = {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url,  # botocore reads it (s3fs passes it to aiobotocore)
        }
        req = urllib.request.Request(f"{url}/{bucket}", method="PUT")
        urllib.request.urlopen(req, timeout=5)
        yield url, env
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
