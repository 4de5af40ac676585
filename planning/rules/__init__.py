"""Pure planning rules: low-level codes, time-phased gross-to-net with lot sizing and lead-time offsetting,
pegging, exception messages, ATP and CTP. No I/O, no clock: the horizon's start and `today` come in.

Every rule, with its worked example, is described in docs/planning.md.
"""
