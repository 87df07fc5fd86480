"""``python -m credit_audit merge PARTS...`` (or a killed run's ``.partial`` file): see
:mod:`credit_audit.merge`."""

import sys

from credit_audit.merge import main

if __name__ == "__main__":
    args = sys.argv[1:]
    if not args or args[0] != "merge":
        print(
            "usage: python -m credit_audit merge PART.json [PART.json ...] [--json F] [--html F]\n"
            "       python -m credit_audit merge RESULTS.json.partial [--json F] [--html F]"
        )
        sys.exit(4)
    sys.exit(main(args[1:]))
