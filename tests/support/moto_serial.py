"""moto's S3 server, answering one request at a time.

moto_server handles requests on many threads, and its conditional PUT checks If-Match and
then writes in two steps without a lock: two racing PUTs conditioned on the same ETag can
both succeed, which real S3 never allows. Serving one request at a time makes the check and
the write atomic, so a consistency failure in the tests is valthree's, not moto's.

Usage: python moto_serial.py PORT [HOST]   (HOST defaults to 127.0.0.1)
"""

import sys

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple

if __name__ == "__main__":
    port = int(sys.argv[1])
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    app = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, app, threaded=False, request_handler=MotoRequestHandler)
