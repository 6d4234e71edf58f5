"""At most `rate` requests in any rolling second.

`AsyncLimiter(rate, 1)` is a leaky bucket of size `rate`: after an idle spell it lets a
burst of `rate` through and then one every 1/rate s, so 2*rate-1 requests can land in
one second. A bucket of size one (`AsyncLimiter(1, interval)`) cannot burst: requests
leave at least `interval` apart, so any one-second window holds at most `rate` of them.
`margin` stretches the interval a little so that jitter between our clock and the
server's cannot squeeze a sixth request into its window.
"""

from __future__ import annotations

import anyio
from aiolimiter import AsyncLimiter

DEFAULT_MARGIN = 0.01  # 1%: 10 ms of slack per second at any rate, 4.95/s at rate 5


class RateLimiter:
    """Spaces requests evenly and pauses them all when the server says to (429)."""

    def __init__(self, rate: float, *, margin: float = DEFAULT_MARGIN) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.interval = (1.0 + margin) / rate
        self._bucket = AsyncLimiter(1, self.interval)
        self._resume_at = 0.0

    def pause(self, seconds: float) -> None:
        """Hold every request for `seconds` from now (a 429's Retry-After)."""
        self._resume_at = max(self._resume_at, anyio.current_time() + seconds)

    async def wait_unpaused(self) -> None:
        """Return once no pause is in force."""
        while (wait := self._resume_at - anyio.current_time()) > 0:
            await anyio.sleep(wait)

    async def wait_turn(self) -> None:
        """Return when the next request may leave: call it right before sending."""
        while True:
            await self.wait_unpaused()
            await self._bucket.acquire()
            if self._resume_at <= anyio.current_time():
                return
            # A 429 came in while we waited for the bucket: honour it first.
