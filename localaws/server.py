"""Runs moto server with the project's extension installed.

    python -m localaws.server --host 127.0.0.1 --port 5000

Started and stopped by scripts/local-aws.sh; not meant to be run by hand.
"""

import sys

from localaws import moto_ext


def main() -> None:
    try:
        moto_ext.install()
    except moto_ext.guarded_updates.SettingError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    from moto import server

    server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
