"""Runs moto server with the project's extension installed.

    python -m localaws.server --host 127.0.0.1 --port 5000

Started and stopped by scripts/local-aws.sh; not meant to be run by hand.
"""

import sys

from localaws import moto_ext


def main() -> None:
    moto_ext.install()
    from moto import server

    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
