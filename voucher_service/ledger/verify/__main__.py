"""`python -m voucher_service.ledger.verify ...`, or `python -m ledger.verify ...`
in a copy of the `ledger` folder. Nothing the --jobs workers need is defined
here: they import it from parallel.py by name, whatever the start method."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
