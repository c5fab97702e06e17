"""Intake: a request checked and recorded as a queued job, reserved against its tenant's budget,
and queued; or recorded as a failed job that says why. One module per source:

    common   what every source does: the request checked against the catalog, the record made
    api      HTTP (generations, edits, staged uploads); one job per Idempotency-Key
    event    an ImageJobRequested event on the bus; one job per event id
    upload   an image dropped in the S3 inbox; one job per object version and its instructions
"""
