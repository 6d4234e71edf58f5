"""A process that reads phone numbers for the loader: `python -m campaign.phone_worker`.

It takes (values, default_region) pairs, pickled, on stdin and answers each with the
PhoneBatch of campaign.phones.read_phones, pickled, on stdout, until stdin closes. The loader
starts one per core for a large file (campaign.loader.phone_column); nothing else does.
"""

from __future__ import annotations

import pickle
import signal
import sys
from typing import BinaryIO

from campaign.phones import read_phones


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    while True:
        try:
            values, region = pickle.load(requests)
        except EOFError:  # the loader is done (or gone)
            return
        pickle.dump(read_phones(values, region), answers, protocol=pickle.HIGHEST_PROTOCOL)
        answers.flush()


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the loader's to handle
    serve(sys.stdin.buffer, sys.stdout.buffer)
