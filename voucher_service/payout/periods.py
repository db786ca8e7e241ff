"""Settlement and statement periods: a calendar month or quarter in Asia/Shanghai time."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from voucher_service.clock import PROGRAMME_TIMEZONE, local_midnight_utc
from voucher_service.programme.errors import InvalidInput

# ASCII digits only and matched with fullmatch (a "$" alone would let a final
# newline through); "$" stays for the published OpenAPI pattern (JavaScript).
PERIOD_PATTERN = re.compile(r"^([0-9]{4})-(?:(0[1-9]|1[0-2])|Q([1-4]))$")


# Far beyond any programme, and inside what dates and UTC offsets can represent.
MIN_YEAR, MAX_YEAR = 1900, 9998


CYCLE_OF_PERIOD = {"month": "monthly", "quarter": "quarterly"}


@dataclass(frozen=True)
class Period:
    label: str
    kind: str  # "month" or "quarter"
    first_day: date
    end_day: date  # exclusive

    def bounds_utc(self, tz_name: str = PROGRAMME_TIMEZONE) -> tuple[str, str]:
        """[start, end) as RFC 3339 UTC strings: local midnights of the programme's time zone."""
        return local_midnight_utc(self.first_day, tz_name), local_midnight_utc(self.end_day, tz_name)


def parse_period(text: str) -> Period:
    match = PERIOD_PATTERN.fullmatch(text or "")
    if not match:
        raise InvalidInput("period", "period must be YYYY-MM (a month) or YYYY-Qn (a quarter)")
    year = int(match.group(1))
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise InvalidInput("period", f"period {text} is out of range ({MIN_YEAR}-{MAX_YEAR})")
    try:
        if match.group(2):
            month = int(match.group(2))
            first, kind = date(year, month, 1), "month"
            end = date(year + (month == 12), month % 12 + 1, 1)
        else:
            quarter = int(match.group(3))
            first, kind = date(year, 3 * quarter - 2, 1), "quarter"
            end = date(year + (quarter == 4), (3 * quarter) % 12 + 1, 1)
    except ValueError:  # year 0, or the end of year 9999
        raise InvalidInput("period", f"period {text} is out of range") from None
    return Period(text, kind, first, end)
