"""The offline runtime: template.yaml deployed into moto, handlers run in-process, a simulated
provider and a local API gateway. No AWS account, Docker engine or network needed."""
