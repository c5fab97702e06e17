"""The HTTP API's routes, as Powertools routers (functions/api/app.py includes them): images
(generations, edits, uploads), jobs, models; common holds what they share, document the OpenAPI
document."""
