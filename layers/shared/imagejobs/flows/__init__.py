"""The application: the job logic, one module per flow, talking to the world only through the
ports (`ports.py`: Protocols the adapters implement), so the same code runs on AWS, offline on moto
and with the fakes of the unit tier. It imports the domain and the ports; never boto3, botocore,
httpx or Powertools (tests/unit/test_layers.py). Import from the module that does the work:

    intake/   a request (HTTP, event, upload) becomes a queued job, or a failed one saying why
    submit    a queued job is sent to the provider once and its poll loop starts
    poll      one status call of the loop
    settle    a job ends exactly once: images stored or reason recorded, cost charged
    cancel    a caller stops a job the provider has not finished
    views     the job as callers see it
    steps     what several flows do alike: load a job, the fields that close it
    ports     what the flows need of the world, and `Deps`, the set a function is wired with
"""
