"""One way to write a moment exactly, on the dashboard (its tooltips) and in the admin:
"2026-12-01 07:31:15 UTC", with seconds (README, "The dashboard"). Django reads these for
the "en" locales through settings.FORMAT_MODULE_PATH; they take precedence over the locale's
own "Dec. 1, 2026, 7:31 a.m.", which drops the seconds."""

DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATETIME_FORMAT = DATETIME_FORMAT
DATE_FORMAT = "Y-m-d"
SHORT_DATE_FORMAT = DATE_FORMAT
TIME_FORMAT = "H:i:s"
