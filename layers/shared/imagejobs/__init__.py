"""imagejobs: shared code of the image-job stack (models, logic, adapters)."""
