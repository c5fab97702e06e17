"""The edge: composition. The HTTP API's routers, the queue- and event-fed entry points, and the
wiring that puts adapters into the application's ports. It may import every room."""
