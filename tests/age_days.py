"""The days on which age arithmetic is tested, shared by the age and the aggregate tests."""

from datetime import date

# Birthdays, the days around 29 February, and the turn of the year.
TODAYS = (
    date(2026, 6, 14),
    date(2026, 6, 15),
    date(2026, 2, 28),
    date(2026, 3, 1),
    date(2028, 2, 28),
    date(2028, 2, 29),
    date(2028, 3, 1),
    date(2026, 12, 31),
    date(2027, 1, 1),
)
